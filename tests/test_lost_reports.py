"""apply and journal undo whose server cannot be reached end like every other changing run: exit 4, one error line,
and a report in which every change they were to make is unknown, saying why; nothing is changed or journaled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def cli(lab: Lab, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password}
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=180, stdin=subprocess.DEVNULL)


def test_apply_and_undo_that_cannot_reach_the_server_report_every_change_unknown(lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "provisioner.toml"
    config.write_text(lab.config_toml() + f'''[trustees]
service_account = "{SERVICE}"
[targets]
mailboxes = {json.dumps(TARGETS)}
[reapply]
journal = "journal.jsonl"
''', encoding="utf-8")
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
