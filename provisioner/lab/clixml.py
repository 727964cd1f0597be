"""A fast reader for the CREATE_PIPELINE message (CLIXML) that pypsrp sends.

psrpcore deserialises the whole message generically (HostInfo included) into PSObjects, which costs milliseconds
per pipeline; the lab only needs the commands, their arguments and NoInput. :func:`parse_create_pipeline` walks
the XML directly and returns plain values (``str``, ``bool``, ``int``, ``float``, ``None``, ``list``, ``dict``).
Anything it does not understand (secure strings, object references, ...) raises :class:`Unsupported` and the
caller falls back to psrpcore.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from provisioner.lab.api import Argument, Invocation, Statement


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


def _command(obj: ElementTree.Element) -> Invocation:
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


def parse_create_pipeline(data: bytes) -> CreatePipeline:
    """Read NoInput and the statements from a CREATE_PIPELINE message body."""
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
    extra = ps_members.get("ExtraCmds")
    if extra is not None and extra.tag == "Obj":
        statement_lists = [_list_items(_members(entry).get("Cmds")) for entry in _list_items(extra)]
    else:
        statement_lists = [_list_items(ps_members.get("Cmds"))]
    statements = [Statement(commands=tuple(_command(c) for c in cmds)) for cmds in statement_lists if cmds]
    no_input = True if no_input_el is None else value(no_input_el) is True
    return CreatePipeline(no_input=no_input, statements=statements)
