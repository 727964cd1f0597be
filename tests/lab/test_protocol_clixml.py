"""The fast CLIXML writer against psrpcore's serialiser, both read back with pypsrp's deserialiser."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import pytest
from provisioner_lab import clixml, convert
from provisioner_lab.api import LabEnum, LabObject
from psrpcore import PSRemotingCrypto
from psrpcore.types import serialize
from pypsrp.serializer import Serializer

from .test_protocol import HOSTILE

HOSTILE_SHORT = [h for h in HOSTILE if len(h) < 1000]
RIGHTS = LabEnum(
    ("Microsoft.Exchange.Management.RecipientTasks.MailboxRights",), 1 | 0x20000, "FullAccess, ReadPermission"
)


def _shape(value: Any) -> Any:
    """What a pypsrp user sees, as comparable plain data."""
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if hasattr(value, "adapted_properties"):
        return {
            "types": list(value.types),
            "props": {k: _shape(v) for k, v in value.adapted_properties.items()},
            "extended": {k: _shape(v) for k, v in value.extended_properties.items()},
            "sets": [_shape(v) for v in value.property_sets],
            "str": str(value),
        }
    return value


def _both(item: Any) -> tuple[Any, Any]:
    fast = clixml.Writer().render(item).decode("utf-8")
    slow = ElementTree.tostring(serialize(convert.to_ps(item), PSRemotingCrypto()), encoding="utf-8").decode()
    return _shape(Serializer().deserialize(fast)), _shape(Serializer().deserialize(slow))


@pytest.mark.parametrize(
    "item",
    [
        "plain",
        "",
        5,
        -(2**31),
        2**31,
        True,
        None,
        ["a", 1, None, ["nested"]],
        {"k": "v", "n": 2},
        RIGHTS,
        LabObject(("A.Type", "B.Base"), {}, "empty"),
        LabObject(
            ("Microsoft.Exchange.Data.Directory.Management.Mailbox",),
            {
                "Name": "Zoë",
                "AccessRights": [RIGHTS],
                "Nested": LabObject(("Lab.Nested", "System.Object"), {"Inner": ["x", 2, RIGHTS]}, "n"),
                "Flags": [],
                "Map": {"a": LabObject(("Lab.V",), {"x": 1}, "v")},
                **{f"P{i}": text for i, text in enumerate(HOSTILE_SHORT)},
            },
            "Zoë <&> \"quoted\"",  # psrpcore does not escape ToString (see the next test)
        ),
    ],
    ids=lambda item: type(item).__name__,
)
def test_fast_writer_matches_psrpcore(item: Any) -> None:
    fast, slow = _both(item)
    assert fast == slow


@pytest.mark.parametrize("text", HOSTILE_SHORT)
def test_string_escaping_round_trips(text: str) -> None:
    assert Serializer().deserialize(clixml.Writer().render(text).decode()) == text
    xml_unescaped = clixml.encode_string(text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert clixml.decode_string(xml_unescaped) == text


def test_to_string_is_escaped_too() -> None:
    obj = LabObject(("Lab.T",), {}, "literal _x000A_ and tab\t and \x01 and 😀")
    assert str(Serializer().deserialize(clixml.Writer().render(obj).decode())) == obj.to_string


def test_unsupported_values_fall_back() -> None:
    with pytest.raises(clixml.Unsupported):
        clixml.Writer().render(object())
