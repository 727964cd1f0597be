"""One run, start to end: read (observe), plan, then apply or stop before applying (dry-run).

This is the only place that sequences the pieces. Dry-run is "stop before executing": the same plan and the
same steps are rendered instead of sent. Every (mailbox, trustee) of the plan ends with exactly one outcome,
including when the session breaks mid-run (the unfinished items are reported unknown, never dropped).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from provisioner.domain import planner
from provisioner.domain.model import (
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
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.engine.apply import Engine, ProgressFactory
from provisioner.engine.journal import Journal
from provisioner.engine.reconcile import reconcile
from provisioner.engine.trustees import verify_trustees
from provisioner.errors import ConnectionFailure, ExitCode, ProvisionerError, SessionLostForGood
from provisioner.inputs.config import Connection, ReapplySettings
from provisioner.powershell import cmdlets as table
from provisioner.powershell import steps as step_builders
from provisioner.powershell.render import ScriptContext, render_script
from provisioner.powershell.steps import StepOptions
from provisioner.transport.facts import AUTOMAPPING_HINT, MissingCapability, ServerFacts, refuse_missing
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.runner import TransportLost
from provisioner.transport.session import PoolFactory, SessionLike, open_session

if TYPE_CHECKING:
    from provisioner.runs.mapi_profile import ProfileEntry


@dataclass(frozen=True)
class Job:
    action: Action
    mailboxes: tuple[Identity, ...]
    trustees: tuple[Trustee, ...]
    connection: Connection
    dry_run: bool = False
    offline: bool = False  # plan without reading (dry-run only): every pair is listed as a change
    automapping_unsupported_ok: bool = False  # --accept-automapping: a server without -AutoMapping automaps


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
    # the admin-console user's MAPI-profile changes (provisioner.runs.mapi_profile)
    profile: tuple[ProfileEntry, ...] = ()
    lost: str | None = None  # the session was lost for good (Engine.lost): exit 4, unknown items in the report

    @property
    def exit_code(self) -> ExitCode:
        drift = (ItemState.TO_ADD, ItemState.BLOCKED)
        if self.lost is not None:
            return SessionLostForGood.exit_code
        if self.job.action is Action.AUDIT and any(item.state in drift for item in self.plan.items):
            return ExitCode.DRIFT
        if any(outcome.result in PROBLEM_RESULTS for outcome in self.outcomes):
            return ExitCode.ITEMS_FAILED
        return ExitCode.OK

    @property
    def final_exit_code(self) -> ExitCode:
        return self.refused.exit_code if self.refused is not None else self.exit_code


GRANTING = table.ADD_PERMISSION.runs  # the runs that may grant


@dataclass(frozen=True)
class Hooks:
    """What a caller adds at a run's two seams, inside the open session. ``planned`` runs after planning and before
    anything is applied (dry-runs too: a saved plan is made there); raising stops the run with nothing applied (a
    declined confirmation). ``finished`` runs after the outcomes are known (e.g. to read the granted mailboxes'
    names for the MAPI profile list)."""

    planned: Callable[[Plan, Engine], None] | None = None
    finished: Callable[[Sequence[Outcome], Engine], None] | None = None


NO_HOOKS = Hooks()


def step_options(
    connection: Connection, facts: ServerFacts | None, automapping_unsupported_ok: bool, action: Action = Action.GRANT,
    trustees: Sequence[Trustee] = (),
) -> StepOptions:
    """How this run's steps are built, from the connection and the server facts (None: offline, nothing known).

    A server without -AutoMapping (Exchange 2010 before SP2, or an RBAC role without it) automaps every grant; a
    run that grants is refused unless the admin accepts that (``--accept-automapping``); then -AutoMapping is left
    out of every grant, visibly in the reviewed script too. A run whose ``trustees`` all asked for automapping gets
    what it asked for there, so it is not refused.
    """
    automapping = True
    if facts is not None and not facts.has_parameter("Add-MailboxPermission", "AutoMapping"):
        wants_off = not trustees or any(not trustee.automapping for trustee in trustees)
        if not automapping_unsupported_ok and action in GRANTING and wants_off:
            raise MissingCapability(AUTOMAPPING_HINT)
        automapping = False
    return StepOptions(domain_controller=connection.domain_controller, automapping=automapping)


def required(action: Action, options: StepOptions, piping: bool) -> dict[str, set[str]]:
    """The cmdlets and parameters a run of ``action`` will send (checked against the facts before any is sent)."""
    return table.required(action, piping=piping, domain_controller=bool(options.domain_controller),
                          automapping=options.automapping)


def cmdlets(action: Action) -> tuple[str, ...]:
    """The cmdlets a run of ``action`` may send (whose metadata its session reads): reapply resolves selectors
    (Get-DistributionGroupMember) too."""
    return table.run_cmdlets(action)


def prepare(
    session: SessionLike, action: Action, connection: Connection, automapping_unsupported_ok: bool,
    trustees: Sequence[Trustee] = (),
) -> StepOptions:
    """Step options for this session's server, after refusing a run the server or account cannot carry out."""
    options = step_options(connection, session.facts, automapping_unsupported_ok, action, trustees)
    refuse_missing(session.facts, required(action, options, session.runner.piping))
    return options


