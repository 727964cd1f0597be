"""``provisioner journal undo RUN_ID``: reverse what a run really changed, and only what still needs reversing.

The journal says what the run changed (granted or removed, including changes a killed run left in doubt and a
later run reconciled). The undo follows the run protocol (lock, reconcile, then plan and apply): it first settles
anything still in doubt, refuses if some of the run's changes still cannot be read (an undo that silently leaves
grants behind is worse than one that waits), then reads the current state of every pair and plans only what is
needed: a grant is undone by removing the explicit entry *if it is still there*; a removal by granting again (with
the AutoMapping the journal recorded) *if access is still missing*. Everything else is reported as it is now
(``absent``, ``already-present``), sent nothing and journaled as nothing. The undo is itself a journaled run
(``undo-<RUN_ID>-…``), so it can be undone in turn; it journals only the changes it made.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner.domain import planner
from provisioner.domain.model import Action, Identity, ItemState, PairKey, Plan, PlanItem, Trustee, pair_key
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.domain.wording import counted
from provisioner.engine.apply import Engine, ProgressFactory
from provisioner.engine.journal import Journal, changes_of, in_doubt
from provisioner.errors import InputError, ProvisionerError
from provisioner.inputs.config import Connection, RunSettings
from provisioner.powershell import steps as step_builders
from provisioner.runs.context import NO_HOOKS, Hooks, Lost, RunSpec, lost_run, open_run
from provisioner.runs.needs import cmdlets, needs
from provisioner.runs.result import Job, RunResult
from provisioner.runs.script import plan_script
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.session import PoolFactory


class StillInDoubt(ProvisionerError):
    """Some of the run's changes are still in doubt after reconciling: an undo now would be incomplete."""


@dataclass(frozen=True)
class UndoScope:
    """What the journal says a run changed: its changes (newest first) and the intents still in doubt."""

    run_id: str
    changes: tuple[dict[str, Any], ...]
    doubts: int

    @property
    def trustees(self) -> tuple[Trustee, ...]:
        return tuple({t.identity: t for t in (_trustee(r) for r in self.changes)}.values())

    @property
    def removes(self) -> bool:
        """Whether undoing may remove access (the run granted something)."""
        return any(record["action"] == "grant" for record in self.changes)

    @property
    def grants(self) -> bool:
        return any(record["action"] != "grant" for record in self.changes)


def scope(journal: Path, run_id: str) -> UndoScope:
    """The run's changes and doubts as the journal holds them now; a run with neither is an input error."""
    changes = list(changes_of(journal, run_id))
    doubts = [doubt for doubt in in_doubt(journal) if doubt.run_id == run_id]
    # an intent still in doubt is undone as if made: the read below decides whether anything is left to reverse
    changes += [{"run_id": d.run_id, "action": d.action, "mailbox": d.mailbox, "mailbox_guid": d.mailbox_guid,
                 "trustee": d.trustee, "automapping": d.automapping, "role": d.role} for d in doubts]
    if not changes:
        raise InputError(f"run {run_id!r} made no changes that the journal knows of", where=str(journal))
    return UndoScope(run_id, tuple(reversed(changes)), len(doubts))


def _trustee(record: dict[str, Any]) -> Trustee:
    # the role (journals since 0.1 record it) lets the undo's MAPI-profile list name the admin-console user
    return Trustee(Identity(record["trustee"]), bool(record.get("automapping", False)),
                   str(record.get("role", "trustee")))


def wanted(run: UndoScope) -> list[PlanItem]:
    """The inverse of each change, once per pair (the newest change of a pair decides), before reading."""
    items: dict[PairKey, PlanItem] = {}
    for record in run.changes:
        trustee, mailbox = _trustee(record), Identity(record["mailbox"])
        state = ItemState.TO_REMOVE if record["action"] == "grant" else ItemState.TO_ADD
        items.setdefault(pair_key(mailbox, trustee),
                         PlanItem(mailbox, trustee, state, f"undo {record['action']} of {run.run_id}"))
    return list(items.values())


