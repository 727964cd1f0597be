"""Command mode is exact: hostile identities reach the lab's engine byte for byte as parameter values.

The real CLI (a subprocess) runs ``grant`` and ``revoke`` with ``tests/data/hostile-names.txt`` against a lab
whose engine records every :class:`~provisioner_lab.api.Statement` it receives (a subclass of the real engine:
the lab code is unchanged). None of the names exists in the lab's organisation, so every (mailbox, trustee)
must end as a clean per-item ``failed`` with ``ManagementObjectNotFoundException``: no pipeline failure, no
script text, no write, exit 1. Run with the default batch size (many statements per pipeline) and with
``--batch-size 1`` (the exact one-pipeline-per-item path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from provisioner_lab.api import PipelineResult, Statement
from provisioner_lab.exchange.engine import ExchangeEngine
from provisioner_lab.run import Lab, running_lab

from provisioner.inputs.users import read_users_file

ROOT = Path(__file__).parent.parent
HOSTILE = Path(__file__).parent / "data" / "hostile-names.txt"
SERVICE = "svc-codetwo@contoso.com"
NAMES = [target.identity.value for target in read_users_file(HOSTILE).targets]


class RecordingEngine(ExchangeEngine):
    """The real engine, keeping every pipeline it is asked to run (and whether that pipeline failed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[tuple[list[Statement], PipelineResult]] = []
        self.inputs: list[tuple[list[Statement], list[Any]]] = []
        self._record_lock = threading.Lock()

    def run(self, statements: list[Statement], pipeline_input: list[Any], *, user: str | None) -> PipelineResult:
        result = super().run(statements, pipeline_input, user=user)
        with self._record_lock:
            self.recorded.append((list(statements), result))
            self.inputs.append((list(statements), list(pipeline_input)))
        return result


def snapshot(engine: ExchangeEngine) -> list[tuple[str, tuple[Any, ...], tuple[str, ...]]]:
    """Every mailbox's explicit permission entries (as last written) and automapping list."""
    with engine.lock:
        return [
            (mailbox.guid, tuple(mailbox.acl.latest()) if mailbox.acl else (), tuple(mailbox.delegates))
            for mailbox in engine.directory.mailboxes()
        ]


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")],
        capture_output=True, text=True, encoding="utf-8", cwd=ROOT, env=env, timeout=180,
        stdin=subprocess.DEVNULL,
    )


def test_the_hostile_file_is_read_as_written() -> None:
    lines = HOSTILE.read_text(encoding="utf-8").split("\n")
    assert [line for line in lines if line and not line.startswith("#")] == NAMES
    assert len(NAMES) >= 50


@pytest.mark.parametrize("command", ["grant", "revoke"])
@pytest.mark.parametrize("batch_size", [None, "1"], ids=["batched", "batch-size-1"])
def test_hostile_names_arrive_exactly_and_fail_cleanly(tmp_path: Path, command: str, batch_size: str | None) -> None:
    engine = RecordingEngine.from_seed()
    assert isinstance(engine, RecordingEngine)
    before = snapshot(engine)
    report_path = tmp_path / "report.json"
    with running_lab(engine=engine) as lab:
        extra = ["--batch-size", batch_size] if batch_size else []
        yes = ["--yes"] if command == "revoke" else []
        result = cli(lab, command, "--users-file", str(HOSTILE), "--service-account", SERVICE,
                     "--report", str(report_path), *extra, *yes)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr

    # Never script text; no pipeline failed (a failure would be a terminating error, not a per-item one).
    commands = [command for statements, _ in engine.recorded for statement in statements
                for command in statement.commands]
    assert commands
    assert not any(command.is_script for command in commands)
    assert [result.failure for _, result in engine.recorded if result.failure is not None] == []
    # Only the cmdlets the tool sends for a read; no write was even attempted.
    assert {command.name for command in commands} <= {"Get-Mailbox", "Get-MailboxPermission"}
    assert engine.counters.writes == 0
    assert snapshot(engine) == before

    # Every identity (an -Identity value, or a pipeline input record piped into Get-Mailbox) is one of the names,
    # exactly as read from the file, and every name was sent.
    identities: list[str] = []
    permission_reads: list[str] = []
    for statements, records in engine.inputs:
        chain = [command for statement in statements for command in statement.commands]
        for value in records:
            assert type(value) is str
            identities.append(value)
        assert not records or chain[0].name == "Get-Mailbox"  # input goes to Get-Mailbox (Identity ByValue) only
        for invocation in chain:
            named = {argument.name: argument.value for argument in invocation.arguments}
            assert None not in named, invocation  # no positional arguments
            assert set(named) <= {"Identity", "User", "DomainController"}, invocation
            assert ("Identity" in named) is (not records), invocation  # from the pipeline, or as a parameter
            if "Identity" in named:
                assert type(named["Identity"]) is str
                identities.append(named["Identity"])
            if "User" in named:
                assert named["User"] == SERVICE
            if invocation.name == "Get-MailboxPermission":
                permission_reads.extend(records or [named["Identity"]])
    by_bytes = {name.encode("utf-8") for name in NAMES}
    assert {value.encode("utf-8") for value in identities} == by_bytes
    assert set(identities) == set(NAMES)
    # each name was looked up with its own value (ids | Get-Mailbox); one that names no mailbox is never sent again
    assert permission_reads == []

    # Each (name, trustee) is a clean per-item failure in the report.
    document = json.loads(report_path.read_text(encoding="utf-8"))
    items = document["items"]
    assert [item["mailbox"] for item in items] == NAMES
    for item in items:
        assert item["trustee"] == SERVICE
        assert item["result"] == "failed", item
        assert item["error"]["reason"] == "ManagementObjectNotFoundException", item
    assert document["summary"]["results"] == {"failed": len(NAMES)}
    assert document["summary"]["exit_code"] == 1
    assert result.stderr.count("failed: ") == len(NAMES)
