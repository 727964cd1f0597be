"""One run's context: :func:`open_run` opens the session for the connection's backend, checks the server facts the
run needs, builds the one :class:`~provisioner.engine.apply.Engine` (settings, journal, run id, progress), settles
what killed runs left in doubt (:mod:`provisioner.engine.reconcile`), and closes the session on every path. grant,
revoke, audit, reapply, apply and journal undo all run in it and differ only in what they plan; :meth:`Run.result`
makes their :class:`~provisioner.runs.result.RunResult`, complete (run id, lost session, MAPI-profile entries).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from provisioner.domain.model import ErrorInfo, Identity, ItemState, Outcome, Plan, PlanItem, Result, Trustee
from provisioner.engine.apply import Engine, ProgressFactory
from provisioner.engine.journal import Journal
from provisioner.engine.reconcile import reconcile
from provisioner.errors import ConnectionFailure, ExitCode, ProvisionerError
from provisioner.inputs.config import Connection, RunSettings
from provisioner.powershell.steps import StepOptions
from provisioner.runs.mapi_profile import ProfileList
from provisioner.runs.needs import FactsCheck, step_options
from provisioner.runs.result import Job, RunResult
from provisioner.runs.script import plan_script
from provisioner.transport.runner import TransportLost
from provisioner.transport.session import PoolFactory, SessionLike, open_session


@dataclass(frozen=True)
class Hooks:
    """What a caller adds at a run's two seams, inside the open session. ``planned`` runs after planning and before
    anything is applied (dry-runs too: a saved plan is made there); raising stops the run with nothing applied (a
    declined confirmation). ``finished`` runs after the outcomes are known; ``profile`` too, the admin-console user's
    MAPI-profile list, whose entries the run's result holds."""

    planned: Callable[[Plan, Engine], None] | None = None
    finished: Callable[[Sequence[Outcome], Engine], None] | None = None
    profile: ProfileList | None = None


NO_HOOKS = Hooks()


@dataclass(frozen=True)
class RunSpec:
    """What a run needs before it plans: its connection, the cmdlets it may send (whose metadata its session reads),
    its facts check, and the settings, run id and journal of its engine."""

    connection: Connection
    cmdlets: tuple[str, ...]
    check: FactsCheck
    settings: RunSettings
    run_id: str
    journal: Journal | None = None
    batch_size: int | None = None  # None: the connection's
    #: A session lost for good before the plan is known (opening, reconciling, :meth:`Run.reading`) ends the run as
    #: :class:`Lost`, which the verb reports with every item unknown (exit 4), instead of as an error; except that a
    #: dry-run that cannot open its session is an error (there is nothing to report).
    report_loss: bool = False
    dry_run: bool = False


