"""Client-side CPU for large pipelines: two narrow shortcuts around pypsrp 0.9.1, same bytes and same objects.

Measured on a 100-statement pipeline, pypsrp spends most of its time on two things that do not change what
goes over the wire or what comes back:

* serialising: ``Pipeline._get_statements`` deep-copies every Command twice (a guard for lxml, where an element
  can have one parent only). The ElementTree serializer builds new elements for every occurrence and never
  shares them, so :class:`SharedCommand` makes that copy return the command itself. Building the
  CREATE_PIPELINE message then still costs about a millisecond per command; :func:`create_pipeline_xml` writes
  it as text instead, and only after writing a *sample* pipeline (one command of each shape in the batch,
  cheap) exactly as pypsrp does, byte for byte; otherwise pypsrp serialises the message as usual.
* deserialising: ``Serializer.deserialize`` rebuilds its table of ~60 known types and re-serialises the element
  to a string for every node, including every primitive leaf. :class:`LeafFastSerializer` reads pipeline output
  objects (the PIPELINE_OUTPUT messages, whose objects pypsrp turns into ``GenericComplexObject``, lists and
  dicts) with :func:`read_output`, which builds the same values in one pass; anything it is not sure about
  (a type pypsrp maps to one of its own classes, an unknown tag) goes to pypsrp unchanged. Inside messages
  pypsrp reads itself (error records, warnings), primitive leaves, generic objects, dictionaries and lists are
  read the same way, only the objects this reader is unsure of go to pypsrp (one by one, not the whole
  record), and the property lookups of its classes use an index instead of ElementPath searches. This matters
  because pypsrp re-serialises every nested element it reads to text (``ET.tostring``), so a nested record cost
  it time quadratic in its depth. The one difference: objects read here do not keep their raw XML text
  (pypsrp's private ``_xml``), which nothing in provisioner reads. ``tests/test_wire_reader.py`` compares both
  readers on generated documents.

:func:`install` puts the serializer on an open pool (keeping its state, e.g. the session cipher).

This is an **option** (``[connection] fast_wire = true`` or ``--fast-wire``), never the default path: it relies on
pypsrp internals (``RunspacePool._serializer``, ``_fragmenter``, ``Serializer._deserialize_obj``). It is switched on
only for the pypsrp versions it was verified on, byte for byte and object for object (:data:`VERIFIED_PYPSRP`,
``tests/test_wire_reader.py``); on any other version :func:`unavailable` says why and pypsrp's own path runs.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pypsrp.complex_objects import (
    Command,
    CommandOrigin,
    DictionaryMeta,
    GenericComplexObject,
    ListMeta,
    ObjectMeta,
    SessionStateEntryVisibility,
)
from pypsrp.messages import CreatePipeline
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.serializer import Serializer


class SharedCommand(Command):
    """A Command whose deep copy is itself (see the module docstring)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedCommand:
        return self


_MERGES_BEFORE_ARGS = ("merge_my_result", "merge_to_result", "merge_previous")
_MERGES_AFTER_ARGS = ("merge_error", "merge_warning", "merge_verbose", "merge_debug", "merge_information")
_MERGE_NAMES = {"merge_my_result": "MergeMyResult", "merge_to_result": "MergeToResult",
                "merge_previous": "MergePreviousResults", "merge_error": "MergeError",
                "merge_warning": "MergeWarning", "merge_verbose": "MergeVerbose", "merge_debug": "MergeDebug",
                "merge_information": "MergeInformation"}
_MERGE_TYPES = ("System.Management.Automation.Runspaces.PipelineResultTypes", "System.Enum", "System.ValueType",
                "System.Object")
_ARRAY_TYPES = ("System.Object[]", "System.Array", "System.Object")
_TN = re.compile(r'<TN RefId="(\d+)">((?:<T>[^<]*</T>)+)</TN>')
_OBJ_REF = re.compile(r'<Obj RefId="(\d+)"')


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _value_kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "strings"
    raise Unsure(type(value).__name__)


