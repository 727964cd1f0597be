"""grant, revoke and audit, start to end: read (observe), plan, then apply or stop before applying (dry-run), in
the run context every verb shares (:func:`provisioner.runs.context.open_run`); what each run needs of the server.

Dry-run is "stop before executing": the same plan and the same steps are rendered instead of sent. Every (mailbox,
trustee) of the plan ends with exactly one outcome, including when the session breaks mid-run (the unfinished items
are reported unknown, never dropped).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from provisioner.domain import planner
from provisioner.domain.model import (
    Action,
    ErrorInfo,
    ItemState,
    Outcome,
    Plan,
    PlanItem,
    Result,
    Trustee,
)
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.engine.apply import ProgressFactory
from provisioner.engine.journal import Journal
from provisioner.engine.trustees import verify_trustees
from provisioner.inputs.config import Connection, RunSettings
from provisioner.powershell import cmdlets as table
from provisioner.powershell.steps import StepOptions
from provisioner.runs.context import NO_HOOKS, FactsCheck, Hooks, Lost, RunSpec, open_run
from provisioner.runs.result import Job, RunResult
from provisioner.runs.script import plan_script
from provisioner.transport.facts import AUTOMAPPING_HINT, MissingCapability, ServerFacts, refuse_missing
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.session import PoolFactory, SessionLike

GRANTING = table.ADD_PERMISSION.runs  # the runs that may grant


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


def needs(action: Action, connection: Connection, automapping_unsupported_ok: bool,
          trustees: Sequence[Trustee] = ()) -> FactsCheck:
    """The facts check of a run of ``action``: :func:`prepare` on the run's session."""
    return lambda session: prepare(session, action, connection, automapping_unsupported_ok, trustees)


def run(
    job: Job,
    *,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    progress: ProgressFactory | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    settings: RunSettings | None = None,
    session: SessionLike | None = None,
    hooks: Hooks = NO_HOOKS,
) -> RunResult:
    """grant, revoke and audit: read, plan, then apply through the engine (or stop before applying)."""
    started = now()
    run_id = new_run_id(job.action.value)
    if job.offline:
        plan = planner.plan(job.action, job.mailboxes, job.trustees, None)
        options = step_options(job.connection, None, job.automapping_unsupported_ok)
        finished = now()
        return RunResult(job, plan, [unchanged_outcome(item) for item in plan.items], started, finished,
                         _script(job, plan, options, finished))
    settings = settings or RunSettings()
    changing = not job.dry_run and job.action is not Action.AUDIT
    spec = RunSpec(job.connection, cmdlets(job.action),
                   needs(job.action, job.connection, job.automapping_unsupported_ok, job.trustees), settings, run_id,
                   Journal(settings.journal) if settings.journal and changing else None,
                   report_loss=True, dry_run=job.dry_run)
    try:
        with open_run(spec, password=password, pool_factory=pool_factory, progress=progress, hooks=hooks,
                      session=session, now=now) as context:
            with context.reading():
                verify_trustees(context.engine, job.trustees, job.mailboxes)  # a mistyped trustee: one message
                observed = context.engine.observe(job.mailboxes, job.trustees)
            plan = planner.plan(job.action, job.mailboxes, job.trustees, observed)
            context.planned(plan)
            if job.dry_run or job.action is Action.AUDIT:
                outcomes = [unchanged_outcome(item, job.action) for item in plan.items]
            else:
                outcomes = context.engine.apply(plan)
            context.finished(outcomes)
    except Lost as lost:  # nothing was sent, or the plan is not known: every item unknown, in a report (exit 4)
        return lost_run(job, started, now(), lost.reason, lost.notes)
    finished = now()
    return context.result(job, plan, outcomes, started, finished=finished,
                          script=_script(job, plan, context.options, finished))


def lost_run(job: Job, started: datetime, finished: datetime, reason: str, notes: Sequence[str] = (),
             run_id: str | None = None) -> RunResult:
    """A run whose session was lost for good before the plan was known: every item unknown (exit 4)."""
    lost = ErrorInfo(reason, category="ConnectionError")
    items = tuple(PlanItem(mailbox, trustee, ItemState.UNKNOWN, lost.message, lost)
                  for mailbox in job.mailboxes for trustee in job.trustees)
    plan = Plan(job.action, items, job.trustees, observed=False)
    outcomes = [Outcome(i.mailbox, i.trustee, Result.UNKNOWN, lost.message, lost) for i in plan.items]
    options = step_options(job.connection, None, job.automapping_unsupported_ok)
    return RunResult(job, plan, outcomes, started, finished, _script(job, plan, options, finished),
                     list(notes), run_id, lost=reason)  # each item says why


def new_run_id(prefix: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    return f"{prefix}-{stamp}" if prefix else stamp


def _script(job: Job, plan: Plan, options: StepOptions, finished: datetime) -> str | None:
    """A dry-run's script (None: not a dry-run)."""
    return plan_script(plan, options, job.connection, now=finished) if job.dry_run else None
