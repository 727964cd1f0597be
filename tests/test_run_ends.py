"""How a changing run ends when the server or the disk fails it at either end:

* apply and journal undo whose server cannot be reached end like every other changing run: exit 4, one error line,
  and a report in which every change they were to make is unknown, saying why; nothing is changed or journaled;
* a file that cannot be written once the run's changes are made (its folder removed, the disk full) is one error line
  and exit 9 saying what the run did and where it is journaled, never a traceback; the other files are still
  written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from provisioner_lab.run import Lab, running_lab
from provisioner_lab.server import FaultOptions

from provisioner.errors import ExitCode
from tests import labcli

SERVICE = "svc-codetwo@contoso.com"
TARGETS = ["user000001", "user000002", "user000003"]
cli = labcli.run


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab(mailboxes=6) as running:
        yield running


def journaled_config(lab: Lab, tmp_path: Path) -> Path:
    """The lab, the service account on :data:`TARGETS`, and a journal beside the config."""
    config = tmp_path / "provisioner.toml"
    config.write_text(lab.config_toml() + f'''[trustees]
service_account = "{SERVICE}"
[targets]
mailboxes = {json.dumps(TARGETS)}
[reapply]
journal = "journal.jsonl"
''', encoding="utf-8")
    return config


def test_apply_and_undo_that_cannot_reach_the_server_report_every_change_unknown(lab: Lab, tmp_path: Path) -> None:
    config = journaled_config(lab, tmp_path)
    granted = cli(lab, tmp_path, "grant", "--config", str(config))
    assert granted.returncode == 0, granted.stderr
    run_id = next(line.split()[1] for line in granted.stderr.splitlines() if " recorded in " in line)
    plan = tmp_path / "revoke.plan"
    planned = cli(lab, tmp_path, "plan", "revoke", "--out", str(plan), "--config", str(config))
    assert planned.returncode == 0, planned.stderr
    journal = (tmp_path / "journal.jsonl").read_text(encoding="utf-8")
    assert all(lab.engine.directory.has_full_access(target, SERVICE) for target in TARGETS)

    lab.server.set_faults(FaultOptions(drop_rate=1.0))  # every request's connection closed unanswered
    runs = {"apply": ["apply", str(plan), "--yes"], "undo": ["journal", "undo", run_id, "--yes"]}
    for name, command in runs.items():
        report = tmp_path / f"{name}.json"
        done = cli(lab, tmp_path, *command, "--config", str(config), "--report", str(report))
        assert done.returncode == ExitCode.CONNECTION, (name, done.stderr)
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, (name, done.stderr)
        assert " recorded in " not in done.stderr, (name, done.stderr)
        items = json.loads(report.read_text(encoding="utf-8"))["items"]
        assert sorted((item["mailbox"], item["trustee"]) for item in items) == [(t, SERVICE) for t in TARGETS], name
        assert {item["result"] for item in items} == {"unknown"}, name
        assert all(item["detail"] and item["detail"] in errors[0] for item in items), (name, items, errors)
    assert all(lab.engine.directory.has_full_access(target, SERVICE) for target in TARGETS), "the server changed"
    assert (tmp_path / "journal.jsonl").read_text(encoding="utf-8") == journal


@pytest.mark.parametrize("command", [["grant"], ["reapply"]])
def test_an_output_lost_after_the_changes_is_exit_9_with_the_run_said(lab: Lab, tmp_path: Path,
                                                                      command: list[str]) -> None:
    config = journaled_config(lab, tmp_path)
    gone = tmp_path / "gone"
    gone.mkdir()
    kept = tmp_path / "kept"
    kept.mkdir()
    lab.server.set_faults(FaultOptions(latency_ms=150))  # a run that takes a few seconds
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password}
    run = subprocess.Popen(
        [sys.executable, "-m", "provisioner", *command, "--config", str(config), "--report", str(gone / "r.json"),
         "--html", str(kept / "r.html"), *lab.cli_args("ntlm")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lock = tmp_path / "journal.jsonl.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.02)
    shutil.rmtree(gone)  # the report's folder goes while the run holds the lock, before it writes the report
    _, stderr = run.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    assert run.returncode == ExitCode.OUTPUT, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert str(gone / "r.json") in errors[0] and "3 granted" in errors[0], errors
    assert f"recorded in {tmp_path / 'journal.jsonl'}" in stderr, stderr
    assert "(3 granted)" in stderr and "exit 9" in stderr and "exit 0" not in stderr, stderr
    assert all(lab.engine.directory.has_full_access(target, SERVICE) for target in TARGETS)
    assert (kept / "r.html").is_file(), "an output that could be written was not"


def test_a_journal_that_cannot_be_written_mid_run_stops_sending_and_the_report_says_so(lab: Lab,
                                                                                       tmp_path: Path) -> None:
    """A change the journal cannot record could be neither undone nor reconciled: once the journal cannot be
    written, nothing more is sent; what was sent is reported as it is, the rest unknown ("not sent"), exit 1."""
    config = journaled_config(lab, tmp_path)
    journal = tmp_path / "journal.jsonl"
    report = tmp_path / "report.json"
    lab.server.set_faults(FaultOptions(latency_ms=150))
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password}
    run = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "grant", "--config", str(config), "--batch-size", "1", "--report",
         str(report), *lab.cli_args("ntlm")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and '"kind": "change"' not in (journal.read_text() if journal.exists() else ""):
        time.sleep(0.01)
    journal.rename(tmp_path / "journal.saved")
    journal.mkdir()  # the journal's path can no longer be appended to (EISDIR), as a full disk would refuse it
    _, stderr = run.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    assert run.returncode == ExitCode.ITEMS_FAILED, stderr
    items = {item["mailbox"]: item for item in json.loads(report.read_text(encoding="utf-8"))["items"]}
    assert set(items) == set(TARGETS)
    stopped = [m for m, item in items.items() if item["result"] == "unknown"]
    assert stopped and all(items[m]["detail"].startswith("not sent: cannot write the journal") for m in stopped)
    for mailbox, item in items.items():  # the report is the lab's state
        assert lab.engine.directory.has_full_access(mailbox, SERVICE) == (item["result"] == "granted"), item
    assert "cannot write the journal" in stderr and "nothing more was sent" in stderr, stderr
