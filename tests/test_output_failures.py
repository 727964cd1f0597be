"""An output that cannot be written once the run's changes are made (its folder removed, the disk full) is one error
line and exit 9 saying what the run did and where it is journaled, never a traceback; the other outputs are still
written."""

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

SERVICE = "svc-codetwo@contoso.com"
TARGETS = ["user000001", "user000002", "user000003"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab(mailboxes=6) as running:
        yield running


@pytest.mark.parametrize("command", [["grant"], ["reapply"]])
def test_an_output_lost_after_the_changes_is_exit_9_with_the_run_said(lab: Lab, tmp_path: Path,
                                                                      command: list[str]) -> None:
    config = tmp_path / "provisioner.toml"
    config.write_text(lab.config_toml() + f'''[trustees]
service_account = "{SERVICE}"
[targets]
mailboxes = {json.dumps(TARGETS)}
[reapply]
journal = "journal.jsonl"
''', encoding="utf-8")
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
