"""The CREATE_PIPELINE reader (regex pre-reading of pypsrp's command objects) against the plain ElementTree
walk it replaced, on messages pypsrp builds and on odd or broken variants of them."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from provisioner_lab import clixml
from provisioner_lab.api import Invocation, Statement
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

# --- the reference: the same walk over ElementTree's tree of the whole message, without the pre-reading ---------


def reference(data: bytes) -> tuple[bool, list[Statement]]:
    try:
        parsed = clixml._parse(data, [])
    except clixml._NotSimple as exc:  # an element named like the placeholder: an unknown tag without pre-reading
        raise clixml.Unsupported("placeholder") from exc
    return parsed.no_input, parsed.statements


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