class Lost(ProvisionerError):
    """The session was lost for good before the run's plan was known: nothing was changed (a run with
    :attr:`RunSpec.report_loss` only; the verb reports it). ``notes``: the engine's, when it was built."""

    exit_code = ExitCode.CONNECTION

    def __init__(self, reason: str, notes: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason, self.notes = reason, tuple(notes)


@dataclass(frozen=True)
class Run:
    """An open run: its session, its engine (whose options the facts check gave) and its hooks."""

    spec: RunSpec
    session: SessionLike
    engine: Engine
    hooks: Hooks
    now: Callable[[], datetime]

    @property
    def options(self) -> StepOptions:
        return self.engine.options

    @property
    def run_id(self) -> str | None:
        """The id the journal records this run under (None: it writes no journal)."""
        return self.spec.run_id if self.engine.journal is not None else None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads made before the plan is known: a session lost for good here is :class:`Lost` when the run reports
        loss (as an error otherwise)."""
        try:
            yield
        except TransportLost as exc:
            if not self.spec.report_loss:
                raise
            raise Lost(f"session lost while reading: {exc}", self.engine.notes) from None

    def planned(self, plan: Plan) -> None:
        if self.hooks.planned is not None:
            self.hooks.planned(plan, self.engine)

    def finished(self, outcomes: Sequence[Outcome]) -> None:
        if self.hooks.finished is not None:
            self.hooks.finished(outcomes, self.engine)
        if self.hooks.profile is not None:
            self.hooks.profile(outcomes, self.engine)

    @property
    def notes(self) -> list[str]:
        """The engine's notes, then the server's (read when the session opened)."""
        return self.engine.notes + list(self.session.facts.notes)

    def result(
        self, job: Job, plan: Plan, outcomes: list[Outcome], started: datetime, *, script: str | None = None,
        notes: Sequence[str] | None = None, run_id: str | None = None, refused: ProvisionerError | None = None,
        finished: datetime | None = None,
    ) -> RunResult:
        """The run's complete result: ``notes`` default to :attr:`notes`, ``run_id`` to :attr:`run_id`; whether the
        session was lost for good and the MAPI-profile entries are the run's own."""
        profile = tuple(self.hooks.profile.entries) if self.hooks.profile is not None else ()
        return RunResult(job, plan, outcomes, started, finished or self.now(), script,
                         self.notes if notes is None else list(notes), run_id or self.run_id, refused, profile,
                         self.engine.lost)


@contextmanager
def open_run(
    spec: RunSpec,
    *,
    password: str | None = None,
    pool_factory: PoolFactory,
    progress: ProgressFactory | None = None,
    hooks: Hooks = NO_HOOKS,
    session: SessionLike | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[Run]:
    """The run of ``spec``, ready to plan: session open (``session``: a given one, which is not closed), facts
    checked, engine built, doubt left by killed runs settled. The session is closed on every path."""
    try:
        active = session or open_session(spec.connection, password, pool_factory, spec.cmdlets)
    except ConnectionFailure as exc:  # nothing was sent
        if spec.report_loss and not spec.dry_run:
            raise Lost(str(exc)) from None
        raise
    try:
        engine = Engine(active, spec.check(active), spec.settings,
                        batch_size=spec.connection.batch_size if spec.batch_size is None else spec.batch_size,
                        read_batch_size=spec.connection.read_batch_size, parallel=spec.connection.parallel,
                        journal=spec.journal, run_id=spec.run_id, sleep=sleep, progress=progress)
        run = Run(spec, active, engine, hooks, now)
        with run.reading():
            reconcile(engine, spec.run_id)  # intents a killed run left in doubt, before this run reads and plans
        yield run
    finally:
        if session is None:
            active.close()


def lost_run(job: Job, started: datetime, finished: datetime, reason: str, notes: Sequence[str] = (),
             run_id: str | None = None, pairs: Sequence[tuple[Identity, Trustee]] | None = None) -> RunResult:
    """A run whose session was lost for good before the plan was known: every item unknown (exit 4). ``pairs``:
    the run's (mailbox, trustee) items when they are not every target with every trustee (a saved plan's changes,
    an undo's inverses)."""
    lost = ErrorInfo(reason, category="ConnectionError")
    every = [(mailbox, trustee) for mailbox in job.mailboxes for trustee in job.trustees]
    wanted = every if pairs is None else pairs
    items = tuple(PlanItem(mailbox, trustee, ItemState.UNKNOWN, lost.message, lost) for mailbox, trustee in wanted)
    plan = Plan(job.action, items, job.trustees, observed=False)
    outcomes = [Outcome(i.mailbox, i.trustee, Result.UNKNOWN, lost.message, lost) for i in plan.items]
    options = step_options(job.connection, None, job.automapping_unsupported_ok)
    return RunResult(job, plan, outcomes, started, finished, dry_run_script(job, plan, options, finished),
                     list(notes), run_id, lost=reason)  # each item says why


def new_run_id(prefix: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    return f"{prefix}-{stamp}" if prefix else stamp


def dry_run_script(job: Job, plan: Plan, options: StepOptions, finished: datetime) -> str | None:
    """A dry-run's script (None: not a dry-run)."""
    return plan_script(plan, options, job.connection, now=finished) if job.dry_run else None
