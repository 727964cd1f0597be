"""journal undo does only what is true: it reads the current state, sends only what is still needed, reports the rest
as it is, journals only the changes it made, and its MAPI-profile list follows the real changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from provisioner_lab.exchange.directory import FULL_ACCESS, PermissionEntry
from provisioner_lab.run import Lab, running_lab

from provisioner.engine.journal import read, summaries
from tests import labcli

SERVICE, ADMIN = "svc-codetwo@contoso.com", "sync.admin@contoso.com"
MAILBOXES = ["user000001@contoso.com", "user000002@contoso.com"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab(mailboxes=4) as running:
        yield running


cli = labcli.run


def targets() -> list[str]:
    return labcli.targets(MAILBOXES)


def has(lab: Lab, mailbox: str, trustee: str) -> bool:
    with lab.engine.lock:
        return lab.engine.directory.has_full_access(mailbox, trustee)


def test_undo_of_a_grant_already_revoked_removes_nothing_and_journals_nothing(
    lab: Lab, tmp_path: Path, private_state_dir: Path
) -> None:
    journal = private_state_dir / "provisioner" / "journal.jsonl"
    granted = cli(lab, tmp_path, "grant", *targets(), "--admin-user", ADMIN, "--report", str(tmp_path / "g.json"))
    assert granted.returncode == 0, granted.stderr
    grant_run = json.loads((tmp_path / "g.json").read_text())["run_id"]
    revoked = cli(lab, tmp_path, "revoke", *targets(), "--admin-user", ADMIN, "--yes")
    assert revoked.returncode == 0, revoked.stderr
    writes = lab.engine.counters.writes

    undo = cli(lab, tmp_path, "journal", "undo", grant_run, "--yes", "--report", str(tmp_path / "u.json"),
               "--profile-list", str(tmp_path / "profile.csv"))
    assert undo.returncode == 0, undo.stderr
    assert lab.engine.counters.writes == writes  # nothing sent
    report = json.loads((tmp_path / "u.json").read_text())
    assert {item["result"] for item in report["items"]} == {"absent"}
    assert report["summary"]["results"] == {"absent": 2}
    undo_run = report["run_id"]
    assert not [r for r in read(journal) if r["run_id"] == undo_run and r["kind"] == "change"]
    assert next(run for run in summaries(journal) if run.run_id == grant_run).changes == 2
    rows = (tmp_path / "profile.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 1  # the header only: the MAPI profile has nothing to take out
    assert not has(lab, MAILBOXES[0], ADMIN)


def test_undo_sends_only_what_is_still_needed(lab: Lab, tmp_path: Path, private_state_dir: Path) -> None:
    granted = cli(lab, tmp_path, "grant", *targets(), "--service-account", SERVICE,
                  "--report", str(tmp_path / "g.json"))
    assert granted.returncode == 0, granted.stderr
    grant_run = json.loads((tmp_path / "g.json").read_text())["run_id"]
    removed = cli(lab, tmp_path, "revoke", "-m", MAILBOXES[0], "--service-account", SERVICE, "--yes")
    assert removed.returncode == 0, removed.stderr

    dry = cli(lab, tmp_path, "journal", "undo", grant_run, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    commands = [line for line in dry.stdout.splitlines() if line.startswith("Remove-MailboxPermission")]
    assert len(commands) == 1 and MAILBOXES[1] in commands[0]

    undo = cli(lab, tmp_path, "journal", "undo", grant_run, "--yes", "--report", str(tmp_path / "u.json"))
    assert undo.returncode == 0, undo.stderr
    results = {item["mailbox"]: item["result"] for item in json.loads((tmp_path / "u.json").read_text())["items"]}
    assert results == {MAILBOXES[0]: "absent", MAILBOXES[1]: "removed"}
    assert not has(lab, MAILBOXES[1], SERVICE)


def test_undo_that_only_grants_again_asks_nothing(lab: Lab, tmp_path: Path) -> None:
    for mailbox in MAILBOXES:
        with lab.engine.lock:
            directory = lab.engine.directory
            directory.add_entry(directory.mailbox(mailbox),
                                PermissionEntry(directory.principal(SERVICE).sid, FULL_ACCESS, inheritance="All"))
    revoked = cli(lab, tmp_path, "revoke", *targets(), "--service-account", SERVICE, "--yes",
                  "--report", str(tmp_path / "r.json"))
    assert revoked.returncode == 0, revoked.stderr
    revoke_run = json.loads((tmp_path / "r.json").read_text())["run_id"]
    undo = cli(lab, tmp_path, "journal", "undo", revoke_run)  # no --yes, no terminal: it only grants, so it runs
    assert undo.returncode == 0, undo.stderr
    assert all(has(lab, mailbox, SERVICE) for mailbox in MAILBOXES)
