"""The tool's own reader of CLIXML pipeline output (MS-PSRP 2.2.5), into plain Python values.

What comes back for each element:

- primitives (2.2.5.1): ``S``, ``URI``, ``XD``, ``SBK``, ``Version`` as ``str``; ``C`` as a one-character ``str``;
  ``B`` as ``bool``; the integers (``By``, ``SB``, ``U16``, ``I16``, ``U32``, ``I32``, ``U64``, ``I64``) as ``int``;
  ``Sg``/``Db`` as ``float``; ``D`` as :class:`decimal.Decimal`; ``DT`` as :class:`datetime.datetime` (aware when
  the text carries a zone); ``TS`` as :class:`datetime.timedelta`; ``G`` as :class:`uuid.UUID`; ``BA`` as
  ``bytes``; ``Nil`` as ``None``; ``SS`` as :class:`SecureText` (still encrypted: the tool never reads one).
  Strings are decoded from their ``_xHHHH_`` escapes (surrogate pairs joined);
- ``Obj`` (2.2.5.2): with a collection (``LST``/``IE``/``STK``/``QUE``) a :class:`PSList`, with a dictionary
  (``DCT``) a :class:`PSDict`, both carrying the object's type names, ToString and properties; with a wrapped
  primitive (an enum or an extended primitive) or with properties only, a :class:`PSObj`. Type names come from
  ``TN`` or a ``TNRef`` to an earlier ``TN``; adapted (``Props``) and extended (``MS``) properties are dicts by
  name; an object is known under its ``RefId`` *before* its members are read, so a member may refer back to it
  (Exchange's ADObjectId holds itself as ``DomainId``), and a ``Ref`` returns that same object.

:func:`properties` (adapted over extended), ``.types`` and ``str()`` (the ToString) are the seam
:mod:`provisioner.transport.records` reads. One :class:`Reader` per message stream keeps the ``RefId`` and ``TN``
tables of one message: PowerShell numbers them per message, so :func:`read` starts a new one every call.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from xml.etree.ElementTree import Element, XMLParser

__all__ = ["ClixmlError", "PSDict", "PSList", "PSObj", "Reader", "SecureText", "decode_string", "properties", "read"]


class ClixmlError(ValueError):
    """The text is not CLIXML this reader understands (a malformed or unknown element)."""


class SecureText(str):
    """An ``SS`` value: base64 of the session-key-encrypted text, never decrypted by the tool."""

    __slots__ = ()


class _Members:
    """What every object carries besides its value: type names, ToString, adapted and extended properties."""

    __slots__ = ()
    types: tuple[str, ...]
    to_string: str | None
    adapted_properties: dict[str, Any]
    extended_properties: dict[str, Any]


class PSObj(_Members):
    """An object: its wrapped primitive (``value``; None when it has properties only) and its members."""

    __slots__ = ("adapted_properties", "extended_properties", "to_string", "types", "value")

    def __init__(self, types: tuple[str, ...] = (), to_string: str | None = None, value: Any = None,
                 adapted: dict[str, Any] | None = None, extended: dict[str, Any] | None = None) -> None:
        self.types = types
        self.to_string = to_string
        self.value = value
        self.adapted_properties = {} if adapted is None else adapted
        self.extended_properties = {} if extended is None else extended

    def __str__(self) -> str:
        if self.to_string is not None:
            return self.to_string
        return "" if self.value is None else str(self.value)

    def __repr__(self) -> str:
        return f"PSObj({self.types[:1]!r}, to_string={self.to_string!r}, value={self.value!r})"


class PSList(list[Any], _Members):
    """A collection object (``LST``, ``IE``, ``STK``, ``QUE``), in document order, with its members."""

    __slots__ = ("adapted_properties", "extended_properties", "kind", "to_string", "types")

    def __init__(self, kind: str = "LST", types: tuple[str, ...] = (), to_string: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.types = types
        self.to_string = to_string
        self.adapted_properties: dict[str, Any] = {}
        self.extended_properties: dict[str, Any] = {}

    __hash__ = None  # type: ignore[assignment]


class PSDict(dict[Any, Any], _Members):
    """A dictionary object (``DCT``) with its members."""

    __slots__ = ("adapted_properties", "extended_properties", "to_string", "types")

    def __init__(self, types: tuple[str, ...] = (), to_string: str | None = None) -> None:
        super().__init__()
        self.types = types
        self.to_string = to_string
        self.adapted_properties: dict[str, Any] = {}
        self.extended_properties: dict[str, Any] = {}


def properties(obj: Any) -> Mapping[str, Any]:
    """An object's properties by name: adapted over extended (an object without members: empty)."""
    adapted = getattr(obj, "adapted_properties", None) or {}
    extended = getattr(obj, "extended_properties", None) or {}
    if not extended:
        return adapted
    if not adapted:
        return extended
    return {**extended, **adapted}


