"""Hypothesis-generated CLIXML and a comparable form of what each reader makes of it (the tool's, psrpcore's,
pypsrp's), for the differential tests of :mod:`provisioner.transport.psrp.clixml`.

The documents are what a PowerShell serializer writes (MS-PSRP 2.2.5): every primitive, objects with ``TN`` or a
``TNRef`` to an earlier list, ToString, a wrapped primitive (enums), collections and dictionaries, adapted and
extended properties, and ``Ref`` to any object already opened (its ancestors included: a self-reference).
``for_pypsrp`` narrows them to what pypsrp reads into comparable values (it keeps DateTime, TimeSpan and Decimal as
text, turns arrays into plain lists, and registers a list only after its entries, so a list cannot hold itself).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import queue
import uuid
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

from provisioner.transport.psrp.clixml import PSDict, PSList, PSObj

PIECES = ["a", "Z", " ", "_", "x", "0", "&", "<", ">", "'", '"', "\u00e9", "\u2019", "\U0001d11e", "_x000A_",
          "_x005F_", "_xD834__xDD1E_", "_x00e9_", "_X0041_", "\t", "FullAccess", ", "]
TEXT = st.lists(st.sampled_from([*PIECES, "_x12G4_", "_xD800_"]), max_size=6).map("".join)
#: pypsrp fails on a non-hex "_x....", and on a lone surrogate: its text has no such pieces
PYPSRP_TEXT = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
PLAIN_NAMES = ["Identity", "User", "Deny", "AccessRights", "IsInherited", "Name", "DomainId", "Parent", "Value"]
NAMES = st.sampled_from([*PLAIN_NAMES, "_x0020_Odd"])
PYPSRP_NAMES = st.sampled_from(PLAIN_NAMES)  # pypsrp does not decode escapes in property names
BAG_TYPES = [("Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",
              "Microsoft.Exchange.Configuration.Tasks.MailboxPermissionPresentationObject", "System.Object"),
             ("Microsoft.Exchange.Data.Directory.ADObjectId", "Microsoft.Exchange.Data.ObjectId", "System.Object"),
             ("Selected.System.Management.Automation.PSCustomObject", "System.Object")]
ENUM_TYPES = [("Microsoft.Exchange.Management.RecipientTasks.MailboxRights", "System.Enum", "System.ValueType",
               "System.Object")]
ARRAY_TYPES = ("System.Object[]", "System.Array", "System.Object")
LIST_TYPES = [ARRAY_TYPES, ("Microsoft.Exchange.Management.RecipientTasks.MailboxRights[]", "System.Array",
                            "System.Object"),
              ("System.Collections.ArrayList", "System.Object")]
HASHTABLE = ("System.Collections.Hashtable", "System.Object")
ALL_PRIMITIVES = ["S", "C", "B", "DT", "TS", "By", "SB", "U16", "I16", "U32", "I32", "U64", "I64", "Sg", "Db", "D",
                  "BA", "G", "URI", "Version", "XD", "SBK", "Nil"]
PYPSRP_PRIMITIVES = ["S", "C", "B", "By", "I32", "I64", "U64", "Db", "BA", "G", "URI", "Version", "Nil"]
RANGES = {"By": (0, 255), "SB": (-128, 127), "U16": (0, 65535), "I16": (-32768, 32767), "U32": (0, 2**32 - 1),
          "I32": (-2**31, 2**31 - 1), "U64": (0, 2**64 - 1), "I64": (-2**63, 2**63 - 1)}


def _text(value: str) -> str:
    return escape(value)


class Document:
    """One CLIXML element, drawn piece by piece."""

    def __init__(self, draw: Any, for_pypsrp: bool) -> None:
        self.draw = draw
        self.for_pypsrp = for_pypsrp
        self.next_ref = 0
        self.type_lists: dict[tuple[str, ...], int] = {}
        self.refs: list[int] = []  # objects whose RefId a Ref may name (opened so far)
        self.open_lists: set[int] = set()
        self.inside_list = False
        self.text = PYPSRP_TEXT if for_pypsrp else TEXT

    def named(self, name: str | None) -> str:
        return "" if name is None else f" N={quoteattr(name)}"

    def primitive(self, name: str | None) -> str:
        kinds = PYPSRP_PRIMITIVES if self.for_pypsrp else ALL_PRIMITIVES
        kind = self.draw(st.sampled_from(kinds))
        n = self.named(name)
        draw = self.draw
        if kind == "Nil":
            return f"<Nil{n} />"
        if kind in ("S", "URI", "XD", "SBK"):
            text = draw(self.text)
            return f"<{kind}{n} />" if not text and draw(st.booleans()) else f"<{kind}{n}>{_text(text)}</{kind}>"
        if kind == "C":
            return f"<C{n}>{draw(st.integers(0, 65535))}</C>"
        if kind == "B":
            return f"<B{n}>{draw(st.sampled_from(['true', 'false', 'True']))}</B>"
        if kind in RANGES:
            low, high = RANGES[kind]
            return f"<{kind}{n}>{draw(st.integers(low, high))}</{kind}>"
        if kind in ("Sg", "Db"):
            number = draw(st.floats(allow_nan=False, allow_infinity=False, width=32 if kind == "Sg" else 64))
            text = draw(st.sampled_from([repr(number), "INF", "-INF", "NaN", "1E+300", "0"]))
            return f"<{kind}{n}>{text}</{kind}>"
        if kind == "D":
            text = str(draw(st.decimals(allow_nan=False, allow_infinity=False, places=draw(st.integers(0, 6)),
                                        min_value=-10**12, max_value=10**12)))
            return f"<D{n}>{text}</D>"
        if kind == "DT":
            stamp = draw(st.datetimes(min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)))
            digits = draw(st.integers(0, 7))
            fraction = f".{draw(st.integers(0, 10**digits - 1)):0{digits}d}" if digits else ""
            zone = draw(st.sampled_from(["", "Z", "+01:00", "-05:30", "+14:00"]))
            return f"<DT{n}>{stamp.year:04d}-{stamp.strftime('%m-%dT%H:%M:%S')}{fraction}{zone}</DT>"
        if kind == "TS":
            parts = ["-" if draw(st.booleans()) else "", "P"]
            days = draw(st.one_of(st.none(), st.integers(0, 10000)))
            if days is not None:
                parts.append(f"{days}D")
            parts.append("T")
            hours, minutes = draw(st.integers(0, 23)), draw(st.integers(0, 59))
            seconds, fraction = draw(st.integers(0, 59)), draw(st.integers(0, 9999999))
            parts.append(f"{hours}H{minutes}M{seconds}.{fraction:07d}S" if draw(st.booleans()) else f"{seconds}S")
            return f"<TS{n}>{''.join(parts)}</TS>"
        if kind == "BA":
            return f"<BA{n}>{base64.b64encode(draw(st.binary(min_size=self.for_pypsrp, max_size=12))).decode()}</BA>"
        if kind == "G":
            return f"<G{n}>{draw(st.uuids())}</G>"
        if kind == "Version":
            count = draw(st.integers(2, 4))
            return f"<Version{n}>{'.'.join(str(draw(st.integers(0, 99999))) for _ in range(count))}</Version>"
        raise AssertionError(kind)

    def type_names(self, names: tuple[str, ...]) -> str:
        known = self.type_lists.get(names)
        if known is not None and self.draw(st.booleans()):
            return f'<TNRef RefId="{known}" />'
        ref = len(self.type_lists) if known is None else self.draw(st.integers(len(self.type_lists), 40))
        self.type_lists[names] = ref
        return f'<TN RefId="{ref}">' + "".join(f"<T>{_text(name)}</T>" for name in names) + "</TN>"

    def value(self, name: str | None, depth: int) -> str:
        choice = self.draw(st.integers(0, 9))
        if depth > 0 and choice >= 6:
            return self.obj(name, depth - 1)
        if choice == 5 and self.refs:
            candidates = [ref for ref in self.refs if not (self.for_pypsrp and ref in self.open_lists)]
            if candidates:
                return f"<Ref{self.named(name)} RefId=\"{self.draw(st.sampled_from(candidates))}\" />"
        return self.primitive(name)

    def members(self, tag: str, depth: int) -> str:
        names = self.draw(st.lists(PYPSRP_NAMES if self.for_pypsrp else NAMES, max_size=4, unique=True))
        return f"<{tag}>" + "".join(self.value(name, depth) for name in names) + f"</{tag}>"

    def obj(self, name: str | None, depth: int) -> str:
        ref = self.next_ref
        self.next_ref += 1
        kinds = ["bag", "bag", "enum", "list", "dict"]
        if self.for_pypsrp and self.inside_list:
            kinds = ["bag", "enum"]  # pypsrp reads a collection inside a list as an object holding raw XML text
        kind = self.draw(st.sampled_from(kinds))
        parts = [f"<Obj{self.named(name)} RefId=\"{ref}\">"]
        to_string = self.draw(st.one_of(st.none(), self.text))
        self.refs.append(ref)
        if kind in ("list", "dict") and not self.for_pypsrp:
            # psrpcore makes up a ToString (str() of the value) for a collection that has none: give every one its own
            to_string = to_string or "System.Object[]"
        if kind == "enum":
            parts.append(self.type_names(self.draw(st.sampled_from(ENUM_TYPES))))
            parts.append(f"<ToString>{_text(to_string or 'FullAccess')}</ToString>")
            parts.append(f"<I32>{self.draw(st.integers(0, 2**20))}</I32>")
            return "".join(parts) + "</Obj>"
        if kind == "list":
            parts.append(self.type_names(self.draw(st.sampled_from(LIST_TYPES))))
            if to_string is not None:
                parts.append(f"<ToString>{_text(to_string)}</ToString>")
            tag = "LST" if self.for_pypsrp else self.draw(st.sampled_from(["LST", "IE", "STK", "QUE"]))
            self.open_lists.add(ref)
            outer, self.inside_list = self.inside_list, True
            entries = [self.value(None, depth) for _ in range(self.draw(st.integers(0, 3)))]
            self.open_lists.discard(ref)
            self.inside_list = outer
            parts.append(f"<{tag}>" + "".join(entries) + f"</{tag}>" if entries or self.draw(st.booleans())
                         else f"<{tag} />")
            return "".join(parts) + "</Obj>"
        if kind == "dict":
            parts.append(self.type_names(HASHTABLE))
            if to_string is not None:
                parts.append(f"<ToString>{_text(to_string)}</ToString>")
            keys = self.draw(st.lists(st.sampled_from(["a", "b", "PSVersion", "_x0041_"]), unique=True, max_size=3))
            self.open_lists.add(ref)  # pypsrp registers a dictionary after its entries, too
            outer, self.inside_list = self.inside_list, False
            entries = "".join(f'<En><S N="Key">{key}</S>{self.value("Value", depth)}</En>' for key in keys)
            self.inside_list = outer
            self.open_lists.discard(ref)
            parts.append(f"<DCT>{entries}</DCT>")
            return "".join(parts) + "</Obj>"
        if self.for_pypsrp or self.draw(st.booleans()):  # pypsrp reads an Obj without TN in a list as raw XML
            parts.append(self.type_names(self.draw(st.sampled_from(BAG_TYPES))))
        outer, self.inside_list = self.inside_list, False
        if to_string is not None:
            parts.append(f"<ToString>{_text(to_string)}</ToString>")
        for section in ("Props", "MS"):  # PowerShell's order (psrpcore reads Props first whatever the order)
            if self.draw(st.booleans()):
                parts.append(self.members(section, depth))
        self.inside_list = outer
        return "".join(parts) + "</Obj>"


@st.composite
def documents(draw: Any, for_pypsrp: bool = False) -> str:
    return Document(draw, for_pypsrp).obj(None, draw(st.integers(0, 3)))


# --- comparable forms -------------------------------------------------------------------------------------------


def _number(value: float) -> Any:
    return ["float", "nan" if math.isnan(value) else repr(float(value))]


def _stamp(value: datetime.datetime) -> Any:
    plain = datetime.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                              value.microsecond, value.tzinfo)
    return ["datetime", plain.isoformat(), plain.utcoffset()]


def _scalar(value: Any) -> Any:
    """A primitive as [kind, value], the same whichever reader made it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, decimal.Decimal):
        return ["decimal", str(value)]
    if isinstance(value, datetime.datetime):
        return _stamp(value)
    if isinstance(value, datetime.timedelta):
        return ["duration", value.days, value.seconds, value.microseconds]
    if isinstance(value, uuid.UUID):
        return ["guid", str(value)]
    if isinstance(value, bytes):
        return ["bytes", bytes(value)]
    if isinstance(value, int):
        return ["int", int(value)]
    if isinstance(value, str):
        return ["str", str(value)]
    raise AssertionError(f"not a primitive: {type(value)}")


