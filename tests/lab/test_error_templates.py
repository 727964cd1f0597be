"""Error records written from a per-shape template are the bytes psrpcore writes."""

from __future__ import annotations

import psrpcore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from provisioner_lab import convert, psrp
from provisioner_lab.api import LabError
from psrpcore.types import serialize

BASE = {
    "exception_type": "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
    "category": "InvalidData",
    "reason": "ManagementObjectNotFoundException",
    "command": "Get-MailboxPermission",
}
TEXTS = ["nobody1", "a&b<c>d", "é ü 中文", "tab\there", "new\nline", "_x0041_", "a_xb", "a\x01b", "😀", "q\"u'",
         "]]>", "a_", "xyz", " sp ", "a\r\nb", "QZ0ZQ", ""]


def _error(index: int, target: str, user: str, flag: bool | None) -> LabError:
    return LabError(
        message=f"The operation couldn't be performed because object '{target}' couldn't be found.",
        fq_error_id=f"[Server=EX01,RequestId={index}] {user} 655AD2F1,GetMailboxPermission",
        target_object=target,
        bound_parameters={"Identity": target, "User": user, "Flag": flag},
        **BASE,
    )


@pytest.mark.parametrize("first", ["nobody000020", "a&b"])
def test_templates_match_psrpcore(first: str) -> None:
    to_bytes = psrp.serializer(psrp.new_pool(), psrpcore.PSRemotingCrypto())
    templates = convert.ErrorTemplates(to_bytes)
    errors = [_error(0, first, "svc@contoso.com", None)]
    errors += [_error(i, target + str(i), user, flag) for i, (target, user, flag) in enumerate(
        (t, u, f) for t in TEXTS for u in TEXTS[:5] for f in (True, False, None))]
    errors.append(LabError(message="m", exception_type="System.ArgumentException", category="InvalidArgument",
                           reason="ArgumentException", fq_error_id="id", target_object=None))
    written = 0
    for error in errors:
        data = templates.clixml(error)
        if data is not None:
            written += 1
            assert data == to_bytes(convert.error_record(error)), error
    assert written > len(errors) // 4


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["_", "x", "X", "_x", "_X", "\x7f", "\x1f", " ", "~", "&", "<"]),
                          st.characters()), max_size=12).map("".join))
def test_the_printable_ascii_shortcut_answers_as_psrpcore(value: str) -> None:
    assert convert.encoded_as_itself(value) is (serialize(value, None).text == value)