_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def decode_string(text: str | None) -> str:
    """A CLIXML string's value: ``_xHHHH_`` escapes are UTF-16 code units (a pair of them one character)."""
    if not text:
        return ""
    if "_x" not in text:  # lower-case x only, as PowerShell decodes
        return text
    decoded = _ESCAPE.sub(_unescape, text)
    if any("\ud800" <= char <= "\udfff" for char in decoded):
        # join surrogate pairs; a lone surrogate stays as it is (as .NET keeps it)
        decoded = decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return decoded


_DATETIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,7}))?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$")
_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)(?:\.(?P<fraction>\d{1,7}))?S)?)?$")


def _datetime(text: str) -> datetime.datetime:
    match = _DATETIME.match(text.strip())
    if match is None:
        raise ClixmlError(f"not a CLIXML DateTime: {text!r}")
    micro = int((match["fraction"] or "").ljust(7, "0")[:6])
    zone_text = match["zone"]
    zone: datetime.tzinfo | None = None
    if zone_text == "Z":
        zone = datetime.UTC
    elif zone_text:
        digits = zone_text[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        zone = datetime.timezone(-offset if zone_text[0] == "-" else offset)
    stamp = datetime.datetime.fromisoformat(f"{match['date']}T{match['time']}")
    return stamp.replace(microsecond=micro, tzinfo=zone)


def _duration(text: str) -> datetime.timedelta:
    """An ISO 8601 duration in .NET's 100 ns ticks, floored to Python's microseconds (as psrpcore does)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ClixmlError(f"not a CLIXML Duration: {text!r}")
    seconds = (int(match["days"] or 0) * 86400 + int(match["hours"] or 0) * 3600 + int(match["minutes"] or 0) * 60
               + int(match["seconds"] or 0))
    ticks = seconds * 10_000_000 + int((match["fraction"] or "").ljust(7, "0"))
    return datetime.timedelta(microseconds=(-ticks if match["sign"] else ticks) // 10)


def _char(text: str | None) -> str:
    return chr(int(text or "0"))


def _integer(text: str | None) -> int:
    return int(text or "0")


def _float(text: str | None) -> float:
    return float(text or "0")


def _decimal(text: str | None) -> decimal.Decimal:
    return decimal.Decimal(text or "0")


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"


def _guid(text: str | None) -> uuid.UUID:
    return uuid.UUID(text or "")


def _bytes(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _secure(text: str | None) -> SecureText:
    return SecureText(text or "")


_LEAVES: dict[str, Callable[[str | None], Any]] = {
    "S": decode_string, "URI": decode_string, "XD": decode_string, "SBK": decode_string,
    "ToString": decode_string, "Version": lambda text: (text or "").strip(),
    "C": _char, "B": _bool,
    "By": _integer, "SB": _integer, "U16": _integer, "I16": _integer, "U32": _integer, "I32": _integer,
    "U64": _integer, "I64": _integer,
    "Sg": _float, "Db": _float, "D": _decimal,
    "DT": lambda text: _datetime(text or ""), "TS": lambda text: _duration(text or ""),
    "G": _guid, "BA": _bytes, "SS": _secure,
}
_COLLECTIONS = frozenset({"LST", "IE", "STK", "QUE"})


class Reader:
    """Reads elements of one message: keeps its ``RefId`` (objects) and ``TN`` (type name lists) tables."""

    __slots__ = ("objects", "type_lists")

    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}
        self.type_lists: dict[str, tuple[str, ...]] = {}

    def value(self, element: Element) -> Any:
        tag = element.tag
        leaf = _LEAVES.get(tag)
        if leaf is not None:
            try:
                return leaf(element.text)
            except (ValueError, OverflowError) as exc:
                raise ClixmlError(f"<{tag}> holds {element.text!r}: {exc}") from None
        if tag == "Obj":
            return self.obj(element)
        if tag == "Nil":
            return None
        if tag == "Ref":
            ref = element.get("RefId")
            if ref not in self.objects:
                raise ClixmlError(f"<Ref RefId={ref!r}> to no earlier object")
            return self.objects[ref]
        raise ClixmlError(f"unknown CLIXML element <{tag}>")

    def _type_names(self, element: Element) -> tuple[str, ...]:
        if element.tag == "TN":
            names = tuple(decode_string(part.text) for part in element)
            ref = element.get("RefId")
            if ref is not None:
                self.type_lists[ref] = names
            return names
        ref = element.get("RefId")
        if ref not in self.type_lists:
            raise ClixmlError(f"<TNRef RefId={ref!r}> to no earlier <TN>")
        return self.type_lists[ref]

    def obj(self, element: Element) -> Any:
        children = list(element)
        types: tuple[str, ...] = ()
        to_string: str | None = None
        body: Element | None = None
        for child in children:
            tag = child.tag
            if tag == "TN" or tag == "TNRef":
                types = self._type_names(child)
            elif tag == "ToString":
                to_string = decode_string(child.text)
            elif tag != "Props" and tag != "MS":
                body = child  # the wrapped value or collection (the last one wins, as .NET reads it)
        result: Any
        if body is not None and body.tag in _COLLECTIONS:
            result = PSList(body.tag, types, to_string)
        elif body is not None and body.tag == "DCT":
            result = PSDict(types, to_string)
        else:
            result = PSObj(types, to_string)
        ref = element.get("RefId")
        if ref is not None:
            self.objects[ref] = result  # before the members: they may refer back to this object
        for child in children:
            tag = child.tag
            if tag == "Props":
                self._members(child, result.adapted_properties)
            elif tag == "MS":
                self._members(child, result.extended_properties)
            elif child is body:
                if isinstance(result, PSList):
                    result.extend(self.value(entry) for entry in child)
                elif isinstance(result, PSDict):
                    self._entries(child, result)
                else:
                    result.value = self.value(child)
        return result

    def _members(self, element: Element, into: dict[str, Any]) -> None:
        for child in element:
            name = child.get("N")
            if name is None:
                raise ClixmlError(f"a property <{child.tag}> without a name (N)")
            into[decode_string(name)] = self.value(child)

    def _entries(self, element: Element, into: dict[Any, Any]) -> None:
        for entry in element:
            key: Any = _MISSING
            value: Any = _MISSING
            for part in entry:
                name = part.get("N")
                if name == "Key":
                    key = self.value(part)
                elif name == "Value":
                    value = self.value(part)
            if key is _MISSING or value is _MISSING:
                raise ClixmlError("a dictionary entry (<En>) without a Key or a Value")
            try:
                into[key] = value
            except TypeError:
                raise ClixmlError(f"a dictionary key that cannot be one ({type(key).__name__})") from None


_MISSING = object()


def parse(data: bytes | str) -> Element:
    """One CLIXML element from its text (a PSRP message's data: UTF-8, possibly with a BOM)."""
    parser = XMLParser()
    try:
        parser.feed(data)
        return parser.close()
    except Exception as exc:  # xml.etree.ElementTree.ParseError, or expat's errors on odd encodings
        raise ClixmlError(f"not well-formed XML: {exc}") from None


def read(data: bytes | str | Element) -> Any:
    """The value of one CLIXML element (a pipeline output message's data, or an element already parsed)."""
    element = data if isinstance(data, Element) else parse(data)
    return Reader().value(element)
