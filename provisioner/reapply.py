"""``provisioner reapply``: the scheduled job. Resolve targets, observe, plan, apply in journaled batches, verify.

Safe to run every hour for years:

- targets are resolved live (selectors, explicit identities, exclusions); a selector that cannot be read stops
  the run before anything changes;
- only missing grants are applied; an unreadable pair is ``unknown`` and retried next run, never "absent";
- ``prune`` removes the managed trustees' explicit Allow Full Access from mailboxes no longer targeted (never
  other trustees, inherited or Deny entries), and is refused when a target could not be resolved;
- a plan with more changes than ``max_changes`` is refused (exit 6, nothing applied) unless forced;
- every batch is journaled before and after it is sent (see :mod:`provisioner.journal`), and changes left in
  doubt by a killed run are reconciled from the live state first;
- transient errors (transport, throttling) are retried per batch with exponential backoff and jitter, bounded in
  attempts and time, without re-sending items whose outcome is known; a broken session is reopened;
- every applied change is re-read; one not visible yet is re-checked after a delay (replication), then reported
  ``unknown`` (and left in doubt in the journal) rather than granted.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner import planner
from provisioner import steps as step_builders
from provisioner.config import Connection, ReapplySettings, Selector
from provisioner.errors import ExitCode, ProvisionerError
from provisioner.executors.psrp import PsrpExecutor, TransportLost
from provisioner.jobs import Job, PoolFactory, RunResult, executor_for, unchanged_outcome
from provisioner.journal import InDoubt, Journal, in_doubt, step_action
from provisioner.model import (
    AccessState,
    Action,
    ErrorInfo,
    Identity,
    ItemState,
    Observation,
    Outcome,
    Plan,
    PlanItem,
    Result,
    Trustee,
)
from provisioner.render import ScriptContext, render_script
from provisioner.resolve import MailboxRef, Resolver
from provisioner.session import open_pool


class TooManyChanges(ProvisionerError):
    exit_code = ExitCode.TOO_MANY_CHANGES


def is_transient(error: ErrorInfo | None) -> bool:
    return error is not None and error.transient


@dataclass(frozen=True)
class ReapplyJob:
    connection: Connection
    trustees: tuple[Trustee, ...]
    explicit: tuple[Identity, ...] = ()
    selectors: tuple[Selector, ...] = ()
    exclude: tuple[str, ...] = ()
    settings: ReapplySettings = field(default_factory=ReapplySettings)
    prune: bool = False
    dry_run: bool = False
    force: bool = False
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8])


class Session:
    """The open pool and its executor; reopened when the transport breaks."""

    def __init__(self, job: ReapplyJob, password: str | None, pool_factory: PoolFactory) -> None:
        self.job, self.password, self.pool_factory = job, password, pool_factory
        self._stack = ExitStack()
        self.pool: Any = None
        self.executor: PsrpExecutor = self.open()

    def open(self) -> PsrpExecutor:
        self.pool = self._stack.enter_context(self.pool_factory(self.job.connection, self.password))
        self.executor = executor_for(self.pool, self.job.connection, self.password, self.pool_factory)
        return self.executor

    def reopen(self) -> PsrpExecutor:
        with suppress(Exception):  # the old pool is broken; closing it is best effort
            self._stack.close()
        self._stack = ExitStack()
        return self.open()

    def close(self) -> None:
        self._stack.close()


@dataclass
class Retry:
    settings: ReapplySettings
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delays(self) -> Iterator[float]:
        """Exponential backoff with full jitter, bounded by attempts and by total time."""
        spent = 0.0
        for attempt in range(1, self.settings.retry_attempts + 1):
            delay = min(60.0, self.settings.retry_base_seconds * 2.0 ** (attempt - 1)) * self.rng.uniform(0.5, 1.0)
            if spent + delay > self.settings.retry_max_seconds:
                return
            spent += delay
            yield delay


def _key(mailbox: Identity, trustee: Trustee) -> planner.PairKey:
    return planner.key(mailbox, trustee)


class Reapply:
    def __init__(
        self,
        job: ReapplyJob,
        session: Session,
        *,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
    ) -> None:
        self.job, self.session, self.sleep, self.progress = job, session, sleep, progress
        self.retry = Retry(job.settings, sleep)
        self.journal = Journal(job.settings.journal) if job.settings.journal else None
        self.notes: list[str] = []
        self.options = step_builders.StepOptions(domain_controller=job.connection.domain_controller)

    # ------------------------------------------------------------------ reading
    def _with_session(self, action: Callable[[PsrpExecutor], Any]) -> Any:
        """Run ``action``; if the transport breaks, reopen the session and try again (bounded)."""
        delays = self.retry.delays()
        while True:
            try:
                return action(self.session.executor)
            except TransportLost as exc:
                delay = next(delays, None)
                if delay is None:
                    raise
                self.notes.append(f"session lost ({exc}); reopening in {delay:.1f}s")
                self.sleep(delay)
                self.session.reopen()

    def observe(self, mailboxes: Sequence[Identity], trustees: Sequence[Trustee]) -> dict[planner.PairKey, Observation]:
        observed: dict[planner.PairKey, Observation] = self._with_session(
            lambda executor: executor.observe(mailboxes, trustees)
        )
        delays = self.retry.delays()
        while True:
            transient = [(m, t) for m in mailboxes for t in trustees if is_transient(observed[_key(m, t)].error)]
            if not transient:
                return observed
            delay = next(delays, None)
            if delay is None:
                return observed  # still unknown: reported and retried next run
            self.sleep(delay)
            for mailbox, trustee in transient:
                observed.update(self._observe_pair(mailbox, trustee))

    def _observe_pair(self, mailbox: Identity, trustee: Trustee) -> dict[planner.PairKey, Observation]:
        result: dict[planner.PairKey, Observation] = self._with_session(
            lambda executor: executor.observe([mailbox], [trustee])
        )
        return result

    def _select(self, selector: Selector) -> list[MailboxRef]:
        refs: list[MailboxRef] = self._with_session(lambda _executor: self._resolver().selector(selector))
        return refs

    def targets(self) -> tuple[list[Identity], set[str], bool]:
        """Target identities, the keys of resolved targets (for prune), and whether every target resolved."""
        by_key: dict[str, MailboxRef] = {}
        unresolved: list[Identity] = []
        complete = True
        explicit = list(self.job.explicit)
        resolved: dict[Identity, MailboxRef | ErrorInfo] = {}
        if explicit:
            resolved = self._with_session(lambda _executor: self._resolver().identities(explicit))
        for identity in self.job.explicit:
            found = resolved[identity]
            if isinstance(found, MailboxRef):
                by_key.setdefault(found.key, found)
            else:
                unresolved.append(identity)  # observed below: its error becomes the items' outcome
                complete = complete and found.definitive
        for selector in self.job.selectors:
            refs = self._select(selector)
            self.notes.append(f"selector {selector}: {len(refs)} mailboxes")
            for ref in refs:
                by_key.setdefault(ref.key, ref)
        excluded = {value.casefold() for value in self.job.exclude}
        kept = {key: ref for key, ref in by_key.items() if not (ref.names & excluded)}
        if len(kept) != len(by_key):
            self.notes.append(f"excluded {len(by_key) - len(kept)} mailboxes")
        identities = [ref.identity for ref in kept.values()]
        identities += [identity for identity in unresolved if identity.key not in excluded]
        return identities, set(kept), complete

    # ------------------------------------------------------------------ doubt left by a killed run
    def reconcile(self) -> None:
        if self.journal is None:
            return
        doubts = in_doubt(self.journal.path)
        if not doubts:
            return
        trustee_of = {t.identity: t for t in self.job.trustees}
        settled: list[tuple[InDoubt, str]] = []
        for doubt in doubts:
            trustee = trustee_of.get(Identity(doubt.trustee), Trustee(Identity(doubt.trustee), doubt.automapping))
            mailbox = Identity(doubt.mailbox)
            observation = self.observe([mailbox], [trustee])[_key(mailbox, trustee)]
            if observation.error is not None:
                continue  # still in doubt: try again next run
            present = observation.explicit_allow
            made = present if doubt.action == "grant" else not present
            settled.append((doubt, (Result.GRANTED if doubt.action == "grant" else Result.REMOVED).value
                            if made else "not-made"))
        self.journal.reconciled(settled, self.job.run_id)
        self.notes.append(f"reconciled {len(settled)} of {len(doubts)} journal entries left in doubt by killed runs")

    # ------------------------------------------------------------------ planning
    def _resolver(self) -> Resolver:
        return Resolver(self.session.pool, self.job.connection.domain_controller)

    def plan(self) -> Plan:
        identities, target_keys, complete = self.targets()
        trustees = self.job.trustees
        observed = self.observe(identities, trustees)
        grant_plan = planner.plan(Action.GRANT, identities, trustees, observed)
        items = list(grant_plan.items)
        if self.job.prune:
            if not complete:
                raise ProvisionerError("not pruning: some targets could not be resolved, so 'no longer targeted' is "
                                       "not known; nothing was changed")
            candidates: dict[Identity, list[tuple[str, str]]] = self._with_session(
                lambda _executor: self._resolver().prune_candidates(trustees)
            )
            for trustee in trustees:
                for key, address in candidates[trustee.identity]:
                    if key not in target_keys:
                        items.append(PlanItem(Identity(address), trustee, ItemState.TO_REMOVE, "no longer targeted"))
        return Plan(Action.REAPPLY, tuple(items), trustees, observed=True)

    # ------------------------------------------------------------------ applying
    def apply(self, plan: Plan) -> list[Outcome]:
        changes = list(step_builders.changes(plan, self.options))
        done: dict[planner.PairKey, Outcome] = {}
        size = self.job.connection.batch_size
        tick = self.progress("applying", len(changes)) if self.progress and changes else None
        for start in range(0, len(changes), size):
            chunk = changes[start : start + size]
            if self.journal:
                self.journal.intents(self.job.run_id, chunk)
            outcomes = self.verify(self._apply_chunk(chunk))
            if self.journal:
                action_of = {(s.mailbox.key, s.trustee.identity.key): step_action(s) for s in chunk}
                known = [o for o in outcomes if o.result is not Result.UNKNOWN]  # unknown stays in doubt
                self.journal.outcomes(self.job.run_id, known, action_of)
            for outcome in outcomes:
                done[_key(outcome.mailbox, outcome.trustee)] = outcome
            if tick:
                tick(len(chunk))
        return [done[_key(i.mailbox, i.trustee)] if i.changes else unchanged_outcome(i) for i in plan.items]

    def _apply_chunk(self, chunk: list[step_builders.Step]) -> list[Outcome]:
        pending = {_key(step.mailbox, step.trustee): step for step in chunk}
        results: dict[planner.PairKey, Outcome] = {}
        last: dict[planner.PairKey, Outcome] = {}
        lost: str | None = None
        delays = self.retry.delays()
        while pending:
            try:
                for outcome in self.session.executor.apply(list(pending.values())):
                    key = _key(outcome.mailbox, outcome.trustee)
                    if outcome.result is Result.FAILED and is_transient(outcome.error):
                        last[key] = outcome
                        continue
                    results[key] = outcome
                    pending.pop(key, None)
            except TransportLost as exc:
                lost = str(exc)
                with suppress(ProvisionerError):
                    self.session.reopen()
            if not pending:
                break
            delay = next(delays, None)
            if delay is None:
                break
            self.notes.append(f"{len(pending)} changes hit a transient error; retrying in {delay:.1f}s")
            self.sleep(delay)
        for key, step in pending.items():
            if key in last:
                results[key] = last[key]  # the transient error, reported as the item's failure
            else:
                detail = f"session lost before the outcome was known: {lost}"
                results[key] = Outcome(step.mailbox, step.trustee, Result.UNKNOWN, detail, ErrorInfo(detail))
        return [results[_key(step.mailbox, step.trustee)] for step in chunk]

    def verify(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Re-read every change Exchange accepted; one not visible yet is re-checked once after a delay."""
        if not self.job.settings.verify:
            return outcomes
        changed = [o for o in outcomes if o.result in (Result.GRANTED, Result.REMOVED)]
        for attempt in range(2):
            wrong = self._invisible(changed)
            if not wrong:
                return outcomes
            if attempt == 0:
                self.sleep(self.job.settings.verify_delay_seconds)
            changed = wrong
        invisible = {_key(o.mailbox, o.trustee) for o in changed}
        detail = f"accepted by Exchange but not visible after {self.job.settings.verify_delay_seconds}s (replication?)"
        return [replace(o, result=Result.UNKNOWN, detail=detail) if _key(o.mailbox, o.trustee) in invisible else o
                for o in outcomes]

    def _invisible(self, changed: list[Outcome]) -> list[Outcome]:
        """The changes a fresh read does not show (one batched read per trustee)."""
        by_trustee: dict[Identity, list[Outcome]] = {}
        for outcome in changed:
            by_trustee.setdefault(outcome.trustee.identity, []).append(outcome)
        wrong: list[Outcome] = []
        for group in by_trustee.values():
            observed = self.observe([o.mailbox for o in group], [group[0].trustee])
            for outcome in group:
                observation = observed[_key(outcome.mailbox, outcome.trustee)]
                if outcome.result is Result.GRANTED:
                    visible = observation.error is None and observation.state is AccessState.PRESENT
                else:
                    visible = observation.error is None and not observation.explicit_allow
                if not visible:
                    wrong.append(outcome)
        return wrong


