"""One run, start to end: read (observe), plan, then apply or stop before applying (dry-run).

This is the only place that sequences the pieces. Dry-run is "stop before executing": the same plan and the
same steps are rendered instead of sent. Every (mailbox, trustee) of the plan ends with exactly one outcome,
including when the session breaks mid-run (the unfinished items are reported unknown, never dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from provisioner import planner
from provisioner import steps as step_builders
from provisioner.config import Connection
from provisioner.errors import ExitCode, ProvisionerError
from provisioner.executors.batch import BatchExecutor
from provisioner.executors.psrp import Progress, PsrpExecutor, TransportLost, encode_command, encode_script
from provisioner.model import (
    PROBLEM_RESULTS,
    Action,
    ErrorInfo,
    Identity,
    ItemState,
    Outcome,
    Plan,
    PlanItem,
    Result,
    Trustee,
)
from provisioner.render import ScriptContext, render_script
from provisioner.session import open_pool

PoolFactory = Callable[[Connection, str | None], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Job:
    action: Action
    mailboxes: tuple[Identity, ...]
    trustees: tuple[Trustee, ...]
    connection: Connection
    dry_run: bool = False
    offline: bool = False  # plan without reading (dry-run only): every pair is listed as a change


@dataclass
class RunResult:
    job: Job
    plan: Plan
    outcomes: list[Outcome]
    started: datetime
    finished: datetime
    script: str | None = None
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None
    refused: ProvisionerError | None = None  # the run refused to apply (e.g. too many changes)

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.result.value] = counts.get(outcome.result.value, 0) + 1
        return counts

    @property
    def exit_code(self) -> ExitCode:
        drift = (ItemState.TO_ADD, ItemState.BLOCKED)
        if self.job.action is Action.AUDIT and any(item.state in drift for item in self.plan.items):
            return ExitCode.DRIFT
        if any(outcome.result in PROBLEM_RESULTS for outcome in self.outcomes):
            return ExitCode.ITEMS_FAILED
        return ExitCode.OK

    @property
    def final_exit_code(self) -> ExitCode:
        return self.refused.exit_code if self.refused is not None else self.exit_code


_STATE_RESULT = {
    ItemState.ALREADY_PRESENT: Result.ALREADY_PRESENT,
    ItemState.BLOCKED: Result.BLOCKED,
    ItemState.ABSENT: Result.ABSENT,
    ItemState.INHERITED_ONLY: Result.INHERITED_ONLY,
    ItemState.TO_ADD: Result.PLANNED,
    ItemState.TO_REMOVE: Result.PLANNED,
}


def unchanged_outcome(item: PlanItem, action: Action = Action.GRANT) -> Outcome:
    """The outcome of an item nothing was (or will be) sent for."""
    if action is Action.AUDIT and item.state is ItemState.TO_ADD:
        return Outcome(item.mailbox, item.trustee, Result.MISSING, item.detail)
    if item.state is ItemState.UNKNOWN:
        # A mailbox or trustee that does not exist (or is ambiguous) is a definite failure; anything else is
        # a state that could not be read.
        result = Result.FAILED if item.error is not None and item.error.definitive else Result.UNKNOWN
        return Outcome(item.mailbox, item.trustee, result, item.detail, item.error)
    return Outcome(item.mailbox, item.trustee, _STATE_RESULT[item.state], item.detail)


def executor_for(
    pool: Any, connection: Connection, password: str | None = None, pool_factory: PoolFactory | None = None
) -> PsrpExecutor:
    """Command mode: batched (``batch_size`` steps per pipeline, ``parallel`` pools); script mode: one per step."""
    options = step_builders.StepOptions(domain_controller=connection.domain_controller)
    if connection.mode == "command":
        opener = (lambda: pool_factory(connection, password)) if pool_factory is not None else None
        return BatchExecutor(
            pool, options, batch_size=connection.batch_size, parallel=connection.parallel, open_pool=opener
        )
    encoder = encode_script if connection.mode == "script" else encode_command
    executor = PsrpExecutor(pool, encoder, options)
    if connection.mode == "script" and connection.preamble:
        result = executor.run_preamble(connection.preamble)
        if result.failed or result.errors:
            first = result.first_error
            raise TransportLost(f"the preamble failed: {first.message if first else 'no error record'}")
    return executor


def merge_outcomes(plan: Plan, applied: Iterator[Outcome]) -> list[Outcome]:
    """Plan order, one outcome per item; changes take their outcome from ``applied``.

    If ``applied`` stops early (the session broke), every change without an outcome is UNKNOWN: it may or may
    not have reached the server.
    """
    done: dict[planner.PairKey, Outcome] = {}
    lost: str | None = None
    try:
        for outcome in applied:
            done[planner.key(outcome.mailbox, outcome.trustee)] = outcome
    except TransportLost as exc:
        lost = str(exc)
    outcomes: list[Outcome] = []
    for item in plan.items:
        if not item.changes:
            outcomes.append(unchanged_outcome(item))
            continue
        found = done.get(planner.key(item.mailbox, item.trustee))
        if found is None:
            detail = f"session lost before the outcome was known: {lost}" if lost else "not run"
            found = Outcome(item.mailbox, item.trustee, Result.UNKNOWN, detail, ErrorInfo(detail))
        outcomes.append(found)
    return outcomes


def run(
    job: Job,
    *,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    progress: Callable[[str, int], Progress] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RunResult:
    started = now()
    if job.offline:
        plan = planner.plan(job.action, job.mailboxes, job.trustees, None)
        return _finish(job, plan, [unchanged_outcome(item) for item in plan.items], started, now())
    pairs = len(job.mailboxes) * len(job.trustees)
    with pool_factory(job.connection, password) as pool:
        try:
            executor = executor_for(pool, job.connection, password, pool_factory)
            observed = executor.observe(job.mailboxes, job.trustees, progress("reading", pairs) if progress else None)
        except TransportLost as exc:
            lost = ErrorInfo(f"session lost while reading: {exc}", category="ConnectionError")
            observed = {}
            notes = [lost.message]
            plan = planner.plan(job.action, job.mailboxes, job.trustees, observed)
            outcomes = [Outcome(i.mailbox, i.trustee, Result.UNKNOWN, lost.message, lost) for i in plan.items]
            return _finish(job, plan, outcomes, started, now(), notes=notes)
        plan = planner.plan(job.action, job.mailboxes, job.trustees, observed)
        if job.dry_run or job.action is Action.AUDIT:
            outcomes = [unchanged_outcome(item, job.action) for item in plan.items]
        else:
            count = len(plan.changes)
            tick = progress("applying", count) if progress and count else None
            changes = step_builders.changes(plan, executor.options)  # a generator: steps are built as sent
            outcomes = merge_outcomes(plan, executor.apply(changes, tick))
    return _finish(job, plan, outcomes, started, now())


def _finish(
    job: Job, plan: Plan, outcomes: list[Outcome], started: datetime, finished: datetime, notes: list[str] | None = None
) -> RunResult:
    script = None
    if job.dry_run:
        options = step_builders.StepOptions(domain_controller=job.connection.domain_controller)
        changes = step_builders.changes(plan, options)  # a generator: no step is kept (100k-mailbox plans)
        preamble = job.connection.preamble if job.connection.mode == "script" else None
        context = ScriptContext(job.connection.server or "(not configured)", job.connection.domain_controller, preamble)
        script = render_script(plan, changes, context, now=finished)
    return RunResult(job, plan, outcomes, started, finished, script, notes or [])