def _shape(command: Any) -> tuple[Any, ...]:
    if command.is_script is not False or command.use_local_scope is not None or not command.end_of_statement:
        raise Unsure("not a plain cmdlet statement")
    merges = tuple((name, getattr(command, name).value) for name in (*_MERGES_BEFORE_ARGS, *_MERGES_AFTER_ARGS))
    if any(value != 0 for _, value in merges):
        raise Unsure("merged streams")
    return (command.cmd, tuple((arg.name, _value_kind(arg.value)) for arg in command.args))


class _Writer:
    """Writes the commands part of a CREATE_PIPELINE message the way pypsrp 0.9.1 serialises it."""

    def __init__(self, serializer: Serializer, next_ref: int, types: dict[tuple[str, ...], int],
                 strings: dict[str, str] | None = None) -> None:
        self.serializer = serializer
        self.next_ref = next_ref
        self.types = dict(types)
        self.parts: list[str] = []
        self.strings: dict[str, str] = {} if strings is None else strings  # value -> its escaped text

    def ref(self) -> int:
        self.next_ref += 1
        return self.next_ref - 1

    def type_names(self, names: tuple[str, ...]) -> str:
        known = self.types.get(names)
        if known is not None:
            return f'<TNRef RefId="{known}" />'
        self.types[names] = len(self.types)
        listed = "".join(f"<T>{_text(name)}</T>" for name in names)
        return f'<TN RefId="{self.types[names]}">{listed}</TN>'

    def string(self, value: str) -> str:
        written = self.strings.get(value)
        if written is None:  # a batch repeats its cmdlet, parameter names and trustee in every statement
            written = self.strings[value] = _text(self.serializer._serialize_string(value) or "")
        return written

    def merge(self, name: str) -> str:
        return (f'<Obj RefId="{self.ref()}" N="{_MERGE_NAMES[name]}">{self.type_names(_MERGE_TYPES)}'
                "<ToString>None</ToString><I32>0</I32></Obj>")

    def argument(self, name: str, value: Any) -> str:
        head = f'<Obj RefId="{self.ref()}"><MS><S N="N">{self.string(name)}</S>'
        if value is None:
            body = '<Nil N="V" />'
        elif isinstance(value, bool):
            body = f'<B N="V">{"true" if value else "false"}</B>'
        elif isinstance(value, str):
            body = f'<S N="V">{self.string(value)}</S>'
        else:
            items = "".join(f"<S>{self.string(item)}</S>" for item in value)
            body = f'<Obj RefId="{self.ref()}" N="V">{self.type_names(_ARRAY_TYPES)}<LST>{items}</LST></Obj>'
        return head + body + "</MS></Obj>"

    def command(self, command: Any, list_types: tuple[str, ...]) -> str:
        parts = [f'<Obj RefId="{self.ref()}"><MS><S N="Cmd">{self.string(command.cmd)}</S>'
                 '<B N="IsScript">false</B><Nil N="UseLocalScope" />']
        parts.extend(self.merge(name) for name in _MERGES_BEFORE_ARGS)
        parts.append(f'<Obj RefId="{self.ref()}" N="Args">{self.type_names(list_types)}<LST>')
        parts.extend(self.argument(arg.name, arg.value) for arg in command.args)
        parts.append("</LST></Obj>")
        parts.extend(self.merge(name) for name in _MERGES_AFTER_ARGS)
        parts.append("</MS></Obj>")
        return "".join(parts)

    def commands(self, commands: list[Any], list_types: tuple[str, ...]) -> str:
        """ExtraCmds' entries (one statement per command), then the Cmds object (the first statement again)."""
        parts = []
        for command in commands:
            statement = self.ref()
            cmds = self.ref()
            parts.append(f'<Obj RefId="{statement}"><MS><Obj RefId="{cmds}" N="Cmds">{self.type_names(list_types)}'
                         f"<LST>{self.command(command, list_types)}</LST></Obj></MS></Obj>")
        parts.append(f'</LST></Obj><Obj RefId="{self.ref()}" N="Cmds">{self.type_names(list_types)}'
                     f"<LST>{self.command(commands[0], list_types)}</LST></Obj>")
        return "".join(parts)