def run(
    job: Job,
    *,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    progress: ProgressFactory | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    settings: ReapplySettings | None = None,
    session: SessionLike | None = None,
    hooks: Hooks = NO_HOOKS,
) -> RunResult:
    """grant, revoke and audit: read, plan, then apply through the engine (or stop before applying)."""
    started = now()
    run_id = new_run_id(job.action.value)
    if job.offline:
        plan = planner.plan(job.action, job.mailboxes, job.trustees, None)
        options = step_options(job.connection, None, job.automapping_unsupported_ok)
        return _finish(job, plan, [unchanged_outcome(item) for item in plan.items], started, now(), options)
    settings = settings or ReapplySettings()
    changing = not job.dry_run and job.action is not Action.AUDIT
    journal = Journal(settings.journal) if settings.journal and changing else None
    try:
        active = session or open_session(job.connection, password, pool_factory, cmdlets(job.action))
    except ConnectionFailure as exc:  # nothing was sent: every item unknown, in a report (exit 4)
        if job.dry_run:
            raise
        return lost_run(job, started, now(), str(exc))
    try:
        options = prepare(active, job.action, job.connection, job.automapping_unsupported_ok, job.trustees)
        engine = Engine(active, options, settings, batch_size=job.connection.batch_size,
                        read_batch_size=job.connection.read_batch_size, parallel=job.connection.parallel,
                        journal=journal, run_id=run_id, progress=progress)
        try:
            reconcile(engine, run_id)  # intents a killed run left in doubt, before this run reads and plans
            verify_trustees(engine, job.trustees, job.mailboxes)  # a mistyped trustee: one message, nothing read
            observed = engine.observe(job.mailboxes, job.trustees)
        except TransportLost as exc:
            return lost_run(job, started, now(), f"session lost while reading: {exc}", engine.notes)
        plan = planner.plan(job.action, job.mailboxes, job.trustees, observed)
        if hooks.planned is not None:
            hooks.planned(plan, engine)
        if job.dry_run or job.action is Action.AUDIT:
            outcomes = [unchanged_outcome(item, job.action) for item in plan.items]
        else:
            outcomes = engine.apply(plan)
        if hooks.finished is not None:
            hooks.finished(outcomes, engine)
    finally:
        if session is None:
            active.close()
    result = _finish(job, plan, outcomes, started, now(), options, notes=engine.notes + list(active.facts.notes))
    result.run_id = run_id if journal else None
    result.lost = engine.lost
    return result


def lost_run(job: Job, started: datetime, finished: datetime, reason: str, notes: Sequence[str] = ()) -> RunResult:
    """A run whose session was lost for good before the plan was known: every item unknown (exit 4)."""
    lost = ErrorInfo(reason, category="ConnectionError")
    items = tuple(PlanItem(mailbox, trustee, ItemState.UNKNOWN, lost.message, lost)
                  for mailbox in job.mailboxes for trustee in job.trustees)
    plan = Plan(job.action, items, job.trustees, observed=False)
    outcomes = [Outcome(i.mailbox, i.trustee, Result.UNKNOWN, lost.message, lost) for i in plan.items]
    options = step_options(job.connection, None, job.automapping_unsupported_ok)
    result = _finish(job, plan, outcomes, started, finished, options, notes=list(notes))  # each item says why
    result.lost = reason
    return result


def script_context(connection: Connection) -> ScriptContext:
    """Header and preamble of the reviewed script: the server (and DC) on-prem; for Exchange Online the V3 module's
    ``Connect-ExchangeOnline`` line, after which the same cmdlets run."""
    if connection.backend == "exo":
        from provisioner.transport.exo import script

        return ScriptContext(script.target(connection), None, script.connect_line(connection), exchange_online=True)
    preamble = connection.preamble if connection.mode == "script" else None
    return ScriptContext(connection.server or "(not configured)", connection.domain_controller, preamble)


def new_run_id(prefix: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    return f"{prefix}-{stamp}" if prefix else stamp


def _finish(
    job: Job, plan: Plan, outcomes: list[Outcome], started: datetime, finished: datetime, options: StepOptions,
    notes: list[str] | None = None,
) -> RunResult:
    script = None
    if job.dry_run:
        changes = step_builders.changes(plan, options)  # a generator: no step is kept (100k-mailbox plans)
        script = render_script(plan, changes, script_context(job.connection), now=finished)
    return RunResult(job, plan, outcomes, started, finished, script, notes or [])
