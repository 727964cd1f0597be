"""Property tests for the config loader: any file ends in a Config or a clean InputError naming the file.

Two generators: arbitrary bytes (with TOML-ish fragments, invalid UTF-8, NUL), and TOML that is well formed
but wrong, built from the known schema in ``provisioner/inputs/config.py`` (right keys with wrong types, unknown keys,
huge and non-finite numbers, control characters and NUL in strings and keys, dates, nested arrays and tables),
optionally corrupted at a random byte. ``load_config`` must return a :class:`Config` or raise
:class:`InputError` whose message starts with the file's path; when the text is not valid TOML the message
names the line. Nothing else may escape. A few bad configs also go through the real CLI: exit 2, no traceback.

The example budget follows ``tests/hypothesis_profiles.py`` (``--hypothesis-profile ci`` or ``long`` for more).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.errors import InputError
from provisioner.inputs import config as config_module
from provisioner.inputs.config import Config, load_config
from provisioner.inputs.schema import specs
from tests.hypothesis_profiles import proof_settings

ROOT = Path(__file__).parent.parent

# The schema, read from the module so that new keys are fuzzed too.
SCHEMA: dict[str, dict[str, Any]] = {
    "connection": {name: spec.toml_types for name, spec in specs(config_module.Connection).items()},
    "trustees": {"admin_user": str, "service_account": str, "automapping": bool, "extra": list},
    "targets": {"mailboxes": list, "users_file": str, "users_files": list, "selector": list, "exclude": list,
                "column": str},
    "reapply": {name: spec.toml_types for name, spec in specs(config_module.RunSettings).items()},
    "exo": {name: spec.toml_types for name, spec in specs(config_module.ExoSettings).items()},
}
CHOICES = {name: list(spec.choices) for cls in (config_module.Connection, config_module.ExoSettings)
           for name, spec in specs(cls).items() if spec.choices}
SUBTABLE_KEYS = {
    "selector": [*config_module.SELECTOR_KINDS, "recipient_type_details"],
    "extra": ["identity", "automapping"],
}


# ------------------------------------------------------------------------------------------- TOML emitting
def toml_string(text: str) -> str:
    """A TOML basic string for ``text``: quotes, backslashes and control characters escaped (surrogates are
    written as \\uD800 escapes, which TOML itself refuses: that exercises the parser's error path)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


class Raw:
    """A literal piece of TOML (dates, huge numbers, deep nesting)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r})"


NASTY_CHARS = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\u2028", "\u202e", "\u200b", "\ufeff", "\ufffe", "\uffff",
               "'", '"', "\\", "$", "`", ";", "\U0001f600", "\u0430", " "]  # fmt: skip
strings = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(st.sampled_from(NASTY_CHARS), st.text(max_size=3)), max_size=8).map("".join),
    st.sampled_from(["", " ", "http", "https", "kerberos", "basic", "ntlm", "command", "script", "UserMailbox",
                     "x" * 600, "exch01.contoso.com", "users.csv", "../../etc/passwd", "/dev/null", "."]),
)
raw_literals = st.sampled_from([
    "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "1979-05-27T07:32:00", "nan", "+inf", "-inf", "-0.0",
    "0x7fffffffffffffff", "0o777", "0b1010", "1" * 5000, "9" * 40, "1e400", "-1e400", "[" * 2000 + "]" * 2000,
    "{a = " * 400 + "1" + "}" * 400, "'''multi\nline'''", '"""a\\\nb"""', '"\\uD800"', '"\\U00110000"',
]).map(Raw)
scalars = st.one_of(
    strings,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 65535, 65536, 5000, 5001, 16, 17, 2**31, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    raw_literals,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=3)),
    max_leaves=8,
)


def right_typed(kind: Any, name: str) -> st.SearchStrategy[Any]:
    """A value of the key's own type (so that validation beyond the type check is reached)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    options: list[st.SearchStrategy[Any]] = []
    if name in CHOICES:
        options.append(st.sampled_from(CHOICES[name]))
    if str in kinds:
        options.append(strings)
    if int in kinds:
        options.append(st.integers(min_value=-(2**64), max_value=2**64))
    if float in kinds:
        options.append(st.floats(allow_nan=True, allow_infinity=True))
    if bool in kinds:
        options.append(st.booleans())
    if list in kinds:
        subkeys = SUBTABLE_KEYS.get(name)
        element: st.SearchStrategy[Any] = strings
        if subkeys:
            element = st.one_of(strings, st.dictionaries(st.sampled_from(subkeys) | strings, values, max_size=3))
        options.append(st.lists(element, max_size=4))
    return st.one_of(*options) if options else values


@st.composite
def table(draw: st.DrawFn, section: str) -> dict[str, Any]:
    schema = SCHEMA[section]
    names = draw(st.lists(st.sampled_from(sorted(schema)), max_size=6, unique=True))
    result: dict[str, Any] = {}
    for name in names:
        result[name] = draw(st.one_of(right_typed(schema[name], name), right_typed(schema[name], name), values))
    for _ in range(draw(st.integers(0, 1))):  # an unknown key now and then
        result[draw(strings)] = draw(values)
    return result


JUNK = [b"\xff", b"\x00", b"\xc3", b"=", b"[", b'"', b"\n", b"\r", b"]]", b"\xef\xbb\xbf"]


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """Well-formed TOML built from the schema (wrong in its values), sometimes corrupted at one byte."""
    lines: list[str] = []
    top: dict[str, Any] = {}
    if draw(st.integers(0, 4)) == 0:
        top[draw(st.sampled_from([*SCHEMA, "unknown", ""]) | strings)] = draw(values)
    lines += [f"{toml_string(key)} = {toml_value(value)}" for key, value in top.items()]
    for section in draw(st.lists(st.sampled_from(sorted(SCHEMA)), max_size=4, unique=True)):
        if section in top:
            continue
        lines.append(f"[{section}]")
        lines += [f"{toml_string(key)} = {toml_value(value)}" for key, value in draw(table(section)).items()]
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    mutation = draw(st.sampled_from(["none", "none", "insert", "replace", "truncate"]))
    if data and mutation != "none":
        at = draw(st.integers(0, len(data) - 1))
        junk = draw(st.sampled_from(JUNK))
        if mutation == "insert":
            data = data[:at] + junk + data[at:]
        elif mutation == "replace":
            data = data[:at] + junk + data[at + 1 :]
        else:
            data = data[:at]
    return data


FRAGMENTS = [
    b"[connection]\n", b"[targets]\n", b"[[targets.selector]]\n", b"[reapply]\n", b"[trustees]\n",
    b"[[trustees.extra]]\n", b"server = ", b"port = ", b"auth = ", b'"basic"', b"users_file = ", b"= ", b"\n",
    b"\r\n", b"\r", b'"', b"'", b"[", b"]", b"{", b"}", b",", b"#", b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf",
    b"\\u0000", b"\\", b"nan", b"inf", b"1979-05-27", b"99999999999999999999", b"true", b"a.b.c", b" ",
]  # fmt: skip
byte_documents = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=3)), max_size=40).map(b"".join),
)


