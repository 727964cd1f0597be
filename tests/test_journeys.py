"""Every admin journey end to end against the lab, with one check after each step: the lab's state, the JSON
report, the HTML headline and the journal tell the same story.

audit -> grant -> audit -> revoke -> reapply -> reapply --prune -> plan + apply -> journal undo (-> check).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from provisioner_lab.run import Lab, running_lab

from provisioner.engine.journal import read
from tests.test_reports import headline_of

ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
TRUSTEES = (ADMIN, SERVICE)
MAILBOXES = [f"user{i:06d}@contoso.com" for i in range(1, 9)]
HAVE = {"granted", "already-present", "present"}  # after the run, the pair holds Full Access
LACK = {"removed", "absent", "missing", "planned"}  # it does not (planned: a dry-run or a refused plan)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab(mailboxes=len(MAILBOXES) + 2) as running:
        yield running


class Journey:
    def __init__(self, lab: Lab, tmp: Path, journal: Path) -> None:
        self.lab, self.tmp, self.journal, self.step = lab, tmp, journal, 0

    def run(self, *args: str, expect: int = 0, report: bool = True) -> dict[str, object]:
        """One command, then the agreement check of its report, HTML and journal with the lab."""
        self.step += 1
        paths = ["--report", str(self.tmp / f"{self.step}.json"), "--html", str(self.tmp / f"{self.step}.html")]
        env = {**os.environ, "PROVISIONER_PASSWORD": self.lab.password, "PYTHONIOENCODING": "utf-8"}
        done = subprocess.run([sys.executable, "-m", "provisioner", *args, *(paths if report else []),
                               *self.lab.cli_args("ntlm")], capture_output=True, text=True, cwd=self.tmp, env=env,
                              timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == expect, (args, done.stderr)
        assert "Traceback" not in done.stderr
        if not report:
            return {}
        document: dict[str, object] = json.loads((self.tmp / f"{self.step}.json").read_text(encoding="utf-8"))
        self.agree(document)
        return document

    def holds(self, mailbox: str, trustee: str) -> bool:
        with self.lab.engine.lock:
            return self.lab.engine.directory.has_full_access(mailbox, trustee)

    def agree(self, document: dict[str, object]) -> None:
        items = document["items"]
        assert isinstance(items, list)
        summary = document["summary"]
        assert isinstance(summary, dict)
        # the lab: what each item says is what the lab holds now
        for item in items:
            if item["result"] in HAVE:
                assert self.holds(item["mailbox"], item["trustee"]), item
            elif item["result"] in LACK and not str(item["mailbox"]).startswith("nobody"):
                assert not self.holds(item["mailbox"], item["trustee"]), item
        # the HTML headline is the report's
        page = (self.tmp / f"{self.step}.html").read_text(encoding="utf-8")
        assert headline_of(page) == summary["headline"]
        # the journal: a run's change lines are exactly the items it reports changed (none for reads and dry-runs)
        run_id = document.get("run_id")
        changed = {(i["mailbox"].casefold(), i["trustee"].casefold()) for i in items
                   if i["result"] in ("granted", "removed")}
        journaled = {(r["mailbox"].casefold(), r["trustee"].casefold()) for r in read(self.journal)
                     if r["run_id"] == run_id and r["kind"] == "change" and r.get("outcome") in ("granted", "removed")}
        assert journaled == changed, (run_id, journaled ^ changed)


def targets(mailboxes: list[str]) -> list[str]:
    return [arg for mailbox in mailboxes for arg in ("-m", mailbox)]


def test_every_journey_tells_one_story(lab: Lab, tmp_path: Path, private_state_dir: Path) -> None:
    journey = Journey(lab, tmp_path, private_state_dir / "provisioner" / "journal.jsonl")
    who = ["--admin-user", ADMIN, "--service-account", SERVICE]
    half, rest = MAILBOXES[:4], MAILBOXES[4:]

    before = journey.run("audit", *targets(MAILBOXES), *who, expect=3)
    assert before["summary"]["results"] == {"missing": 16}  # type: ignore[index]
    granted = journey.run("grant", *targets(half), *who)
    assert granted["summary"]["results"] == {"granted": 8}  # type: ignore[index]
    audit = journey.run("audit", *targets(MAILBOXES), *who, expect=3)
    assert audit["summary"]["results"] == {"present": 8, "missing": 8}  # type: ignore[index]
    revoked = journey.run("revoke", *targets(half[:1]), *who, "--yes")
    assert revoked["summary"]["results"] == {"removed": 2}  # type: ignore[index]

    config = tmp_path / "provisioner.toml"
    config.write_text(lab.config_toml() + f'[trustees]\nadmin_user = "{ADMIN}"\nservice_account = "{SERVICE}"\n'
                      f'[targets]\nmailboxes = {json.dumps(MAILBOXES)}\n', encoding="utf-8")
    reapplied = journey.run("reapply", "--config", str(config))
    assert reapplied["summary"]["results"] == {"granted": 10, "already-present": 6}  # type: ignore[index]
    narrowed = tmp_path / "narrowed.toml"
    narrowed.write_text(config.read_text().replace(json.dumps(MAILBOXES), json.dumps(rest)), encoding="utf-8")
    pruned = journey.run("reapply", "--config", str(narrowed), "--prune", "--yes")
    assert pruned["summary"]["results"] == {"already-present": 8, "removed": 8}  # type: ignore[index]

    plan = tmp_path / "change.plan"
    journey.run("plan", "grant", *targets(half), *who, "--out", str(plan), report=False)
    applied = journey.run("apply", str(plan), "--yes")
    assert applied["summary"]["results"] == {"granted": 8}  # type: ignore[index]

    undone = journey.run("journal", "undo", str(applied["run_id"]), "--yes")
    assert undone["summary"]["results"] == {"removed": 8}  # type: ignore[index]
    assert not any(journey.holds(m, t) for m in half for t in TRUSTEES)
    assert all(journey.holds(m, t) for m in rest for t in TRUSTEES)

    journey.run("check", *who, report=False)
