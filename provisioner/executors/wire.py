"""Client-side CPU for large pipelines: two narrow shortcuts around pypsrp 0.9.1, same bytes and same objects.

Measured on a 100-statement pipeline, pypsrp spends most of its time on two things that do not change what
goes over the wire or what comes back:

* serialising: ``Pipeline._get_statements`` deep-copies every Command twice (a guard for lxml, where an element
  can have one parent only). The ElementTree serializer builds new elements for every occurrence and never
  shares them, so :class:`SharedCommand` makes that copy return the command itself. The XML is identical
  (``tests/test_batch_attribution.py`` compares it).
* deserialising: ``Serializer.deserialize`` rebuilds its table of ~60 known types and re-serialises the element
  to a string for every node, including every primitive leaf. :class:`LeafFastSerializer` reads pipeline output
  objects (the PIPELINE_OUTPUT messages, whose objects pypsrp turns into ``GenericComplexObject``, lists and
  dicts) with :func:`read_output`, which builds the same values in one pass; anything it is not sure about
  (a type pypsrp maps to one of its own classes, an unknown tag) goes to pypsrp unchanged. Primitive leaves
  below other objects (error records, warnings) are also answered directly, with pypsrp's own conversions.

:func:`install` puts the serializer on an open pool (keeping its state, e.g. the session cipher).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, ClassVar

from pypsrp.complex_objects import Command, GenericComplexObject
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.serializer import Serializer


class SharedCommand(Command):
    """A Command whose deep copy is itself (see the module docstring)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedCommand:
        return self


def share_commands(ps: PowerShell) -> None:
    """Make the commands of ``ps`` SharedCommands (call after adding them, before invoking)."""
    for command in ps.commands:
        command.__class__ = SharedCommand


def _integer(element: ET.Element) -> int:
    return int(element.text or "0")


class Unsure(Exception):
    """The fast reader leaves this element to pypsrp."""


_LIST_TYPES = frozenset({"System.Array", "System.Collections.ArrayList", "System.Object[]"})
# Type names pypsrp 0.9.1 maps to something other than GenericComplexObject or a plain list (its table in
# Serializer.deserialize, and the generic collection prefixes it parses): the fast reader leaves these to it.
_PYPSRP_TYPES = frozenset({
    "System.Collections.Hashtable", "System.Collections.Queue", "System.Collections.Stack", "System.ConsoleColor",
    "System.Globalization.CultureInfo", "System.String", "System.Char", "System.Boolean", "System.DateTime",
    "System.Byte", "System.SByte", "System.UInt16", "System.Int16", "System.UInt32", "System.Int32", "System.UInt64",
    "System.Int64", "System.Single", "System.Double", "System.Decimal", "System.Guid", "System.Uri", "System.Version",
    "System.Xml.XmlDocument", "System.Security.SecureString",
})
_PYPSRP_PREFIXES = ("System.Management.Automation.", "System.Collections.Generic.", "System.Collections.ObjectModel.",
                    "Selected.")


def _kind(types: list[str]) -> str:
    """How pypsrp 0.9.1 would read an Obj with these type names: "generic" or "list"; else Unsure."""
    for name in types:
        if name.startswith("Deserialized.System."):
            name = name[len("Deserialized."):]
        if name == "System.Object":
            return "generic"
        if name in _LIST_TYPES:
            return "list"
        base = name[:-2] if name.endswith("[]") else name
        if base in _PYPSRP_TYPES or base.startswith(_PYPSRP_PREFIXES):
            raise Unsure(name)
    if not types:
        return "generic"
    raise Unsure(",".join(types))