# --------------------------------------------------------------------------------------------- the property
LINE = re.compile(r"\(at line (\d+), column \d+\)|\(at end of document\)|at line (\d+)\)")


def check(data: bytes) -> Config | InputError:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "provisioner.toml"
        path.write_bytes(data)
        try:
            return load_config(path)
        except InputError as exc:
            message = str(exc)
            assert exc.where == str(path)
            assert message.startswith(f"{path}: "), message
            assert message.strip() != f"{path}:"
            if _not_toml(data):
                match = LINE.search(message)
                assert match, message
                line = match.group(1) or match.group(2)
                if line is not None:
                    assert 1 <= int(line) <= data.count(b"\n") + 1, message
            return exc


def _not_toml(data: bytes) -> bool:
    try:
        tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    except (ValueError, RecursionError):
        return False  # no line to name: an over-long integer or too deep nesting
    return False


@proof_settings(scale=1.0)
@given(data=byte_documents)
def test_arbitrary_bytes_load_or_fail_cleanly(data: bytes) -> None:
    check(data)


@proof_settings(scale=1.0)
@given(data=documents())
def test_schema_shaped_wrong_toml_loads_or_fails_cleanly(data: bytes) -> None:
    check(data)


@pytest.mark.parametrize("text", [
    "[connection]\nport = " + "1" * 5000 + "\n",
    "a = " + "[" * 3000 + "]" * 3000 + "\n",
    "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n",
    "[reapply]\nverify_delay_seconds = nan\n",
    "[reapply]\nretry_max_seconds = inf\n",
    '[targets]\nusers_file = "users\\u0000.csv"\n',
    '[targets]\nusers_files = ["a.csv", "\\u001b[2J"]\n',
    '[connection]\nserver = "exch01\\u0000.contoso.com"\n',
    '[connection]\nport = 1979-05-27\n',
], ids=["huge-int", "deep-array", "deep-table", "nan", "inf", "nul-path", "escape-path", "nul-server", "date-port"])
def test_known_crashers_are_clean_input_errors(text: str) -> None:
    assert isinstance(check(text.encode()), InputError)


def test_invalid_utf8_names_the_line() -> None:
    result = check(b'[connection]\nserver = "ex01"\nusername = "\xff"\n')
    assert isinstance(result, InputError) and "line 3" in str(result)


# ------------------------------------------------------------------------------------------------ the CLI
BAD_CONFIGS = [
    b"[connection]\nport = " + b"1" * 5000 + b"\n",
    b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n",
    b'[connection]\nserver = "\xff\xfe"\n',
    b"[connection\nserver = 1\n",
    b'[targets]\nusers_file = "users\\u0000.csv"\n',
    b'[trustees]\nextra = [1, {identity = "a", automapping = "yes"}]\n',
]


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "PROVISIONER_PASSWORD"}
    env.update(PYTHONIOENCODING="utf-8", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args, "--config", str(config)],
        capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=config.parent, env=env,
        timeout=60, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("index", range(len(BAD_CONFIGS)))
def test_the_cli_exits_2_without_a_traceback(tmp_path: Path, index: int) -> None:
    config = tmp_path / "bad.toml"
    config.write_bytes(BAD_CONFIGS[index])
    command = ["grant", "--offline", "--dry-run", "-m", "alice"] if index % 2 else ["reapply", "--dry-run"]
    result = run_cli(config, *command, "--service-account", "svc")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith(f"error: {config}: "), result.stderr
    assert result.stdout == ""
