"""Hostile identities from a users file, through the real reader and the real CLI, proven by parser.

``tests/data/hostile-names.txt`` is a plain-list users file (one identity per line; ``#`` lines are comments
there). Its identities go through ``provisioner.inputs.users.read_users_file`` and then ``python -m provisioner
grant|revoke --offline --dry-run``; the script on stdout must be, by PowerShell's rules and by tree-sitter,
exactly one command per (mailbox, trustee) whose string arguments decode back to the original names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import __version__
from provisioner.errors import InputError
from provisioner.inputs.users import read_users_file
from tests import psparse

ROOT = Path(__file__).parent.parent
HOSTILE = Path(__file__).parent / "data" / "hostile-names.txt"
EXPECTED_COUNT = 74
ADMIN, SERVICE = "a", "b'c"


def file_names() -> list[str]:
    """The identities of the file as written: every line that is neither blank nor a ``#`` comment."""
    lines = HOSTILE.read_text(encoding="utf-8").split("\n")
    return [line for line in lines if line and not line.startswith("#")]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "PROVISIONER_PASSWORD"}
    env.update(PYTHONIOENCODING="utf-8", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        capture_output=True, text=True, encoding="utf-8", cwd=cwd, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )


def expected_command(cmdlet: str, mailbox: str, trustee: str, domain_controller: str | None) -> psparse.Expected:
    elements = [
        ("parameter", "-Identity"), ("string", mailbox),
        ("parameter", "-User"), ("string", trustee),
        ("parameter", "-AccessRights"), ("bareword", "FullAccess"),
        ("parameter", "-InheritanceType"), ("bareword", "All"),
    ]
    if cmdlet == "Add-MailboxPermission":
        elements += [("parameter", "-AutoMapping:"), ("variable", "$false")]
    else:
        elements += [("parameter", "-Confirm:"), ("variable", "$false")]
    if domain_controller:
        elements += [("parameter", "-DomainController"), ("string", domain_controller)]
    return cmdlet, elements


def test_the_file_is_hostile_enough() -> None:
    names = file_names()
    assert len(names) == EXPECTED_COUNT >= 50
    text = "".join(names)
    for needle in ("'", "\u2018", "\u2019", "\u201a", "\u201b", '"', "$(", "`", ";", "|", "&", "<#", "#>", "@(",
                   "-Confirm:$false", "'+'", "`n", "\u05e9", "\u0645", "\U0001f600"):
        assert needle in text, needle
    assert "'; Remove-Mailbox -Identity x -Confirm:$false; '" in names
    assert "$(Remove-Mailbox x)" in names
    assert max(len(name) for name in names) >= 500
    assert not psparse.CONTROL.search(text)


def test_the_reader_reads_every_name_unchanged() -> None:
    result = read_users_file(HOSTILE)
    assert [target.identity.value for target in result.targets] == file_names()
    assert len(result.targets) == EXPECTED_COUNT
    assert result.duplicates == []
    assert [target.source.line for target in result.targets] == list(range(4, 4 + EXPECTED_COUNT))


@pytest.mark.parametrize(
    "char", ["\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ufffe", "\uffff"], ids=repr,
)
def test_the_reader_refuses_control_characters(tmp_path: Path, char: str) -> None:
    """Control and line-break characters and the noncharacters XML cannot carry (U+FFFE, U+FFFF) stop the run at
    their line. (Format characters, bidi overrides and zero-width ones, are accepted with a warning:
    tests/test_names_shown.py.)"""
    path = tmp_path / "users.txt"
    path.write_text(f"alice\nO'Brien{char}; Remove-Mailbox x\nbob\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_users_file(path)
    assert caught.value.where == f"{path}:2"


def test_a_lone_carriage_return_is_a_line_end_not_part_of_a_name(tmp_path: Path) -> None:
    """The reader ends lines at CR, LF or CRLF, so a CR can only split a name in two, never hide inside one."""
    path = tmp_path / "users.txt"
    path.write_bytes(b"alice\r'; Remove-Mailbox x; '\r\n#x\rbob\n")
    assert [target.identity.value for target in read_users_file(path).targets] == [
        "alice", "'; Remove-Mailbox x; '", "bob",
    ]


def _check_cli_script(script: str, cmdlet: str, domain_controller: str | None) -> None:
    names = file_names()
    expected = [
        expected_command(cmdlet, name, trustee, domain_controller) for name in names for trustee in (ADMIN, SERVICE)
    ]
    comment_values = psparse.prove_script(script, expected)
    version, generated, server, *rest = comment_values
    assert version == [__version__]
    assert len(generated) == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", generated[0])
    assert server == ["(not configured)"]
    state = "planned"  # the header counts in the summary line's words (docs/reports.md)
    assert rest == [
        *([[domain_controller]] if domain_controller else []),
        [ADMIN, "admin-user"], [SERVICE, "service-account"], [state],
    ]
    # Every command line, read on its own, decodes back to the original names.
    command_lines = psparse.command_lines(script)
    assert len(command_lines) == 2 * EXPECTED_COUNT
    for line, (name, trustee) in zip(command_lines, ((n, t) for n in names for t in (ADMIN, SERVICE)), strict=True):
        strings = [token.value for token in psparse.tokenize(line) if token.kind == "string"]
        assert strings == [name, trustee, *([domain_controller] if domain_controller else [])]


def test_offline_grant_dry_run_writes_exactly_the_expected_commands(tmp_path: Path) -> None:
    result = cli("grant", "--offline", "--dry-run", "--users-file", str(HOSTILE), "--admin-user", ADMIN,
                 "--service-account", SERVICE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _check_cli_script(result.stdout, "Add-MailboxPermission", None)
    assert f"({2 * EXPECTED_COUNT} planned)" in result.stderr


def test_offline_revoke_dry_run_with_a_hostile_domain_controller(tmp_path: Path) -> None:
    domain_controller = "dc\u2019; Remove-Mailbox -Identity x -Confirm:$false; '#"
    result = cli("revoke", "--offline", "--dry-run", "--users-file", str(HOSTILE), "--admin-user", ADMIN,
                 "--service-account", SERVICE, "--domain-controller", domain_controller, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _check_cli_script(result.stdout, "Remove-MailboxPermission", domain_controller)
