"""grant, revoke and audit, start to end: read (observe), plan, then apply or stop before applying (dry-run), in
the run context every verb shares (:func:`provisioner.runs.context.open_run`).

Dry-run is "stop before executing": the same plan and the same steps are rendered instead of sent. Every (mailbox,
trustee) of the plan ends with exactly one outcome, including when the session breaks mid-run (the unfinished items
are reported unknown, never dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from provisioner.domain import planner
from provisioner.domain.model import Action
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.engine.apply import ProgressFactory
from provisioner.engine.journal import Journal
from provisioner.engine.trustees import verify_trustees
from provisioner.inputs.config import RunSettings
from provisioner.runs.context import NO_HOOKS, Hooks, Lost, RunSpec, dry_run_script, lost_run, new_run_id, open_run
from provisioner.runs.needs import cmdlets, needs, step_options
from provisioner.runs.result import Job, RunResult
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.session import PoolFactory, SessionLike


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
                         dry_run_script(job, plan, options, finished))
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
            del observed  # the plan holds what was read: a run's reads are not kept beside it
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
                          script=dry_run_script(job, plan, context.options, finished))
