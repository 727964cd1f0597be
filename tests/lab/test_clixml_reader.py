"""The CREATE_PIPELINE reader (regex pre-reading of pypsrp's command objects) against the plain ElementTree
walk it replaced, on messages pypsrp builds and on odd or broken variants of them."""

from __future__ import annotations

import base64
import re
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypsrp.complex_objects import (
    ApartmentState,
    Command,
    CommandParameter,
    HostInfo,
    Pipeline,
    RemoteStreamOptions,
)
from pypsrp.messages import CreatePipeline
from pypsrp.serializer import Serializer

from provisioner.lab import clixml
from provisioner.lab.api import Argument, Invocation, Statement

# --- the reader before the pre-reading (ElementTree for the whole message), as the reference ----------------------

_LISTS = frozenset({"LST", "IE", "STK", "QUE"})


def _ref_value(element: ElementTree.Element) -> Any:
    tag = element.tag
    if tag == "Nil":
        return None
    if tag in {"S", "URI", "XD", "SBK", "Version", "DT", "TS", "G", "D"}:
        return clixml.decode_string(element.text)
    if tag == "B":
        return (element.text or "").strip().lower() == "true"
    if tag in {"I16", "I32", "I64", "U16", "U32", "U64", "By", "SB"}:
        return int(element.text or "0")
    if tag in ("Db", "Sg"):
        return float(element.text or "0")
    if tag == "C":
        return chr(int(element.text or "0"))
    if tag == "BA":
        return base64.b64decode(element.text or "")
    if tag == "Obj":
        return _ref_object(element)
    raise clixml.Unsupported(tag)


def _ref_object(element: ElementTree.Element) -> Any:
    to_string: str | None = None
    props: dict[str, Any] = {}
    primitive: Any = None
    has_primitive = False
    for child in element:
        tag = child.tag
        if tag in _LISTS:
            return [_ref_value(item) for item in child]
        if tag == "DCT":
            result: dict[Any, Any] = {}
            for entry in child:
                result[_ref_named(entry, "Key")] = _ref_named(entry, "Value")
            return result
        if tag in ("TN", "TNRef"):
            continue
        if tag == "ToString":
            to_string = clixml.decode_string(child.text)
        elif tag in ("MS", "Props"):
            for prop in child:
                props[clixml.decode_string(prop.attrib.get("N", ""))] = _ref_value(prop)
        else:
            primitive = _ref_value(child)
            has_primitive = True
    if props:
        return props
    if to_string is not None:
        return to_string
    return primitive if has_primitive else None


def _ref_named(parent: ElementTree.Element, name: str) -> Any:
    for child in parent:
        if child.attrib.get("N") == name:
            return _ref_value(child)
    raise clixml.Unsupported(f"missing {name}")


def _ref_members(obj: ElementTree.Element) -> dict[str, ElementTree.Element]:
    members: dict[str, ElementTree.Element] = {}
    for group in obj:
        if group.tag in ("MS", "Props"):
            for child in group:
                name = child.attrib.get("N")
                if name is not None:
                    members[name] = child
    return members


def _ref_list(obj: ElementTree.Element | None) -> list[ElementTree.Element]:
    if obj is None or obj.tag != "Obj":
        raise clixml.Unsupported("expected a list object")
    for child in obj:
        if child.tag in _LISTS:
            return list(child)
    raise clixml.Unsupported("expected a list object")


def _ref_command(obj: ElementTree.Element) -> Invocation:
    if obj.tag != "Obj":
        raise clixml.Unsupported("command is not an object")
    members = _ref_members(obj)
    cmd = members.get("Cmd")
    if cmd is None or cmd.tag != "S":
        raise clixml.Unsupported("command without Cmd")
    is_script = members.get("IsScript")
    arguments = []
    for arg in _ref_list(members.get("Args")):
        arg_members = _ref_members(arg)
        name_el, value_el = arg_members.get("N"), arg_members.get("V")
        if name_el is None or value_el is None:
            raise clixml.Unsupported("argument without N/V")
        name = _ref_value(name_el)
        arguments.append(Argument(name=None if name is None else str(name), value=_ref_value(value_el)))
    return Invocation(
        name=clixml.decode_string(cmd.text),
        arguments=tuple(arguments),
        is_script=is_script is not None and _ref_value(is_script) is True,
    )


def reference(data: bytes) -> tuple[bool, list[Statement]]:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise clixml.Unsupported(str(exc)) from exc
    if root.tag != "Obj":
        raise clixml.Unsupported(root.tag)
    members = _ref_members(root)
    no_input_el = members.get("NoInput")
    powershell = members.get("PowerShell")
    if powershell is None or powershell.tag != "Obj":
        raise clixml.Unsupported("no PowerShell member")
    ps_members = _ref_members(powershell)
    extra = ps_members.get("ExtraCmds")
    if extra is not None and extra.tag == "Obj":
        statement_lists = [_ref_list(_ref_members(entry).get("Cmds")) for entry in _ref_list(extra)]
    else:
        statement_lists = [_ref_list(ps_members.get("Cmds"))]
    statements = [Statement(commands=tuple(_ref_command(c) for c in cmds)) for cmds in statement_lists if cmds]
    no_input = True if no_input_el is None else _ref_value(no_input_el) is True
    return no_input, statements