def _frame(xml: str) -> tuple[str, str, int, dict[tuple[str, ...], int], tuple[str, ...]]:
    """pypsrp's message split around the statements: prefix (through ExtraCmds' <LST>), suffix, counters."""
    start = xml.index('N="ExtraCmds">')
    head_end = xml.index("<LST>", start) + len("<LST>")
    prefix = xml[:head_end]
    suffix = xml[xml.rindex("</LST></Obj>") + len("</LST></Obj>"):]
    types = {tuple(re.findall(r"<T>([^<]*)</T>", names)): int(ref) for ref, names in _TN.findall(prefix)}
    list_types = next(names for names, ref in types.items() if f'<TN RefId="{ref}">' in xml[start:head_end])
    refs = [int(ref) for ref in _OBJ_REF.findall(prefix)]
    return prefix, suffix, max(refs) + 1, types, list_types


def create_pipeline_xml(serializer: Serializer, message: Any) -> str:
    """The CREATE_PIPELINE message as pypsrp would write it; Unsure when that cannot be shown on a sample."""
    pipeline = message.pipeline
    commands = list(pipeline.commands)
    if len(commands) < 2:
        raise Unsure("one statement")
    seen: dict[tuple[Any, ...], Any] = {}
    for command in commands:
        seen.setdefault(_shape(command), command)
    sample = list(seen.values())
    if len(sample) < 2:
        sample = commands[:2]
    pipeline.commands = sample
    try:
        element = Serializer.serialize(serializer, message)
    finally:
        pipeline.commands = commands
    if element is None:
        raise Unsure("nothing serialised")
    reference = ET.tostring(element, encoding="unicode", method="xml")
    prefix, suffix, next_ref, types, list_types = _frame(reference)
    strings: dict[str, str] = {}
    written = prefix + _Writer(serializer, next_ref, types, strings).commands(sample, list_types) + suffix
    if written != reference:
        raise Unsure("the writer does not match pypsrp for this pipeline")
    return prefix + _Writer(serializer, next_ref, types, strings).commands(commands, list_types) + suffix


def share_commands(ps: PowerShell) -> None:
    """Make the commands of ``ps`` SharedCommands (call after adding them, before invoking)."""
    for command in ps.commands:
        command.__class__ = SharedCommand


def _untyped(metadata: Any) -> bool:
    """An ObjectMeta that pypsrp resolves from the element's type names exactly as it does without metadata."""
    return type(metadata) is ObjectMeta and metadata.object is None and metadata.tag in ("*", "Obj")


def _check_typed(entry: ET.Element) -> None:
    """Unsure for a list entry that is an Obj without type names.

    pypsrp reads all entries of a list with one shared ObjectMeta, whose "*" tag the first entry overwrites with
    its own; an Obj without type names is read as GenericComplexObject only while that tag is "Obj" (else as raw
    XML text), so how it is read depends on the entries before it. Such a list is left to pypsrp.
    """
    if entry.tag == "Obj" and not any(part.tag in ("TN", "TNRef") for part in entry):
        raise Unsure("an object without type names in a list")


def _integer(element: ET.Element) -> int:
    return int(element.text or "0")


class Unsure(Exception):
    """The fast reader leaves this element to pypsrp."""


_LIST_TYPES = frozenset({"System.Array", "System.Collections.ArrayList", "System.Object[]"})
# Type names pypsrp 0.9.1 maps to something other than GenericComplexObject or a plain list (its table in
# Serializer.deserialize, and the generic collection prefixes it parses): the fast reader leaves these to it.
_SMA = "System.Management.Automation."
_PYPSRP_TYPES = frozenset({
    "System.Collections.Hashtable", "System.Collections.Queue", "System.Collections.Stack", "System.ConsoleColor",
    "System.Globalization.CultureInfo", "System.String", "System.Char", "System.Boolean", "System.DateTime",
    "System.Byte", "System.SByte", "System.UInt16", "System.Int16", "System.UInt32", "System.Int32", "System.UInt64",
    "System.Int64", "System.Single", "System.Double", "System.Decimal", "System.Guid", "System.Uri", "System.Version",
    "System.Xml.XmlDocument", "System.Security.SecureString", "System.Collections.Generic.List",
    *(_SMA + name for name in (
        "CommandOrigin", "DebugRecord", "ErrorRecord", "Host.Coordinates", "Host.KeyInfo", "Host.Size",
        "InformationalRecord", "InformationRecord", "ParameterMetadata", "ProgressRecordType",
        "PSBoundParametersDictionary", "PSCredential", "PSObject", "PSPrimitiveDictionary", "PSTypeName",
        "Remoting.RemoteHostMethodId", "Runspaces.ApartmentState", "Runspaces.PipelineResultTypes",
        "Runspaces.PSThreadOptions", "Runspaces.RemoteStreamOptions", "SessionStateEntryVisibility", "VerboseRecord",
        "WarningRecord", "ScriptBlock",
    )),
})
# Types pypsrp 0.9.1 reads as a plain dict (DictionaryMeta: its _deserialize_dct, which reads every DCT/En entry's
# Key and Value without metadata; like every Obj, the dictionary is recorded under its RefId once read).
_DICT_TYPES = frozenset({"System.Collections.Hashtable", _SMA + "PSBoundParametersDictionary",
                         _SMA + "PSPrimitiveDictionary"})