class Comparable:
    """Turns one reader's result into nested lists; an object seen again becomes ["seen", its first index].
    ``collection_text``: False leaves out a collection's ToString (psrpcore makes one up when there is none)."""

    def __init__(self, collection_text: bool = True) -> None:
        self.seen: dict[int, int] = {}
        self.collection_text = collection_text

    def text_of(self, kind: str, to_string: str | None) -> str | None:
        return to_string if self.collection_text or kind == "obj" else None

    def again(self, value: Any) -> list[Any] | None:
        index = self.seen.get(id(value))
        if index is not None:
            return ["seen", index]
        self.seen[id(value)] = len(self.seen)
        return None

    def members(self, adapted: dict[str, Any], extended: dict[str, Any]) -> list[Any]:
        return [{name: self.form(value) for name, value in adapted.items()},
                {name: self.form(value) for name, value in extended.items()}]

    def form(self, value: Any) -> Any:
        raise NotImplementedError


class Ours(Comparable):
    def form(self, value: Any) -> Any:
        if isinstance(value, PSObj | PSList | PSDict):
            again = self.again(value)
            if again is not None:
                return again
            body: Any
            if isinstance(value, PSList):
                kind, body = "list", [self.form(v) for v in value]
            elif isinstance(value, PSDict):
                kind, body = "dict", {repr(self.form(k)): self.form(v) for k, v in value.items()}
            else:
                kind, body = "obj", self.form(value.value)
            return [kind, list(value.types), self.text_of(kind, value.to_string), body,
                    *self.members(value.adapted_properties, value.extended_properties)]
        return _scalar(value)


