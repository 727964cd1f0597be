"""The run log: one start and one summary line per run, as text or JSON, to stderr, a file or a syslog datagram
socket; values that could break a line are quoted (property test); a destination that cannot be used is exit 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from provisioner_lab.run import Lab, running_lab

from provisioner.output.runlog import _text_value

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab() as running:
        yield running


def cli(lab: Lab, *args: str, cwd: Path, before: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "PROVISIONER_CONFIG"}
    env.update(PROVISIONER_PASSWORD=lab.password, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *before, *args, *lab.cli_args()],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )


def test_json_log_file_has_one_start_and_one_summary_line_matching_the_report(lab: Lab, tmp_path: Path) -> None:
    log, report = tmp_path / "logs" / "provisioner.log", tmp_path / "report.json"
    log.parent.mkdir()
    config = EXAMPLES / "provisioner.toml"
    args = ("audit", "--config", str(config), "--report", str(report))
    result = cli(lab, *args, cwd=tmp_path, before=("--log-format", "json", "--log-file", str(log)))
    assert result.returncode in (0, 3), result.stderr
    start, summary = (json.loads(line) for line in log.read_text(encoding="utf-8").splitlines())
    document = json.loads(report.read_text())
    assert (start["event"], summary["event"]) == ("start", "summary")
    assert start["run"] == summary["run"] == document["log_run"]
    assert start["action"] == summary["action"] == "audit"
    assert (start["config"], start["config_origin"]) == (str(config), "--config")
    assert start["version"] == document["version"]
    assert summary["exit_code"] == result.returncode == document["summary"]["exit_code"]
    assert summary["counts"] == document["summary"]["results"]
    assert summary["attention"] == document["summary"]["attention"]
    assert summary["items"] == len(document["items"]) > 0
    assert 0 <= summary["duration_seconds"] < 120
    assert "{" not in result.stderr  # the lines went to the file, not stderr
    assert log.stat().st_mode & 0o777 == 0o600
    # a second run appends
    cli(lab, *args, cwd=tmp_path, before=("--log-format", "json", "--log-file", str(log)))
    assert len(log.read_text(encoding="utf-8").splitlines()) == 4


def test_text_lines_on_stderr_by_default_name_a_failed_runs_error(lab: Lab, tmp_path: Path) -> None:
    result = cli(lab, "grant", "--config", str(EXAMPLES / "provisioner.toml"), "--dry-run", "--mailbox", "nobody-x",
                 "--admin-user", "", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if " provisioner INFO " in line]
    assert [line.split()[3] for line in lines] == ["start", "summary"]
    assert "action=grant" in lines[0] and f"config={EXAMPLES / 'provisioner.toml'}" in lines[0]
    assert "exit_code=2" in lines[1] and 'error="' in lines[1]


def test_syslog_lines_reach_a_local_datagram_socket(lab: Lab, tmp_path: Path) -> None:
    address = str(tmp_path / "log.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(10)
    try:
        result = cli(lab, "audit", "--config", str(EXAMPLES / "provisioner.toml"), cwd=tmp_path,
                     before=("--log-format", "json", "--log-syslog", "--log-syslog-socket", address))
        assert result.returncode in (0, 3), result.stderr
        messages = [receiver.recv(65536).decode("utf-8") for _ in range(2)]
    finally:
        receiver.close()
    for message, event in zip(messages, ("start", "summary"), strict=True):
        priority, _, rest = message.partition(">")
        assert priority == "<14"  # facility user (1) * 8 + INFO (6)
        ident, _, body = rest.partition(": ")
        assert ident.startswith("provisioner[") and ident.endswith("]")
        assert json.loads(body.rstrip("\x00"))["event"] == event
    assert json.loads(messages[1].partition(": ")[2].rstrip("\x00"))["exit_code"] == result.returncode


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--log-file", "/nonexistent-dir/x.log"), "--log-file"),
        (("--log-syslog", "--log-syslog-socket", "/nonexistent-dir/sock"), "--log-syslog"),
        (("--log-format", "xml"), "--log-format"),
    ],
)
def test_a_log_destination_that_cannot_be_used_is_exit_2_naming_the_option(
        tmp_path: Path, options: tuple[str, ...], named: str) -> None:
    result = subprocess.run([sys.executable, "-m", "provisioner", *options, "config", "path"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr


@given(st.text())
def test_a_text_value_is_one_token_that_reads_back(value: str) -> None:
    shown = _text_value(value)
    assert shown and shown.isprintable() and shown.splitlines() == [shown]  # one line, nothing invisible
    if shown.startswith('"'):  # quoted: ASCII JSON, only plain spaces inside
        assert shown.isascii() and json.loads(shown) == value
    else:  # bare: one key=value token
        assert not any(char.isspace() or char in '"=' for char in shown) and shown == value
