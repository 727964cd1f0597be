"""The real CLI as a subprocess, offline: dry-run scripts, input errors (exit 2, nothing sent), option rules."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests import psparse

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {name: value for name, value in os.environ.items() if name != "PROVISIONER_PASSWORD"}
    full_env.update({"PYTHONIOENCODING": "utf-8", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_offline_dry_run_on_the_examples_lists_every_grant() -> None:
    result = cli("grant", "--config", str(EXAMPLES / "provisioner.toml"), "--offline", "--dry-run")
    assert result.returncode == 0, result.stderr
    commands = psparse.command_lines(result.stdout)
    users = [line.split(",")[0] for line in (EXAMPLES / "users.csv").read_text().splitlines()[4:] if line]
    assert len(commands) == 2 * len(users) == 16
    assert commands[0] == (
        f"Add-MailboxPermission -Identity '{users[0]}' -User 'sync.admin@contoso.com' -AccessRights FullAccess "
        "-InheritanceType All -AutoMapping:$false"
    )
    assert "# Target server:    'exch01.contoso.com'" in result.stdout
    assert "16 items (16 planned)" in result.stderr


def test_script_file_and_report_are_owner_only(tmp_path: Path) -> None:
    script, report = tmp_path / "grant.ps1", tmp_path / "report.json"
    result = cli(
        "grant", "--offline", "--dry-run", "--script", str(script), "--report", str(report),
        "-m", "alice@contoso.com", "--service-account", "svc", "--automapping",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "-AutoMapping:$true" in script.read_text(encoding="utf-8-sig")
    for path in (script, report):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(report.read_text())
    assert document["summary"]["results"] == {"planned": 1}
    assert document["items"][0]["mailbox"] == "alice@contoso.com"


def test_revoke_offline_dry_run() -> None:
    result = cli("revoke", "--offline", "--dry-run", "-m", "bob", "--trustee", "svc")
    assert result.returncode == 0, result.stderr
    assert "Remove-MailboxPermission -Identity 'bob' -User 'svc' -AccessRights FullAccess -InheritanceType All " \
        "-Confirm:$false" in result.stdout


def test_bad_users_file_stops_with_file_and_line(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_bytes(b"alice@contoso.com\nbob\x00@contoso.com\n")
    result = cli("grant", "--offline", "--dry-run", "--users-file", str(users), "--trustee", "svc")
    assert result.returncode == 2
    assert f"{users}:2: " in result.stderr and "NUL" in result.stderr
    assert result.stdout == ""


def test_duplicates_are_reported_and_folded(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("alice@contoso.com\nALICE@contoso.com\n", encoding="utf-8")
    result = cli("grant", "--offline", "--dry-run", "--users-file", str(users), "--trustee", "svc")
    assert result.returncode == 0, result.stderr
    assert f"{users}:2: duplicate of {users}:1" in result.stderr
    assert result.stdout.count("Add-MailboxPermission") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grant", "--offline", "-m", "a", "--trustee", "t"], "--offline only makes sense with --dry-run"),
        (["grant", "--offline", "--dry-run", "--trustee", "t"], "no target mailboxes"),
        (["grant", "--offline", "--dry-run", "-m", "a"], "no trustees"),
        (["grant", "--offline", "--dry-run", "-m", " ", "--trustee", "t"], "empty identity"),
        (["grant", "--dry-run", "-m", "a", "--trustee", "t", "--auth", "nope"], "--auth must be one of"),
        (["grant", "-m", "a", "--trustee", "t"], "no server configured"),
        (["grant", "-m", "a", "--trustee", "t", "--server", "x", "--auth", "basic", "--username", "u"],
         "Basic authentication over plain http"),
        (["audit", "-m", "a", "--trustee", "t", "--format", "xml"], "--format must be one of"),
        (["grant", "--config", "missing.toml", "-m", "a", "--trustee", "t"], "configuration file not found"),
    ],
)
def test_usage_errors_exit_2_before_connecting(args: list[str], message: str) -> None:
    result = cli(*args, env={"PROVISIONER_PASSWORD": "x"})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_connection_refused_is_exit_4() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli(
        "grant", "-m", "a", "--trustee", "t", "--server", "127.0.0.1", "--port", str(port), "--auth", "ntlm",
        "--username", "u", env={"PROVISIONER_PASSWORD": "secret-pw"},
    )
    assert result.returncode == 4, result.stderr
    assert "refused" in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout


def test_version_and_module_entry_point() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("provisioner ")


def test_revoke_refuses_automapping() -> None:
    result = cli("revoke", "--offline", "--dry-run", "-m", "bob", "--trustee", "svc", "--automapping")
    assert result.returncode == 2
    assert "--automapping shapes new grants" in result.stderr
