"""One run context (issue 19): every verb opens its session, checks the facts, builds its engine and reconciles in
:func:`provisioner.runs.context.open_run`, which closes the session on every path; the RunResult a verb returns is
complete (run id, refusal, MAPI-profile entries) and frozen. The runs go through the real PSRP client to the lab."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from provisioner_lab.run import Lab, running_lab

from provisioner.domain.model import Action, Identity, Outcome, Plan, Result, Trustee
from provisioner.engine.apply import Engine
from provisioner.engine.journal import changes_of
from provisioner.errors import Declined, ExitCode
from provisioner.inputs.config import Connection, RunSettings
from provisioner.runs.apply import connection_for, run_apply
from provisioner.runs.context import NO_HOOKS, Hooks
from provisioner.runs.jobs import run
from provisioner.runs.mapi_profile import ADMIN_ROLE, ProfileList
from provisioner.runs.planfile import PlanCapture, SavedPlan
from provisioner.runs.reapply import ReapplyJob, run_reapply
from provisioner.runs.result import Job, RunResult
from provisioner.runs.undo import run_undo
from provisioner.transport.facts import MissingCapability
from provisioner.transport.guard import Deadline
from provisioner.transport.psrp.connect import open_pool

PACKAGE = Path(__file__).parent.parent / "provisioner"
SERVICE = Trustee(Identity("svc-codetwo@contoso.com"), role="service-account")
ADMIN = Trustee(Identity("sync.admin@contoso.com"), role=ADMIN_ROLE)
MAILBOXES = (Identity("alice.wong"), Identity("carol.diaz"))
FAST = RunSettings(verify_delay_seconds=0, retry_base_seconds=0.01)


class Pools:
    """A pool factory over the real one that counts the pools opened and closed."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    @contextmanager
    def __call__(self, connection: Connection, password: str | None, deadline: Deadline) -> Iterator[Any]:
        with open_pool(connection, password, deadline) as pool:
            self.opened += 1
            try:
                yield pool
            finally:
                self.closed += 1


def decline(plan: Plan, engine: Engine) -> None:
    raise Declined("no")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab() as running:
        yield running


def connection_of(lab: Lab) -> Connection:
    return Connection(server="127.0.0.1", port=lab.port, auth="ntlm", username=lab.username,
                      configuration_name=lab.server.configuration_name)


def granted(lab: Lab, trustee: Trustee) -> list[str]:
    return [m.value for m in MAILBOXES if lab.engine.directory.has_full_access(m.value, trustee.identity.value)]


def grant(lab: Lab, journal: Path, pools: Pools, hooks: Hooks = NO_HOOKS, dry_run: bool = False,
          trustees: Sequence[Trustee] = (SERVICE,)) -> RunResult:
    job = Job(Action.GRANT, MAILBOXES, tuple(trustees), connection_of(lab), dry_run=dry_run)
    return run(job, password=lab.password, pool_factory=pools, settings=dataclasses.replace(FAST, journal=journal),
               hooks=hooks)