class Psrpcore(Comparable):
    """psrpcore's values: type names without the ``Deserialized.`` it adds to types it does not know; a char is its
    code (this reader gives the character); a collection or an object by its PSObject members."""

    def form(self, value: Any) -> Any:
        from psrpcore.types import PSChar, PSObject, PSQueue

        meta = getattr(value, "PSObject", None)
        types = [name.removeprefix("Deserialized.") for name in (meta.type_names if meta is not None else [])]
        is_obj = isinstance(value, list | dict | queue.Queue) or (
            isinstance(value, PSObject) and (not types or not _is_primitive_type(types)))
        if not is_obj:
            if isinstance(value, PSChar):
                return ["str", chr(int(value))]
            if meta is not None and type(value).__name__ == "PSVersion":
                return ["str", str(value)]
            return _scalar(value)
        again = self.again(value)
        if again is not None:
            return again
        adapted = {prop.name: prop.get_value(value) for prop in meta.adapted_properties} if meta else {}
        extended = {prop.name: prop.get_value(value) for prop in meta.extended_properties} if meta else {}
        to_string = meta.to_string if meta is not None else None
        body: Any
        if isinstance(value, PSQueue):
            kind, body = "list", [self.form(v) for v in list(value.queue)]
        elif isinstance(value, list):
            kind, body = "list", [self.form(v) for v in value]
        elif isinstance(value, dict):
            kind, body = "dict", {repr(self.form(k)): self.form(v) for k, v in value.items()}
        else:
            kind, body = "obj", None if type(value) is PSObject else self.form(_primitive_of(value))
        return [kind, types, self.text_of(kind, to_string), body, *self.members(adapted, extended)]