_PYPSRP_PREFIXES = ("System.Collections.Generic.", "System.Collections.ObjectModel.", "Selected.")
# Types pypsrp 0.9.1 reads into one of its own classes that error records carry (InvocationInfo's CommandOrigin,
# MyCommand's Visibility): inside a message pypsrp reads, such an object is read by pypsrp's own _deserialize_obj.
_PYPSRP_CLASSES: dict[str, type[Any]] = {
    _SMA + "CommandOrigin": CommandOrigin, _SMA + "SessionStateEntryVisibility": SessionStateEntryVisibility,
}


def _kind(types: list[str]) -> str:
    """How pypsrp 0.9.1 would read an Obj with these type names: "generic", "list", "dict" or a key of
    _PYPSRP_CLASSES; else Unsure."""
    known = _known_kind(tuple(types))
    if not known:
        raise Unsure(",".join(types))
    return known


@functools.lru_cache(maxsize=4096)
def _known_kind(types: tuple[str, ...]) -> str:
    """:func:`_kind_of`, remembered per list of type names ("" for Unsure)."""
    try:
        return _kind_of(types)
    except Unsure:
        return ""


def _kind_of(types: Sequence[str]) -> str:
    for name in types:
        if name.startswith("Deserialized.System."):
            name = name[len("Deserialized."):]
        if name == "System.Object":
            return "generic"
        if name in _LIST_TYPES:
            return "list"
        if name in _DICT_TYPES:
            return "dict"
        if name in _PYPSRP_CLASSES:
            return name
        base = name[:-2] if name.endswith("[]") else name
        if base in _PYPSRP_TYPES or base.startswith(_PYPSRP_PREFIXES):
            raise Unsure(name)
    if not types:
        return "generic"
    raise Unsure(",".join(types))