# --- comparing ---------------------------------------------------------------------------------------------------

Spec = list[list[tuple[str, bool, list[tuple[str | None, Any]]]]]


def message(statements: Spec, *, no_input: bool = True, local_scope: bool | None = None) -> bytes:
    """A CREATE_PIPELINE body as pypsrp serialises it."""
    commands = []
    for statement in statements:
        for index, (name, is_script, args) in enumerate(statement):
            command = Command(name, protocol_version="2.3", is_script=is_script, use_local_scope=local_scope)
            for arg_name, arg_value in args:
                command.args.append(CommandParameter(name=arg_name, value=arg_value))
            command.end_of_statement = index == len(statement) - 1
            commands.append(command)
    pipeline = Pipeline(is_nested=False, cmds=commands, history=None, redirect_err_to_out=False)
    create = CreatePipeline(
        no_input,
        ApartmentState(value=ApartmentState.UNKNOWN),
        RemoteStreamOptions(value=RemoteStreamOptions.ADD_INVOCATION_INFO),
        False,
        HostInfo(),
        pipeline,
        False,
    )
    return ElementTree.tostring(Serializer().serialize(create), encoding="utf-8", method="xml")


def outcome(parse: Any, data: bytes) -> Any:
    try:
        result = parse(data)
    except clixml.Unsupported:
        return "Unsupported"
    except ValueError as exc:
        return type(exc).__name__
    return result if isinstance(result, tuple) else (result.no_input, result.statements)


def check(data: bytes) -> Any:
    new = outcome(clixml.parse_create_pipeline, data)
    assert new == outcome(reference, data)
    return new