def _is_primitive_type(types: list[str]) -> bool:
    return types[0] in _PRIMITIVE_TYPE_NAMES


_PRIMITIVE_TYPE_NAMES = frozenset({
    "System.String", "System.Char", "System.Boolean", "System.DateTime", "System.TimeSpan", "System.Byte",
    "System.SByte", "System.UInt16", "System.Int16", "System.UInt32", "System.Int32", "System.UInt64",
    "System.Int64", "System.Single", "System.Double", "System.Decimal", "System.Byte[]", "System.Guid",
    "System.Uri", "System.Version", "System.Xml.XmlDocument", "System.Management.Automation.ScriptBlock",
})


def _primitive_of(value: Any) -> Any:
    """The plain Python value under a psrpcore extended primitive (an enum's number)."""
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return None  # a class psrpcore rehydrates (its members are its properties)


def for_comparison_with_pypsrp(form: Any) -> Any:
    """Our comparable form as pypsrp can give it: arrays as plain lists (no type names, ToString or members),
    Hashtables as plain dicts, an object's wrapped primitive as its single property-set entry."""
    if isinstance(form, list) and form and form[0] == "list":
        return ["plain-list", [for_comparison_with_pypsrp(item) for item in form[3]]]
    if isinstance(form, list) and form and form[0] == "dict":
        return ["plain-dict", {key: for_comparison_with_pypsrp(value) for key, value in form[3].items()}]
    if isinstance(form, list) and form and form[0] == "obj":
        return ["obj", form[1], form[2], for_comparison_with_pypsrp(form[3]),
                {k: for_comparison_with_pypsrp(v) for k, v in form[4].items()},
                {k: for_comparison_with_pypsrp(v) for k, v in form[5].items()}]
    return form


class Pypsrp(Comparable):
    def form(self, value: Any) -> Any:
        from pypsrp.complex_objects import GenericComplexObject

        if isinstance(value, GenericComplexObject):
            again = self.again(value)
            if again is not None:
                return again
            wrapped = self.form(value.property_sets[0]) if value.property_sets else None
            return ["obj", list(value.types), value.to_string, wrapped,
                    *self.members(value.adapted_properties, value.extended_properties)]
        if isinstance(value, list):
            again = self.again(value)
            return again if again is not None else ["plain-list", [self.form(v) for v in value]]
        if isinstance(value, dict):
            again = self.again(value)
            return again if again is not None else ["plain-dict",
                                                     {repr(self.form(k)): self.form(v) for k, v in value.items()}]
        return _scalar(value)