class _Reader:
    """Reads CLIXML values; RefId and TN tables are per message, as in pypsrp (or pypsrp's own, when nested)."""

    def __init__(self, serializer: Serializer, objects: dict[str, Any] | None = None,
                 type_lists: dict[str, list[str]] | None = None,
                 fallback: Callable[[ET.Element], Any] | None = None) -> None:
        self.serializer = serializer
        self.objects: dict[str, Any] = {} if objects is None else objects
        self.type_lists: dict[str, list[str]] = {} if type_lists is None else type_lists
        # Inside a message pypsrp reads itself (its tables shared), a property object this reader is not sure about
        # is read by pypsrp alone (``fallback``), as pypsrp reads a property without metadata; the rest stays here.
        self.fallback = fallback

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
            if self.fallback is None:
                return self.obj(element)
            try:
                return self.obj(element)
            except (Unsure, KeyError, ValueError):
                return self.fallback(element)
        raise Unsure(tag)

    def _type_names(self, element: ET.Element) -> list[str]:
        """An Obj's type names, from its TN list (remembered by RefId) or a TNRef to an earlier one."""
        types: list[str] = []
        for child in element:
            if child.tag == "TN":
                types = [str(name.text) for name in child]
                self.type_lists[child.attrib["RefId"]] = types
            elif child.tag == "TNRef":
                types = self.type_lists[child.attrib["RefId"]]
        return types

    def obj(self, element: ET.Element, generic: bool = False) -> Any:
        """An Obj as pypsrp reads it without metadata; ``generic``: as GenericComplexObject whatever its types."""
        types = self._type_names(element)
        ref = element.attrib["RefId"]
        if generic:
            return self._generic(element, ref, types)
        kind = _kind(types)
        if kind == "list":
            # pypsrp reads the entries of an Object[] as GenericComplexObject whatever their types, and only the
            # first LST child
            dynamic = any(name in ("System.Object[]", "Deserialized.System.Object[]") for name in types)
            items: list[Any] = []
            entries = next((child for child in element if child.tag == "LST"), None)
            for entry in entries if entries is not None else ():
                if dynamic and entry.tag == "Obj":
                    items.append(self.obj(entry, generic=True))
                else:
                    _check_typed(entry)
                    items.append(self.value(entry))
            self.objects[ref] = items  # pypsrp records every Obj once it is read (a Ref inside it fails there)
            return items
        if kind == "dict":
            return self.dictionary(element)
        if kind != "generic":
            return self.pypsrp_class(element, _PYPSRP_CLASSES[kind])
        return self._generic(element, ref, types)

    def pypsrp_class(self, element: ET.Element, cls: type[Any]) -> Any:
        """An Obj read into one of pypsrp's classes, by pypsrp's _deserialize_obj (only in pypsrp's own tables)."""
        if self.fallback is None:
            raise Unsure(cls.__name__)
        result = self.serializer._deserialize_obj(element, ObjectMeta("Obj", object=cls))
        self.objects[element.attrib["RefId"]] = result
        return result

    def dictionary(self, element: ET.Element) -> dict[Any, Any]:
        """The DCT entries of an Obj, as pypsrp reads a dictionary (recorded under its RefId once read)."""
        result: dict[Any, Any] = {}
        for child in element:
            if child.tag != "DCT":
                continue
            for entry in child:
                if entry.tag != "En":
                    continue
                key = value = None
                for part in entry:
                    name = part.attrib.get("N")
                    if name == "Key" and key is None:
                        key = part
                    elif name == "Value" and value is None:
                        value = part
                if key is None or value is None:
                    raise Unsure("a dictionary entry without Key or Value")
                result[self.value(key)] = self.value(value)
        self.objects[element.attrib["RefId"]] = result
        return result

    def items(self, element: ET.Element) -> list[Any]:
        """The entries of an Obj's first LST, as pypsrp reads a list it is given ListMeta for."""
        self._type_names(element)
        result: list[Any] = []
        for child in element:
            if child.tag == "LST":
                for entry in child:
                    _check_typed(entry)
                    result.append(self.value(entry))
                break
        self.objects[element.attrib["RefId"]] = result
        return result

    def dynamic(self, element: ET.Element) -> GenericComplexObject:
        """An Obj pypsrp is told to read as GenericComplexObject whatever its type names (ObjDynamic)."""
        types = self._type_names(element)
        return self._generic(element, element.attrib["RefId"], types)

    def _generic(self, element: ET.Element, ref: str, types: list[str]) -> GenericComplexObject:
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


_FIND = re.compile(r"^(Props/|MS/)?([A-Za-z0-9]+)(?:\[@N='([^']*)'\])?$")