def undo_plan(engine: Engine, run: UndoScope) -> Plan:
    """The undo of ``run`` as it stands now: only the inverses still needed are changes."""
    items = wanted(run)
    # each name acts on the very mailbox the run changed (its GUID in the journal), even if the name is ambiguous now
    engine.alias({Identity(r["mailbox"]): Identity(r["mailbox_guid"]) for r in run.changes if r.get("mailbox_guid")})
    trustees = {item.trustee.identity: item.trustee for item in items}
    by_trustee: dict[Identity, list[PlanItem]] = {}
    for item in items:
        by_trustee.setdefault(item.trustee.identity, []).append(item)
    now: dict[PairKey, PlanItem] = {}
    for trustee_id, group in by_trustee.items():
        trustee = trustees[trustee_id]
        observed = engine.observe([item.mailbox for item in group], [trustee])
        for item in group:
            pair = pair_key(item.mailbox, trustee)
            fresh = planner.replan(item.mailbox, trustee, item.state, observed[pair])
            detail = item.detail if fresh.state is item.state else f"{item.detail}: {fresh.detail}"
            now[pair] = PlanItem(item.mailbox, trustee, fresh.state, detail, fresh.error)
    return Plan(Action.UNDO, tuple(now[i.pair] for i in items),
                tuple(trustees.values()), observed=True)


def run_undo(
    journal: Path,
    run_id: str,
    connection: Connection,
    settings: RunSettings,
    *,
    dry_run: bool,
    offline: bool = False,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    automapping_unsupported_ok: bool = False,
    hooks: Hooks = NO_HOOKS,
    progress: ProgressFactory | None = None,
) -> RunResult:
    started = datetime.now(UTC)
    run = scope(journal, run_id)
    undo_id = f"undo-{run_id}-{uuid.uuid4().hex[:8]}"
    if offline:  # a dry-run that does not read: every inverse the journal holds, whether still needed or not
        plan = Plan(Action.UNDO, tuple(wanted(run)), run.trustees, observed=False)
        offline_options = step_builders.StepOptions(domain_controller=connection.domain_controller)
        text = plan_script(plan, offline_options, connection)
        summary = Job(Action.UNDO, _mailboxes(plan.items), plan.trustees, connection, dry_run=True, offline=True)
        return RunResult(summary, plan, [unchanged_outcome(item) for item in plan.items], started,
                         datetime.now(UTC), text, ["offline: the current state was not read"])
    spec = RunSpec(connection, cmdlets(Action.UNDO),
                   needs(Action.UNDO if run.grants else Action.REVOKE, connection, automapping_unsupported_ok,
                         run.trustees),
                   settings, undo_id, None if dry_run else Journal(journal), report_loss=True, dry_run=dry_run)
    try:
        with open_run(spec, password=password, pool_factory=pool_factory, progress=progress, hooks=hooks) as context:
            if not dry_run:
                run = scope(journal, run_id)  # as reconciled
                if run.doubts:
                    raise StillInDoubt(
                        f"{counted(run.doubts, 'change')} of run {run_id} still in doubt (their state cannot be read "
                        "now), so an undo now could leave some of them in place: nothing was changed. Run it again "
                        "when those mailboxes can be read")
            with context.reading():
                plan = undo_plan(context.engine, run)
            script: str | None = None
            if dry_run:
                script = plan_script(plan, context.options, connection)
                outcomes = [unchanged_outcome(item) for item in plan.items]
            else:
                context.planned(plan)
                outcomes = context.engine.apply(plan)
                context.finished(outcomes)
            notes = context.notes
    except Lost as lost:  # nothing was changed: every inverse unknown, in a report (exit 4)
        inverses = wanted(run)
        summary = Job(Action.UNDO, _mailboxes(inverses), run.trustees, connection, dry_run=dry_run)
        return lost_run(summary, started, datetime.now(UTC), lost.reason, lost.notes,
                        pairs=[(item.mailbox, item.trustee) for item in inverses])
    summary = Job(Action.UNDO, _mailboxes(plan.items), plan.trustees, connection, dry_run=dry_run)
    return context.result(summary, plan, outcomes, started, script=script, notes=notes)


def _mailboxes(items: Sequence[PlanItem]) -> tuple[Identity, ...]:
    return tuple(dict.fromkeys(item.mailbox for item in items))