def calls(tree: ast.AST) -> set[str]:
    return {node.func.id for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def test_only_the_run_context_opens_sessions_builds_engines_and_reconciles() -> None:
    """No verb (nor the CLI, nor an output) can build its own engine or session: they are open_run's."""
    owners = {"open_session": "transport/session.py", "Engine": "engine/apply.py", "reconcile": "engine/reconcile.py"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        for name in calls(ast.parse(path.read_text(encoding="utf-8"))) & set(owners):
            if where not in ("runs/context.py", owners[name]):
                found.append(f"{where}: {name}(...)")
    assert found == []


def test_every_verb_closes_its_session_when_the_run_raises(lab: Lab, tmp_path: Path) -> None:
    """A declined confirmation (the planned hook raises) in grant, reapply, apply and undo: the error reaches the
    caller, nothing is applied, and every pool the run opened is closed."""
    journal = tmp_path / "journal.jsonl"
    connection = connection_of(lab)
    done = grant(lab, journal, Pools())  # something for undo to reverse
    assert done.exit_code is ExitCode.OK and done.run_id is not None
    capture = PlanCapture(connection)
    grant(lab, journal, Pools(), Hooks(planned=capture), dry_run=True, trustees=(ADMIN,))
    assert capture.saved is not None
    saved: SavedPlan = capture.saved
    settings = dataclasses.replace(FAST, journal=journal)
    verbs: dict[str, Callable[[Pools], RunResult]] = {
        "grant": lambda pools: grant(lab, journal, pools, Hooks(planned=decline), trustees=(ADMIN,)),
        "reapply": lambda pools: run_reapply(ReapplyJob(connection, (ADMIN,), MAILBOXES, settings=settings),
                                             password=lab.password, pool_factory=pools,
                                             hooks=Hooks(planned=decline)),
        "apply": lambda pools: run_apply(saved, connection_for(saved, connection), settings, password=lab.password,
                                         pool_factory=pools, hooks=Hooks(planned=decline)),
        "undo": lambda pools: run_undo(journal, str(done.run_id), connection, settings, dry_run=False,
                                       password=lab.password, pool_factory=pools, hooks=Hooks(planned=decline)),
    }
    for verb, start in verbs.items():
        pools = Pools()
        try:
            start(pools)
        except Declined:  # counted while the traceback still holds the run's frames (no collector closing it)
            opened, closed = pools.opened, pools.closed
        else:
            pytest.fail(f"{verb}: the hook's error did not reach the caller")
        assert opened >= 1 and closed == opened, verb
    assert granted(lab, ADMIN) == [] and granted(lab, SERVICE) == [m.value for m in MAILBOXES]


def test_a_run_refused_by_its_facts_check_closes_its_session(tmp_path: Path) -> None:
    """Exchange 2010 SP1 has no -AutoMapping: a grant that wants it off is refused before anything is sent."""
    with running_lab(profile="exchange2010sp1") as lab:
        pools = Pools()
        try:
            grant(lab, tmp_path / "journal.jsonl", pools)
        except MissingCapability:
            assert pools.opened == 1 and pools.closed == 1
        else:
            pytest.fail("a grant that wants -AutoMapping off ran on a server without it")
        assert granted(lab, SERVICE) == []


def test_a_grant_returns_its_result_complete_and_frozen(lab: Lab, tmp_path: Path) -> None:
    """The run id is the journal's, the admin-console user's MAPI-profile entries are in the result; nothing can be
    added to it afterwards."""
    journal = tmp_path / "journal.jsonl"
    profile = ProfileList()
    seen: list[Sequence[Outcome]] = []
    result = grant(lab, journal, Pools(), Hooks(finished=lambda outcomes, engine: seen.append(outcomes),
                                                profile=profile), trustees=(ADMIN,))
    assert result.exit_code is ExitCode.OK and result.lost is None and result.refused is None
    assert result.run_id is not None and result.run_id.startswith("grant-")
    assert {r["mailbox"] for r in changes_of(journal, result.run_id)} == {m.value for m in MAILBOXES}
    assert [(e.change, e.mailbox) for e in result.profile] == [("add", m) for m in MAILBOXES]
    assert all(e.primary_smtp for e in result.profile)  # the names were read in the run's session
    assert seen == [result.outcomes]  # the caller's finished hook ran too
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.run_id = None  # type: ignore[misc]


def test_a_dry_run_writes_no_journal_and_has_no_run_id(lab: Lab, tmp_path: Path) -> None:
    result = grant(lab, tmp_path / "journal.jsonl", Pools(), dry_run=True)
    assert result.run_id is None and result.script is not None
    assert [o.result for o in result.outcomes] == [Result.PLANNED] * len(MAILBOXES)
    assert not (tmp_path / "journal.jsonl").exists()


def test_reapply_apply_and_undo_return_their_ids_and_refusals(lab: Lab, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    connection = connection_of(lab)
    settings = dataclasses.replace(FAST, journal=journal)
    valve = ReapplyJob(connection, (SERVICE,), MAILBOXES, settings=dataclasses.replace(settings, max_changes=1),
                       run_id="reapply-test")
    refused = run_reapply(valve, password=lab.password, pool_factory=Pools())
    assert refused.run_id == "reapply-test" and refused.final_exit_code is ExitCode.TOO_MANY_CHANGES
    assert refused.refused is not None and "max_changes=1" in str(refused.refused)
    assert granted(lab, SERVICE) == []
    capture = PlanCapture(connection)
    grant(lab, journal, Pools(), Hooks(planned=capture), dry_run=True)
    assert capture.saved is not None
    applied = run_apply(capture.saved, connection_for(capture.saved, connection), settings, password=lab.password,
                        pool_factory=Pools())
    assert applied.run_id is not None and applied.run_id.startswith("apply-grant-")
    assert [o.result for o in applied.outcomes] == [Result.GRANTED] * len(MAILBOXES)
    undone = run_undo(journal, applied.run_id, connection, settings, dry_run=False, password=lab.password,
                      pool_factory=Pools())
    assert undone.run_id is not None and undone.run_id.startswith(f"undo-{applied.run_id}-")
    assert [o.result for o in undone.outcomes] == [Result.REMOVED] * len(MAILBOXES)
    assert granted(lab, SERVICE) == []
    assert undone.finished >= undone.started >= applied.finished > datetime(2020, 1, 1, tzinfo=UTC)