def run_reapply(
    job: ReapplyJob,
    *,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> RunResult:
    started = datetime.now(UTC)
    session = Session(job, password, pool_factory)
    try:
        runner = Reapply(job, session, sleep=sleep, progress=progress)
        runner.reconcile()
        plan = runner.plan()
        changes = plan.changes
        script = None
        if job.dry_run:
            steps = list(step_builders.changes(plan, runner.options))
            context = ScriptContext(job.connection.server or "", job.connection.domain_controller)
            script = render_script(plan, steps, context)
        too_many = len(changes) > job.settings.max_changes and not job.force
        refuse = job.dry_run or too_many  # dry-run: stop before executing
        outcomes = [unchanged_outcome(item) for item in plan.items] if refuse else runner.apply(plan)
    finally:
        session.close()
    summary = Job(Action.REAPPLY, tuple(dict.fromkeys(i.mailbox for i in plan.items)), job.trustees, job.connection,
                  dry_run=job.dry_run)
    result = RunResult(summary, plan, outcomes, started, datetime.now(UTC), script, runner.notes)
    result.run_id = job.run_id
    if too_many:
        result.refused = TooManyChanges(
            f"the plan has {len(changes)} changes, more than max_changes={job.settings.max_changes}: nothing was "
            "applied. Check the selectors; rerun with --force (or raise [reapply] max_changes) if this is intended."
        )
    return result


def write_outputs(result: RunResult, settings: ReapplySettings, report_path: Path | None,
                  metrics_path: Path | None) -> None:
    from provisioner import metrics, report

    target = report_path or settings.report
    if target is not None:
        report.write_report(result, target)
    metrics_file = metrics_path or settings.metrics_file
    if metrics_file is not None:
        duration = (result.finished - result.started).total_seconds()
        code = int(result.final_exit_code)
        text = metrics.render("reapply", result.finished.timestamp(), duration, code, result.counts)
        metrics.write(metrics_file, text)

