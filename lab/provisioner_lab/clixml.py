"""Fast CLIXML: reading the CREATE_PIPELINE message pypsrp sends and string records of pipeline input, writing the
engine's output objects.

psrpcore deserialises the whole message generically (HostInfo included) into PSObjects, which costs milliseconds
per pipeline; the lab only needs the commands, their arguments and NoInput. :func:`parse_create_pipeline` walks
the XML directly and returns plain values (``str``, ``bool``, ``int``, ``float``, ``None``, ``list``, ``dict``).
Anything it does not understand (secure strings, object references, ...) raises :class:`Unsupported` and the
caller falls back to psrpcore. :func:`parse_pipeline_input` does the same for a PIPELINE_INPUT record that is one
string (or null), decoding it exactly as psrpcore does.

The same goes for output: psrpcore builds a PSObject tree per result object and serialises it through
ElementTree (~0.7 ms for a small ACE object); :class:`Writer` renders LabObject/LabEnum/lists/dicts straight to
CLIXML text in the shape psrpcore would produce (adapted properties in ``<Props>``, ``<ToString>``, enums as
``<Obj>`` with the integer, type names and text).
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from provisioner_lab.api import Argument, Invocation, LabEnum, LabObject, Statement


class Unsupported(Exception):
    """The message uses CLIXML this reader does not handle; use psrpcore instead."""


@dataclass(frozen=True)
class CreatePipeline:
    no_input: bool
    statements: list[Statement]


_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")  # lower-case x only, as PowerShell and psrpcore decode
_INTEGERS = frozenset({"I16", "I32", "I64", "U16", "U32", "U64", "By", "SB"})
_STRINGS = frozenset({"S", "URI", "XD", "SBK", "Version", "DT", "TS", "G", "D"})
_LISTS = frozenset({"LST", "IE", "STK", "QUE"})


def decode_string(text: str | None) -> str:
    """Undo CLIXML string escaping (``_xHHHH_``, UTF-16 code units, surrogate pairs combined)."""
    if not text:
        return ""
    if "_x" not in text:
        return text
    decoded = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return decoded


def value(element: ElementTree.Element) -> Any:
    """A CLIXML value as a plain Python value."""
    tag = element.tag
    if tag == "Nil":
        return None
    if tag in _STRINGS:
        return decode_string(element.text)
    if tag == "B":
        return (element.text or "").strip().lower() == "true"
    if tag in _INTEGERS:
        return int(element.text or "0")
    if tag in ("Db", "Sg"):
        return float(element.text or "0")
    if tag == "C":
        return chr(int(element.text or "0"))
    if tag == "BA":
        return base64.b64decode(element.text or "")
    if tag == "Obj":
        return _object(element)
    if tag == _PLACEHOLDER:
        raise _NotSimple("a pre-read command used as a value")
    raise Unsupported(tag)


def _object(element: ElementTree.Element) -> Any:
    to_string: str | None = None
    props: dict[str, Any] = {}
    primitive: Any = None
    has_primitive = False
    for child in element:
        tag = child.tag
        if tag in _LISTS:
            return [value(item) for item in child]
        if tag == "DCT":
            result: dict[Any, Any] = {}
            for entry in child:
                key = value_named(entry, "Key")
                result[key] = value_named(entry, "Value")
            return result
        if tag in ("TN", "TNRef"):
            continue
        if tag == "ToString":
            to_string = decode_string(child.text)
        elif tag in ("MS", "Props"):
            for prop in child:
                props[decode_string(prop.attrib.get("N", ""))] = value(prop)
        else:
            primitive = value(child)
            has_primitive = True
    if props:
        return props
    if to_string is not None:
        return to_string  # e.g. an enum: its text, as PowerShell would bind it
    if has_primitive:
        return primitive
    return None


def value_named(parent: ElementTree.Element, name: str) -> Any:
    for child in parent:
        if child.attrib.get("N") == name:
            return value(child)
    raise Unsupported(f"missing {name}")


def _members(obj: ElementTree.Element) -> dict[str, ElementTree.Element]:
    members: dict[str, ElementTree.Element] = {}
    for group in obj:
        if group.tag in ("MS", "Props"):
            for child in group:
                name = child.attrib.get("N")
                if name is not None:
                    members[name] = child
    return members


def _list_items(obj: ElementTree.Element | None) -> list[ElementTree.Element]:
    if obj is None or obj.tag != "Obj":
        raise Unsupported("expected a list object")
    for child in obj:
        if child.tag in _LISTS:
            return list(child)
    raise Unsupported("expected a list object")


def _command(obj: ElementTree.Element, commands: list[Invocation]) -> Invocation:
    if commands and obj.tag == _PLACEHOLDER:
        return commands[int(obj.attrib["I"])]
    if obj.tag != "Obj":
        raise Unsupported("command is not an object")
    members = _members(obj)
    cmd = members.get("Cmd")
    if cmd is None or cmd.tag != "S":
        raise Unsupported("command without Cmd")
    is_script = members.get("IsScript")
    arguments = []
    for arg in _list_items(members.get("Args")):
        arg_members = _members(arg)
        name_el, value_el = arg_members.get("N"), arg_members.get("V")
        if name_el is None or value_el is None:
            raise Unsupported("argument without N/V")
        name = value(name_el)
        arguments.append(Argument(name=None if name is None else str(name), value=value(value_el)))
    return Invocation(
        name=decode_string(cmd.text),
        arguments=tuple(arguments),
        is_script=is_script is not None and value(is_script) is True,
    )


# --- pre-reading pypsrp's command objects ----------------------------------------------------------------------------
#
# A 100-statement CREATE_PIPELINE is ~124 KB and ~14,000 elements, most of them the nine Merge* enums of every
# command; ElementTree takes ~6 ms to build that tree. Command objects in exactly pypsrp's shape (simple argument
# values only) are therefore read with a regular expression and replaced in the text by a placeholder element
# ``<_lab_cmd_ I="k"/>``; ElementTree then parses the small remainder, and _command returns the pre-read command for
# a placeholder. The pattern only matches balanced markup whose text has no '<' or '&', so the tree of the
# remainder is the original tree with those subtrees swapped for placeholders, and the pre-read Invocation is what
# _command would have built from the subtree. Documents where that reasoning could fail (declarations, comments,
# CDATA, characters XML rejects or normalises) skip the pre-reading; a placeholder reached anywhere but in a command
# list (where a value is expected) makes parse_create_pipeline start again without it.


class _NotSimple(Exception):
    """A pre-read command turned up where a value was expected; parse the whole document with ElementTree."""


_PLACEHOLDER = "_lab_cmd_"
_TEXT = "[^<&]*"
_REF = 'RefId="[0-9]+"'
_TYPES = rf"(?:<TNRef {_REF} />|<TN {_REF}>(?:<T>{_TEXT}</T>)+</TN>)"
_MERGE = rf'<Obj {_REF} N="Merge[A-Za-z]+">{_TYPES}<ToString>[A-Za-z]*</ToString><I32>-?[0-9]+</I32></Obj>'


def _arg_pattern(group: str) -> str:
    """One argument object with a simple value; ``group`` is ``"("`` to capture its parts, ``"(?:"`` not to."""
    name = rf'<S N="N">{group}{_TEXT})</S>|{group}<Nil N="N" />)'
    arg_value = (
        rf'<S N="V">{group}{_TEXT})</S>|{group}<Nil N="V" />)|<B N="V">{group}true|false)</B>'
        rf'|<I32 N="V">{group}-?[0-9]{{1,10}})</I32>'
    )
    return rf"<Obj {_REF}><MS>(?:{name})(?:{arg_value})</MS></Obj>"


_COMMAND = re.compile(
    rf'<Obj {_REF}><MS><S N="Cmd">({_TEXT})</S><B N="IsScript">(true|false)</B><Nil N="UseLocalScope" />'
    rf'(?:{_MERGE})*<Obj {_REF} N="Args">{_TYPES}<LST>((?:{_arg_pattern("(?:")})*)</LST></Obj>(?:{_MERGE})*'
    r"</MS></Obj>"
)
_ARGS = re.compile(_arg_pattern("("))
#: bytes XML rejects (C0 controls but tab and newline) or normalises (carriage return)
_CONTROLS = bytes(code for code in range(32) if code not in (9, 10))
#: U+FEFF (a byte-order mark is dropped by the XML parser), U+FFFE and U+FFFF (rejected), "]]>" (rejected in text)
_AWKWARD = (b"\xef\xbb\xbf", b"\xef\xbf\xbe", b"\xef\xbf\xbf", b"]]>")


def _argument(groups: tuple[str, ...]) -> Argument:
    """An Argument from the groups of one _ARGS match, as _command would build it from the element."""
    name, nil_name, text, nil_value, boolean, number = groups
    arg_value: Any
    if nil_value:
        arg_value = None
    elif boolean:
        arg_value = boolean == "true"
    elif number:
        arg_value = int(number)
    else:
        arg_value = decode_string(text)
    return Argument(name=None if nil_name else decode_string(name), value=arg_value)


def _pre_read(text: str, commands: list[Invocation]) -> str:
    """The text with pypsrp-shaped command objects replaced by placeholders (their Invocations in ``commands``)."""

    def replace(match: re.Match[str]) -> str:
        name, is_script, args = match.groups()
        arguments = tuple(_argument(groups) for groups in _ARGS.findall(args))
        commands.append(Invocation(name=decode_string(name), arguments=arguments, is_script=is_script == "true"))
        return f'<{_PLACEHOLDER} I="{len(commands) - 1}"/>'

    return _COMMAND.sub(replace, text)


def _parse(data: bytes | str, commands: list[Invocation], extra_cmds: bool = True) -> CreatePipeline:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise Unsupported(str(exc)) from exc
    if root.tag != "Obj":
        raise Unsupported(root.tag)
    members = _members(root)
    no_input_el = members.get("NoInput")
    powershell = members.get("PowerShell")
    if powershell is None or powershell.tag != "Obj":
        raise Unsupported("no PowerShell member")
    ps_members = _members(powershell)
    extra = ps_members.get("ExtraCmds") if extra_cmds else None
    if extra is not None and extra.tag == "Obj":
        statement_lists = [_list_items(_members(entry).get("Cmds")) for entry in _list_items(extra)]
    else:
        statement_lists = [_list_items(ps_members.get("Cmds"))]
    statements = [
        Statement(commands=tuple(_command(c, commands) for c in cmds)) for cmds in statement_lists if cmds
    ]
    no_input = True if no_input_el is None else value(no_input_el) is True
    return CreatePipeline(no_input=no_input, statements=statements)


def _simple(data: bytes) -> str | None:
    """The message as text if the pre-reading may be used on it (see above), else None."""
    if data.isascii():  # the multi-byte sequences of _AWKWARD cannot occur; ASCII decodes the same as UTF-8
        if b"]]>" in data or len(data.translate(None, _CONTROLS)) != len(data):
            return None
        return data.decode("ascii")
    return _simple_any(data)


def _simple_any(data: bytes) -> str | None:
    """:func:`_simple` without the shortcut for ASCII."""
    if any(awkward in data for awkward in _AWKWARD) or len(data.translate(None, _CONTROLS)) != len(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_create_pipeline(data: bytes, *, extra_cmds: bool = True) -> CreatePipeline:
    """Read NoInput and the statements from a CREATE_PIPELINE message body.

    ``extra_cmds=False`` reads as a Windows PowerShell 2.0 server (protocol 2.1) does: only ``Cmds``, the first
    statement; the ``ExtraCmds`` list (PowerShell 3.0's batch of statements) is not looked at.
    """
    text = _simple(data)
    if text is not None and _PLACEHOLDER not in text:
        commands: list[Invocation] = []
        skeleton = _pre_read(text, commands)
        # comments, CDATA, DOCTYPE and processing instructions (an encoding declaration) are outside the commands
        if commands and "<!" not in skeleton and "<?" not in skeleton:
            try:
                return _parse(skeleton, commands, extra_cmds)
            except _NotSimple:
                pass
    try:
        return _parse(data, [], extra_cmds)
    except _NotSimple as exc:  # an element named like the placeholder in the message itself: an unknown tag
        raise Unsupported(_PLACEHOLDER) from exc


# --- reading PIPELINE_INPUT ------------------------------------------------------------------------------------------
#
# A piped read or write sends one PIPELINE_INPUT message per record, ~2,900 in a 1,000-mailbox no-op, each a string
# (``<S>text</S>``); psrpcore builds an ElementTree and a PSString for each. :func:`parse_pipeline_input` reads the
# shapes psrpcore's serializer writes for a string or None without either, and gives the value psrpcore's
# deserializer gives (through :func:`provisioner_lab.convert.to_plain`); any other message, or text the XML parser
# would reject or change (the checks of :func:`_simple`, markup, a character reference), is Unsupported and goes to
# psrpcore, which reads it (or fails on it) as before.

_INPUT_EMPTY = {b"<S />": "", b"<S/>": "", b"<S></S>": "", b"<Nil />": None, b"<Nil/>": None}
_ENTITY = re.compile("&(amp|lt|gt|quot|apos);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
#: psrpcore's own pattern for ``_xHHHH_``, applied as psrpcore applies it: to the UTF-16-BE bytes of the text
_UTF16_ESCAPE = re.compile(rb"\x00_\x00x((?:\x00[a-fA-F0-9]){4})\x00_")


def _utf16_code_unit(match: re.Match[bytes]) -> bytes:
    return bytes.fromhex(match.group(1).decode("utf-16-be"))


def decode_psrpcore_string(text: str) -> str:
    """A string element's text as psrpcore's deserializer decodes it: its ``_xHHHH_`` pattern (lower-case ``x``)
    matched over the text's UTF-16-BE bytes, each match replaced by the code unit, the bytes decoded back with
    lone surrogates kept. A match needs ``_x``, or (at an odd byte offset, which psrpcore's pattern also finds)
    the character U+5F00; text with neither is returned as it is."""
    if "_x" not in text and "\u5f00" not in text:
        return text
    return _UTF16_ESCAPE.sub(_utf16_code_unit, text.encode("utf-16-be")).decode("utf-16-be", "surrogatepass")


def parse_pipeline_input(data: bytes) -> str | None:
    """The record of a PIPELINE_INPUT message whose CLIXML is one string (``<S>text</S>``, ``<S />``) or ``<Nil />``,
    as the psrpcore path hands it to the command (psrpcore's deserializer, then ``convert.to_plain``); raises
    :class:`Unsupported` for anything else."""
    if data in _INPUT_EMPTY:
        return _INPUT_EMPTY[data]
    if not (data.startswith(b"<S>") and data.endswith(b"</S>")):
        raise Unsupported("not a string record")
    text = _simple(data)  # None: bytes the XML parser rejects or changes, or not UTF-8
    if text is None:
        raise Unsupported("text the XML parser would not take as it is")
    text = text[3:-4]
    if "<" in text:
        raise Unsupported("markup in a string record")
    if "&" in text:
        if "&" in _ENTITY.sub("", text):
            raise Unsupported("a character reference")  # or a bare '&', which the parser rejects
        text = _ENTITY.sub(lambda match: _ENTITIES[match.group(1)], text)
    return decode_psrpcore_string(text)


# --- writing ---------------------------------------------------------------------------------------------------------

_SERIAL_ESCAPE_ESCAPE = re.compile("(?i)_(x)")
_SERIAL_ESCAPE = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff\U00010000-\U0010ffff]")
_LIST_TYPES = ("System.Collections.ArrayList", "System.Object")
_HASHTABLE_TYPES = ("System.Collections.Hashtable", "System.Object")
_ENUM_BASES = ("System.Enum", "System.ValueType", "System.Object")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _escape_char(match: re.Match[str]) -> str:
    raw = match.group(0).encode("utf-16-be", errors="surrogatepass").hex().upper()
    return "".join(f"_x{raw[i : i + 4]}_" for i in range(0, len(raw), 4))


def encode_string(text: str) -> str:
    """CLIXML string escaping (``_x`` itself, C0/C1 controls, non-BMP as UTF-16 pairs), then XML escaping."""
    if text.isascii() and text.isprintable() and "_" not in text and "&" not in text and "<" not in text \
            and ">" not in text:
        return text  # printable ASCII without '_' or XML specials: every step of _encode_any leaves it as it is
    return _encode_any(text)


def _encode_any(text: str) -> str:
    """:func:`encode_string` without the shortcut for plain text."""
    if "_" in text:
        text = _SERIAL_ESCAPE_ESCAPE.sub(r"_x005F_\1", text)
    if not (text.isascii() and text.isprintable()):  # printable ASCII has nothing _SERIAL_ESCAPE matches
        text = _SERIAL_ESCAPE.sub(_escape_char, text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@functools.lru_cache(maxsize=4096)
def _attr(name: str) -> str:
    return encode_string(name).replace('"', "&quot;")


@functools.lru_cache(maxsize=1024)
def _type_list(names: tuple[str, ...]) -> str:
    return "".join(f"<T>{encode_string(t)}</T>" for t in names)


@functools.lru_cache(maxsize=4096)
def _name_attr(name: str | None) -> str:
    """The `` N="..."`` attribute of a named value (nothing for None)."""
    return f' N="{_attr(name)}"' if name is not None else ""


@functools.lru_cache(maxsize=1024)
def _object_types(type_names: tuple[str, ...]) -> tuple[str, ...]:
    """A LabObject's type names as written: System.Object appended when missing."""
    names = tuple(type_names)
    return names if "System.Object" in names else (*names, "System.Object")


@functools.lru_cache(maxsize=1024)
def _enum_types(type_names: tuple[str, ...]) -> tuple[str, ...]:
    """A LabEnum's type names as written: the enum bases appended when missing."""
    return tuple(type_names) + tuple(t for t in _ENUM_BASES if t not in type_names)


class Writer:
    """Renders engine values (LabObject/LabEnum/list/dict/primitives) as one CLIXML document.

    Each PSRP message is its own document, so RefIds start again for every :meth:`render`. Type-name lists are
    written once and referenced with ``TNRef`` afterwards, as PowerShell does.
    """

    def __init__(self) -> None:
        self._ref = 0
        self._tn: dict[tuple[str, ...], int] = {}

    def render(self, item: Any) -> bytes:
        self._ref = 0
        self._tn = {}
        parts: list[str] = []
        self._value(item, None, parts)
        return "".join(parts).encode("utf-8")

    def _open_obj(self, name: str | None, parts: list[str]) -> None:
        ref = self._ref
        self._ref += 1
        parts.append(f'<Obj N="{_attr(name)}" RefId="{ref}">' if name is not None else f'<Obj RefId="{ref}">')

    def _type_names(self, names: tuple[str, ...], parts: list[str]) -> None:
        ref = self._tn.get(names)
        if ref is not None:
            parts.append(f'<TNRef RefId="{ref}" />')
            return
        ref = len(self._tn)
        self._tn[names] = ref
        parts.append(f'<TN RefId="{ref}">{_type_list(names)}</TN>')

    def _value(self, item: Any, name: str | None, parts: list[str]) -> None:
        # Branch order: the types an ACE object is made of first. The types are disjoint except bool < int, and
        # bool is tested before int, so the order does not change which branch an item takes.
        n = _name_attr(name)
        if item is None:
            parts.append(f"<Nil{n} />")
        elif isinstance(item, str):
            parts.append(f"<S{n}>{encode_string(item)}</S>")
        elif isinstance(item, LabObject):
            self._open_obj(name, parts)
            self._type_names(_object_types(item.type_names), parts)
            if item.properties:
                parts.append("<MS>" if item.note_properties else "<Props>")
                for key, prop in item.properties.items():
                    self._value(prop, key if type(key) is str else str(key), parts)
                parts.append("</MS>" if item.note_properties else "</Props>")
            if item.note_properties:  # a property bag: PowerShell writes no ToString for it
                parts.append("</Obj>")
            else:
                parts.append(f"<ToString>{encode_string(item.to_string)}</ToString></Obj>")
        elif isinstance(item, bool):
            parts.append(f"<B{n}>{'true' if item else 'false'}</B>")
        elif isinstance(item, LabEnum):
            self._open_obj(name, parts)
            value = int(item.value)
            tag = "I32" if _INT32_MIN <= value <= _INT32_MAX else "I64"
            parts.append(f"<{tag}>{value}</{tag}>")
            self._type_names(_enum_types(item.type_names), parts)
            parts.append(f"<ToString>{encode_string(item.text)}</ToString></Obj>")
        elif isinstance(item, int):
            tag = "I32" if _INT32_MIN <= item <= _INT32_MAX else "I64"
            parts.append(f"<{tag}{n}>{int(item)}</{tag}>")
        elif isinstance(item, float):
            parts.append(f"<Db{n}>{item!r}</Db>")
        elif isinstance(item, (list, tuple)):
            self._open_obj(name, parts)
            self._type_names(_LIST_TYPES, parts)
            parts.append("<LST>")
            for entry in item:
                self._value(entry, None, parts)
            parts.append("</LST></Obj>")
        elif isinstance(item, dict):
            self._open_obj(name, parts)
            self._type_names(_HASHTABLE_TYPES, parts)
            parts.append("<DCT>")
            for key, entry in item.items():
                parts.append("<En>")
                self._value(key, "Key", parts)
                self._value(entry, "Value", parts)
                parts.append("</En>")
            parts.append("</DCT></Obj>")
        else:
            raise Unsupported(type(item).__name__)


def render_output(writer: Writer, item: Any) -> bytes:
    """Render one output object (the hook tests replace to force psrpcore's serialiser)."""
    return writer.render(item)