class _Reader:
    """One output message: RefId and TN tables are per message, as in pypsrp."""

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.objects: dict[str, Any] = {}
        self.type_lists: dict[str, list[str]] = {}

    def value(self, element: ET.Element) -> Any:
        tag = element.tag
        if tag in ("S", "ToString"):
            text = element.text
            if text is not None and "_x" not in text:
                return text  # nothing for pypsrp's _xHHHH_ decoding to change
            return self.serializer._deserialize_string(text)
        if tag == "B":
            return (element.text or "").lower() == "true"
        if tag in ("I32", "I64", "U32", "U64", "I16", "U16", "By", "SB"):
            return int(element.text or "0")
        if tag == "Nil":
            return None
        if tag in ("DT", "TS", "D", "Version"):
            return element.text
        if tag == "Ref":
            return self.objects[element.attrib["RefId"]]
        if tag == "Obj":
            return self.obj(element)
        raise Unsure(tag)

    def obj(self, element: ET.Element, generic: bool = False) -> Any:
        types: list[str] = []
        for child in element:
            if child.tag == "TN":
                types = [str(name.text) for name in child]
                self.type_lists[child.attrib["RefId"]] = types
            elif child.tag == "TNRef":
                types = self.type_lists[child.attrib["RefId"]]
        kind = _kind(types)
        ref = element.attrib["RefId"]
        if kind == "list":
            items: list[Any] = []
            self.objects[ref] = items
            # pypsrp reads the entries of an Object[] as GenericComplexObject whatever their types
            generic = any(name in ("System.Object[]", "Deserialized.System.Object[]") for name in types)
            for child in element:
                if child.tag in ("LST", "IE"):
                    for entry in child:
                        if generic and entry.tag == "Obj":
                            items.append(self.obj(entry, generic=True))
                        else:
                            items.append(self.value(entry))
            return items
        if generic and kind != "generic":
            raise Unsure("a list inside Object[]")
        result = GenericComplexObject()
        self.objects[ref] = result
        for child in element:
            tag = child.tag
            if tag in ("TN", "TNRef"):
                continue
            if tag == "Props":
                result.types = types
                for prop in child:
                    result.adapted_properties[prop.attrib["N"]] = self.value(prop)
            elif tag == "MS":
                for prop in child:
                    result.extended_properties[prop.attrib["N"]] = self.value(prop)
            elif tag == "ToString":
                result.to_string = self.value(child)
            elif tag in ("LST", "IE", "DCT", "QUE", "STK"):
                raise Unsure(tag)  # pypsrp keeps such a child as raw XML text
            else:
                result.property_sets.append(self.value(child))
        result.types = types
        return result


def read_output(serializer: Serializer, text: str) -> Any:
    """A PIPELINE_OUTPUT message's object as pypsrp 0.9.1 would deserialise it; Unsure when not certain."""
    try:
        element = ET.fromstring(text)
    except ET.ParseError as exc:
        raise Unsure("not XML") from exc
    return _Reader(serializer).value(element)


class LeafFastSerializer(Serializer):
    """pypsrp's Serializer with a direct path for primitive leaf elements (see the module docstring)."""

    _LEAVES: ClassVar[dict[str, Callable[[ET.Element], int]]] = {
        "I32": _integer, "I64": _integer, "U32": _integer, "I16": _integer, "By": _integer,
    }

    def deserialize(self, element: ET.Element | str, metadata: Any = None, clear: bool = True) -> Any:
        if metadata is None and clear and isinstance(element, str):
            try:
                return read_output(self, element)
            except (Unsure, KeyError, ValueError):
                pass
        if metadata is None and not clear and not isinstance(element, str):
            tag = element.tag
            if tag == "S":
                return self._deserialize_string(element.text)
            if tag == "B":
                return (element.text or "").lower() == "true"
            if tag == "Nil":
                return None
            if tag == "Ref":
                return self.obj[element.attrib["RefId"]]
            leaf = self._LEAVES.get(tag)
            if leaf is not None:
                return leaf(element)
        return super().deserialize(element, metadata, clear)


def install(pool: RunspacePool) -> None:
    """Use :class:`LeafFastSerializer` for ``pool`` from now on (idempotent)."""
    current = pool._serializer
    if isinstance(current, LeafFastSerializer):
        return
    faster = LeafFastSerializer()
    faster.__dict__.update(current.__dict__)
    pool._serializer = faster
    pool._fragmenter.serializer = faster
