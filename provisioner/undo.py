"""``provisioner journal undo RUN_ID``: the inverse of a run's changes, newest first, as a plan.

A grant is undone by removing the explicit entry; a removal by granting again with the AutoMapping the journal
recorded. The undo is itself a journaled run (``undo-<RUN_ID>-…``), so it can be undone in turn.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from provisioner import steps as step_builders
from provisioner.config import Connection, ReapplySettings
from provisioner.engine import Engine, PoolFactory, ProgressFactory, open_session
from provisioner.errors import InputError
from provisioner.jobs import NO_HOOKS, Hooks, Job, RunResult, cmdlets, prepare, script_context
from provisioner.journal import Journal, changes_of
from provisioner.model import Action, Identity, ItemState, Outcome, Plan, PlanItem, Result, Trustee
from provisioner.render import render_script
from provisioner.session import open_pool


def undo_plan(journal: Path, run_id: str) -> Plan:
    changes = changes_of(journal, run_id)
    if not changes:
        raise InputError(f"run {run_id!r} made no changes that the journal knows of", where=str(journal))
    items: list[PlanItem] = []
    trustees: dict[Identity, Trustee] = {}
    for record in reversed(changes):
        # the role (journals since 0.1 record it) lets the undo's MAPI-profile list name the admin-console user
        trustee = Trustee(Identity(record["trustee"]), bool(record.get("automapping", False)),
                          str(record.get("role", "trustee")))
        trustees.setdefault(trustee.identity, trustee)
        state = ItemState.TO_REMOVE if record["action"] == "grant" else ItemState.TO_ADD
        items.append(PlanItem(Identity(record["mailbox"]), trustee, state, f"undo {record['action']} of {run_id}"))
    return Plan(Action.UNDO, tuple(items), tuple(trustees.values()), observed=False)


def run_undo(
    journal: Path,
    run_id: str,
    connection: Connection,
    settings: ReapplySettings,
    *,
    dry_run: bool,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    automapping_unsupported_ok: bool = False,
    hooks: Hooks = NO_HOOKS,
    progress: ProgressFactory | None = None,
) -> RunResult:
    started = datetime.now(UTC)
    plan = undo_plan(journal, run_id)
    mailboxes = tuple(dict.fromkeys(item.mailbox for item in plan.items))
    summary = Job(Action.UNDO, mailboxes, plan.trustees, connection, dry_run=dry_run)
    options = step_builders.StepOptions(domain_controller=connection.domain_controller)
    if dry_run:
        steps = list(step_builders.changes(plan, options))
        script = render_script(plan, steps, script_context(connection))
        outcomes = [Outcome(i.mailbox, i.trustee, Result.PLANNED, i.detail) for i in plan.items]
        return RunResult(summary, plan, outcomes, started, datetime.now(UTC), script)
    undo_id = f"undo-{run_id}-{uuid.uuid4().hex[:8]}"
    with open_session(connection, password, pool_factory, cmdlets(Action.UNDO)) as session:
        grants = any(item.state is ItemState.TO_ADD for item in plan.items)  # undoing removals grants again
        options = prepare(session, Action.UNDO if grants else Action.REVOKE, connection, automapping_unsupported_ok)
        engine = Engine(session, options, settings, batch_size=connection.batch_size,
                        parallel=connection.parallel, journal=Journal(journal),
                        run_id=undo_id, progress=progress)
        if hooks.planned is not None:
            hooks.planned(plan, engine)
        outcomes = engine.apply(plan)
        if hooks.finished is not None:
            hooks.finished(outcomes, engine)
    result = RunResult(summary, plan, outcomes, started, datetime.now(UTC), None, engine.notes)
    result.run_id = undo_id
    result.lost = engine.lost
    return result