class _Indexed:
    """An Obj element whose ``find`` for pypsrp's property paths (``[Props/|MS/]Tag[@N='name']``) is a lookup.

    pypsrp's ``_deserialize_obj`` looks every known property of a class up with ElementPath, about a hundred
    searches per error record; this index answers the same paths with the same first match in document order.
    """

    def __init__(self, element: ET.Element) -> None:
        self.element = element
        self.attrib = element.attrib
        self.index: dict[tuple[str, str, str | None], ET.Element] = {}
        for parent, prefix in self._parents():
            for child in parent:
                name = child.attrib.get("N")
                self.index.setdefault((prefix, child.tag, name), child)
                self.index.setdefault((prefix, child.tag, None), child)

    def _parents(self) -> list[tuple[ET.Element, str]]:
        parents = [(self.element, "")]
        for child in self.element:
            if child.tag in ("Props", "MS"):
                parents.append((child, child.tag + "/"))
        return parents

    def find(self, path: str) -> ET.Element | None:
        match = _FIND.match(path)
        if match is None:
            return self.element.find(path)
        return self.index.get((match.group(1) or "", match.group(2), match.group(3)))

    def __iter__(self) -> Any:
        return iter(self.element)


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
        if not clear and not isinstance(element, str):
            # a node inside a message pypsrp is reading (e.g. an error record): primitive leaves convert the same
            # whatever the metadata; objects without metadata (or with a bare "Obj"/"*" ObjectMeta, which pypsrp
            # treats the same way) are read like output objects, in pypsrp's tables
            tag = element.tag
            if metadata is not None and metadata.tag == "*":
                metadata.tag = tag  # what pypsrp does to the metadata it is given (a list's entries share one)
            if tag == "Obj" and (metadata is None or _untyped(metadata)):
                try:
                    return self._nested().obj(element)
                except (Unsure, KeyError, ValueError):
                    return super().deserialize(element, None, clear)
            if tag == "Obj" and getattr(metadata, "tag", None) == "ObjDynamic" and \
                    getattr(metadata, "object", None) is GenericComplexObject:
                try:
                    return self._nested().dynamic(element)
                except (Unsure, KeyError, ValueError):
                    return super().deserialize(element, metadata, clear)
            if tag == "Obj" and type(metadata) is ObjectMeta and metadata.tag == "Obj" and \
                    metadata.object not in (None, GenericComplexObject):
                reader = self._nested()
                reader._type_names(element)  # as pypsrp: the TN table first, then the object, then its RefId
                return reader.pypsrp_class(element, metadata.object)
            if tag == "Obj" and type(metadata) is DictionaryMeta:
                try:
                    reader = self._nested()
                    reader._type_names(element)
                    return reader.dictionary(element)
                except (Unsure, KeyError, ValueError):
                    return super().deserialize(element, metadata, clear)
            if tag == "Obj" and type(metadata) is ListMeta and metadata.tag == "LST" and \
                    type(metadata.list_value_meta) is ObjectMeta and metadata.list_value_meta.object is None:
                # entries: primitives by their tag, objects with type names by those (whatever the entry meta's
                # tag); objects without type names are left to pypsrp (see _check_typed)
                try:
                    return self._nested().items(element)
                except (Unsure, KeyError, ValueError):
                    return super().deserialize(element, metadata, clear)
            if tag in ("S", "ToString"):
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

    def _nested(self) -> _Reader:
        """A reader in pypsrp's RefId and TN tables that leaves the objects it is unsure of to pypsrp, one by one."""
        return _Reader(self, self.obj, self.tn, fallback=self._pypsrp_property)

    def _pypsrp_property(self, element: ET.Element) -> Any:
        return Serializer.deserialize(self, element, None, False)

    def _deserialize_obj(self, element: ET.Element, metadata: Any) -> Any:
        return super()._deserialize_obj(_Indexed(element), metadata)  # type: ignore[arg-type]

    def serialize(self, value: Any, metadata: Any = None, parent: ET.Element | None = None,
                  clear: bool = True) -> Any:
        """As pypsrp; a CREATE_PIPELINE message comes back as its UTF-8 bytes (``Message.pack`` sends bytes as is)."""
        if isinstance(value, CreatePipeline) and metadata is None and parent is None and clear:
            try:
                return create_pipeline_xml(self, value).encode("utf-8")
            except (Unsure, ValueError, StopIteration, AttributeError):
                pass
        return super().serialize(value, metadata, parent, clear)


VERIFIED_PYPSRP = ("0.9.1",)


def unavailable(version: str | None = None) -> str | None:
    """Why the fast path cannot be used with this pypsrp (None: it can)."""
    if version is None:
        from importlib.metadata import version as installed

        version = installed("pypsrp")
    if version not in VERIFIED_PYPSRP:
        return (f"fast_wire is off: it was verified on pypsrp {', '.join(VERIFIED_PYPSRP)} only, this is {version}; "
                "pypsrp's own (slower) reader is used")
    return None


def install(pool: RunspacePool) -> None:
    """Use :class:`LeafFastSerializer` for ``pool`` from now on (idempotent)."""
    current = pool._serializer
    if isinstance(current, LeafFastSerializer):
        return
    faster = LeafFastSerializer()
    faster.__dict__.update(current.__dict__)
    pool._serializer = faster
    pool._fragmenter.serializer = faster
