"""Plan files and journals written before the package move (release 0.2.0, commit 4a4e7f0, by the real CLI against
the lab) stay readable: a saved plan loads with its digest and changes, and a journal's runs list and undo as they
did (tests/data/legacy)."""

from __future__ import annotations

from pathlib import Path

from provisioner.domain.model import Action, ItemState
from provisioner.engine.journal import summaries
from provisioner.runs.planfile import load
from provisioner.runs.undo import scope, wanted

LEGACY = Path(__file__).parent / "data" / "legacy"
GRANT, REVOKE = "grant-20261205T153539Z-c246b7bc", "revoke-20261205T153540Z-9e689330"
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"


def test_a_plan_saved_before_the_move_loads_with_its_changes() -> None:
    saved = load(LEGACY / "grant-0.2.0.plan")
    assert saved.action is Action.GRANT and saved.tool_version == "0.2.0"
    assert saved.digest.startswith("sha256:") and saved.endpoint["server"] == "127.0.0.1"
    pairs = {(change.mailbox.value, change.trustee.identity.value) for change in saved.changes}
    assert pairs == {(m, t) for m in ("alice.wong@contoso.com", "bob.meyer@contoso.com") for t in (ADMIN, SERVICE)}


def test_a_journal_written_before_the_move_lists_and_undoes_its_runs() -> None:
    journal = LEGACY / "journal-0.2.0.jsonl"
    listed = {run.run_id: (run.granted, run.removed, run.in_doubt) for run in summaries(journal)}
    assert listed == {GRANT: (4, 0, 0), REVOKE: (0, 2, 0)}
    undo = wanted(scope(journal, REVOKE))  # undoing the revoke grants alice's two pairs back
    assert {(item.mailbox.value, item.trustee.identity.value, item.state) for item in undo} == {
        ("alice.wong@contoso.com", ADMIN, ItemState.TO_ADD), ("alice.wong@contoso.com", SERVICE, ItemState.TO_ADD)}