GET = "Get-MailboxPermission"
SPECS: dict[str, Spec] = {
    "plain": [[(GET, False, [("Identity", "user000001"), ("User", "svc@contoso.com")])]],
    "hundred": [[(GET, False, [("Identity", f"user{i:06d}"), ("User", "svc")])] for i in range(100)],
    "escapes": [[(GET, False, [("Identity", "a_x000A_b\nc\td\r_x_é😀"), ("User", "_x005F_x000A_")])]],
    "xml specials": [[(GET, False, [("Identity", "R&D <x> \"q\" 'a' ]]>"), ("User", "a>b")])]],
    "controls": [[(GET, False, [("Identity", "\x01\x1f\x7f\x85"), ("User", "\ufeff\ufffd")])]],
    "empty": [[("", False, [("", ""), (None, "")])]],
    "nil and switch": [[(GET, False, [("Identity", None), ("Deny", None), ("Confirm", False)])]],
    "positional": [[(GET, False, [(None, "user1"), (None, None), (None, 5)])]],
    "types": [[(GET, False, [("A", True), ("B", 2**31), ("C", -7), ("D", 1.5), ("E", b"\x00\xff")])]],
    "arrays": [[("Add-MailboxPermission", False, [("AccessRights", ["FullAccess", "ReadPermission"]),
                                                  ("Nested", [["a"], []]), ("Map", {"k": "v", "n": None})])]],
    "pipes": [[("Get-Mailbox", False, [("Identity", "x")]), (GET, False, [("User", "y")]),
               ("Select-Object", False, [])],
              [(GET, False, [])]],
    "scripts": [[("Get-Mailbox x | Get-MailboxPermission -User 'a&b' # <c>", True, [])],
                [("$a = 1", True, [("x", 1)]), (GET, False, [])]],
    "no args": [[(GET, False, [])]],
    "long name": [[("Get-" + "x" * 5000, False, [("Identity", "y" * 20000)])]],
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
@pytest.mark.parametrize("no_input", [True, False])
@pytest.mark.parametrize("local_scope", [None, True])
def test_pypsrp_messages_read_as_before(spec: Spec, no_input: bool, local_scope: bool | None) -> None:
    check(message(spec, no_input=no_input, local_scope=local_scope))


def test_the_benchmark_message_is_pre_read() -> None:
    data = message(SPECS["hundred"])
    commands: list[Invocation] = []
    skeleton = clixml._pre_read(data.decode(), commands)
    assert len(commands) == 101  # 100 statements, and the first one again in PowerShell.Cmds
    assert len(skeleton) < len(data) / 5
    assert check(data)[1][99].commands[0].arguments[0].value == "user000099"


BASE = message(SPECS["pipes"] + SPECS["plain"])
COMMAND = clixml._COMMAND.search(BASE.decode())
assert COMMAND is not None
ONE_COMMAND = COMMAND.group(0)


def _edit(old: str, new: str, count: int = 1) -> bytes:
    text = BASE.decode()
    assert old in text
    return text.replace(old, new, count).encode()


ODD = {
    "declaration": b'<?xml version="1.0" encoding="utf-8"?>' + BASE,
    "declaration latin-1": b'<?xml version="1.0" encoding="iso-8859-1"?>' + message(SPECS["escapes"]),
    "bom": b"\xef\xbb\xbf" + BASE,
    "comment": _edit("<LST>", "<LST><!-- " + ONE_COMMAND + " -->"),
    "cdata": _edit('<S N="V">x</S>', f'<S N="V"><![CDATA[{ONE_COMMAND}]]></S>'),
    "command as a value": _edit('<S N="V">x</S>', f'<Obj N="V" RefId="900"><LST>{ONE_COMMAND}</LST></Obj>'),
    "command as a property": _edit('<S N="V">x</S>', f'<Obj N="V" RefId="900"><MS>{ONE_COMMAND}</MS></Obj>'),
    "command as NoInput": _edit('<B N="NoInput">true</B>', ONE_COMMAND.replace("<Obj ", '<Obj N="NoInput" ', 1)),
    "command as root": ONE_COMMAND.encode(),
    "command as statement": _edit('<Obj RefId="7" N="Cmds">', ONE_COMMAND + '<Obj RefId="7" N="Cmds">'),
    "placeholder tag": _edit('<S N="V">x</S>', '<_lab_cmd_ N="V" I="0"/>'),
    "carriage return": _edit('<S N="V">x</S>', '<S N="V">x\r\ny\rz</S>'),
    "tab and newline": _edit('<S N="V">x</S>', '<S N="V">x\t\ny</S>'),
    "control": _edit('<S N="V">x</S>', '<S N="V">x\x01</S>'),
    "fffe": _edit('<S N="V">x</S>', '<S N="V">x\ufffe</S>'),
    "cdata end": _edit('<S N="V">x</S>', '<S N="V">x]]>y</S>'),
    "entities": _edit('<S N="V">x</S>', '<S N="V">&lt;&#65;&#x42;&amp;</S>'),
    "unknown entity": _edit('<S N="V">x</S>', '<S N="V">&nbsp;</S>'),
    "invalid utf-8": BASE.replace(b">x<", b">\xff<"),
    "truncated": BASE[:-7],
    "trailing garbage": BASE + b"<Obj/>",
    "unclosed": _edit("</MS></Obj>", "</MS>"),
    "duplicate Cmd": _edit('<S N="Cmd">Get-Mailbox</S>', '<S N="Cmd">Get-Mailbox</S><S N="Cmd">Other</S>'),
    "IsScript spaced": _edit('<B N="IsScript">false</B>', '<B N="IsScript"> TRUE </B>'),
    "int value": _edit('<S N="V">x</S>', '<I32 N="V">99999999999</I32>'),
    "bad int": _edit('<S N="V">x</S>', '<I32 N="V">x1</I32>'),
    "huge int": _edit('<S N="V">x</S>', '<I32 N="V">' + "9" * 5000 + "</I32>"),
    "unknown tag": _edit('<S N="V">x</S>', '<Ref N="V" RefId="1" />'),
    "no Args": re.sub(rb'<Obj RefId="\d+" N="Args">.*?</LST></Obj>', b"", BASE, count=1),
    "no N": _edit('<S N="N">Identity</S>', '<S>Identity</S>'),
    "single quotes": _edit('<S N="Cmd">Get-Mailbox</S>', "<S N='Cmd'>Get-Mailbox</S>"),
    "spaces in tags": _edit('<Nil N="UseLocalScope" />', '<Nil  N="UseLocalScope"/>'),
    "no ExtraCmds": re.sub(rb'<Obj RefId="5" N="ExtraCmds">.*?</LST></Obj>(?=<Obj RefId="\d+" N="Cmds">)', b"",
                           BASE, flags=re.S),
}


@pytest.mark.parametrize("data", ODD.values(), ids=ODD.keys())
def test_odd_messages_read_as_before(data: bytes) -> None:
    check(data)


def test_odd_messages_are_what_they_say() -> None:
    assert ODD["command as a value"] != BASE and check(ODD["command as a value"]) != "Unsupported"
    assert check(ODD["no ExtraCmds"]) != check(BASE)
    assert check(ODD["entities"])[1][0].commands[0].arguments[0].value == "<AB&"


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), _TEXT,
    st.lists(st.one_of(st.none(), _TEXT, st.integers(-5, 5)), max_size=3),
)
_COMMANDS = st.tuples(
    _TEXT, st.booleans(), st.lists(st.tuples(st.one_of(st.none(), _TEXT), _VALUE), max_size=4)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_COMMANDS, min_size=1, max_size=3), min_size=1, max_size=4), st.booleans())
def test_random_pipelines_read_as_before(spec: Spec, no_input: bool) -> None:
    check(message(spec, no_input=no_input))
