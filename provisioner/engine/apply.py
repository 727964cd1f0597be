"""The one apply engine: grant, revoke, reapply and journal undo all read and write through :class:`Engine`.

It owns, in one layer each: batching (items per pipeline, :mod:`provisioner.engine.shapes` picks the shape the server
runs exactly), retries with backoff for throttling and transient faults (bounded in attempts and time; a broken
session is reopened), confirmation and verification reads, the journal (intents before a batch, outcomes after)
and progress. Below it is the :class:`~provisioner.transport.runner.Runner` seam: the session's server facts and one
``run(pipeline)``; tests use a runner over the lab engine in-process, production a pypsrp one.

Every (mailbox, trustee) ends with exactly one outcome: a write is reported done only when the server's output
proves it or a read shows it; a change whose effect could not be seen is ``unknown`` (and stays in doubt in the
journal), never ``granted``/``removed``.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from typing import Any

from provisioner.domain.model import (
    AccessState,
    ErrorInfo,
    Identity,
    Observation,
    Outcome,
    PairKey,
    Plan,
    PlanItem,
    Result,
    Trustee,
    pair_key,
)
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.domain.wording import counted
from provisioner.engine import outcomes, shapes
from provisioner.engine.journal import Journal, JournalUnwritable, step_action
from provisioner.engine.resolve import MailboxRef, Resolver
from provisioner.errors import ConnectionFailure, ProvisionerError
from provisioner.inputs.config import RunSettings
from provisioner.powershell import steps as step_builders
from provisioner.powershell.steps import Step, StepAction, StepOptions
from provisioner.transport.backoff import Backoff, Retry
from provisioner.transport.guard import Deadline
from provisioner.transport.runner import Runner, TransportLost
from provisioner.transport.session import SessionLike

DEFAULT_BATCH_SIZE = 500
DEFAULT_READ_BATCH_SIZE = 2000  #: inputs per read invocation: Exchange pays per invocation; a read changes nothing
Progress = Callable[[int], None]
ProgressFactory = Callable[[str, int], Progress]



class Engine:
    def __init__(
        self,
        session: SessionLike,
        options: StepOptions,
        settings: RunSettings | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        read_batch_size: int = DEFAULT_READ_BATCH_SIZE,
        journal: Journal | None = None,
        run_id: str = "",
        sleep: Callable[[float], None] = time.sleep,
        progress: ProgressFactory | None = None,
        parallel: int = 1,
    ) -> None:
        if batch_size < 1 or read_batch_size < 1:
            raise ValueError("batch_size and read_batch_size must be at least 1")
        self.session, self.options, self.settings = session, options, settings or RunSettings()
        self.batch_size, self.read_batch_size, self.journal, self.run_id = batch_size, read_batch_size, journal, run_id
        self.sleep, self.progress = sleep, progress
        self.retry = Retry(Backoff.of(self.settings), sleep)
        self.notes: list[str] = []
        self.parallel = parallel  # sessions for reads; Exchange's throttling policy limits them per user
        self.deadline: Deadline = getattr(session, "deadline", None) or Deadline()
        #: Why the session is lost for good (None: it is not). Once set, nothing more is sent: every outcome not
        #: known is ``unknown``; the run reports it as SessionLostForGood (exit 4) after writing its report.
        self.lost: str | None = None
        self._keys: dict[Identity, str | ErrorInfo] = {}
        self._refs: dict[Identity, MailboxRef | ErrorInfo] = {}  # each input's one mailbox, resolved once per run

    @property
    def runner(self) -> Runner:
        return self.session.runner

    # ------------------------------------------------------------------ sessions and retries
    def with_session(self, action: Callable[[Runner], Any], session: SessionLike | None = None) -> Any:
        """Run ``action``; if the transport breaks, reopen the session and try again (bounded in attempts, time and
        by the run's deadline). When that fails too, the session is lost for good (:attr:`lost`) and TransportLost
        is raised; from then on every call raises it at once."""
        session = session or self.session
        delays = self.retry.delays()
        while True:
            if self.lost is not None:
                raise TransportLost(self.lost)
            try:
                return action(session.runner)
            except TransportLost as exc:
                delay = next(delays, None)
                if delay is None or self.deadline.passed:
                    self.lose(self.deadline.describe() if self.deadline.passed else str(exc))
                    raise
                self.notes.append(f"session lost ({exc}); reopening in {delay:.1f}s")
                self.sleep(min(delay, max(0.0, self.deadline.remaining())))
                try:
                    session.reopen()
                except ConnectionFailure as failure:  # reopening retries by itself: this is for good
                    self.lose(f"{exc}; {failure}")
                    raise TransportLost(self.lost or str(failure)) from None

    def lose(self, reason: str) -> None:
        """The session is lost for good: record why once (the first reason is the one reported)."""
        if self.lost is None:
            self.lost = reason
            self.notes.append(f"session lost for good: {reason}")

    # ------------------------------------------------------------------ reading
    def mailboxes(self, identities: Sequence[Identity]) -> dict[Identity, MailboxRef | ErrorInfo]:
        """Each identity's one mailbox (``ids | Get-Mailbox`` per batch), or the error that says why it has none
        (not found, several mailboxes, a wildcard); resolved once per run; the session is reopened if it breaks.
        Nothing is sent for no identities."""
        wanted = [identity for identity in dict.fromkeys(identities) if identity not in self._refs]
        if wanted:
            found: dict[Identity, MailboxRef | ErrorInfo] = self.with_session(
                lambda runner: Resolver(runner, self.options, batch=self.read_batch_size).identities(wanted))
            self.remember(found)
        return {identity: self._refs[identity] for identity in identities}

    def remember(self, found: dict[Identity, MailboxRef | ErrorInfo]) -> None:
        """Resolved mailboxes (e.g. a selector's), so that reads and writes of them are pinned without a lookup."""
        for identity, ref in found.items():
            self._refs[identity] = ref
            if isinstance(ref, MailboxRef):
                guid = ref.guid_identity  # one key object for both tables (a run holds one per target)
                self._refs.setdefault(guid, ref)
                if ref.wire_key:
                    self._keys.setdefault(guid, ref.wire_key)

    def alias(self, names: dict[Identity, Identity]) -> None:
        """Pin each name to the mailbox its GUID names (the journal's): the name is shown, the GUID is sent."""
        found = self.mailboxes(list(dict.fromkeys(names.values())))
        self.remember({name: found[guid] for name, guid in names.items()})

    def pin(self, mailboxes: Sequence[Identity]) -> tuple[dict[Identity, Identity], dict[Identity, ErrorInfo]]:
        """(input -> the GUID identity of its one mailbox, input -> why it has none). Every read and write goes to
        the GUID: one input, one mailbox, even when Get-* would return several for the name as written."""
        wire: dict[Identity, Identity] = {}
        errors: dict[Identity, ErrorInfo] = {}
        for identity, ref in self.mailboxes(mailboxes).items():
            if isinstance(ref, MailboxRef):
                wire[identity] = ref.guid_identity
            else:
                errors[identity] = ref
        return wire, errors

    def observe(
        self, mailboxes: Sequence[Identity], trustees: Sequence[Trustee], label: str | None = "reading"
    ) -> dict[PairKey, Observation]:
        """Every (mailbox, trustee)'s observation, read by the mailbox's GUID (an input that names no single mailbox
        is unreadable with that reason); transient failures are re-read after a backoff (bounded)."""
        wire, errors = self.pin(mailboxes)
        read = self._observe(list(dict.fromkeys(wire.values())), trustees, label)
        observed: dict[PairKey, Observation] = {}
        for mailbox in mailboxes:
            for trustee in trustees:
                error = errors.get(mailbox)
                observed[pair_key(mailbox, trustee)] = Observation.unreadable(error) if error is not None \
                    else read[pair_key(wire[mailbox], trustee)]
        return observed

    def _observe(
        self, mailboxes: Sequence[Identity], trustees: Sequence[Trustee], label: str | None
    ) -> dict[PairKey, Observation]:
        tick = self.progress(label, len(mailboxes) * len(trustees)) if self.progress and label else None
        observed: dict[PairKey, Observation] = {}
        tasks = [(chunk, trustee) for trustee in trustees for chunk in shapes.chunks(mailboxes, self.read_batch_size)]
        for found, size in self._read_all(tasks):
            observed.update(found)
            if tick:
                tick(size)
        delays = self.retry.delays()
        by_identity = {trustee.identity: trustee for trustee in trustees}
        while True:
            transient: dict[Identity, list[Identity]] = {}
            for (mailbox, trustee_id), seen in observed.items():
                if seen.error is not None and seen.error.transient:
                    transient.setdefault(trustee_id, []).append(mailbox)
            if not transient:
                return observed
            delay = next(delays, None)
            if delay is None:
                return observed  # still unknown: reported, and retried next run
            count = sum(len(group) for group in transient.values())
            self.notes.append(f"{count} reads hit a transient error; retrying in {delay:.1f}s")
            self.sleep(delay)
            for trustee_id, group in transient.items():
                for chunk in shapes.chunks(group, self.read_batch_size):
                    observed.update(self._read(chunk, by_identity[trustee_id]))

    def _read(
        self, chunk: Sequence[Identity], trustee: Trustee, session: SessionLike | None = None
    ) -> dict[PairKey, Observation]:
        found: dict[PairKey, Observation] = self.with_session(
            lambda runner: self._read_batch(runner, chunk, trustee), session
        )
        return found

    def _read_all(
        self, tasks: Sequence[tuple[list[Identity], Trustee]]
    ) -> Iterator[tuple[dict[PairKey, Observation], int]]:
        """Read batches in order; with ``parallel`` > 1, on that many sessions at once (opened for this call only;
        a session that cannot be opened, e.g. at the server's concurrent-shell limit, leaves the work to the others).
        Reads change nothing, so running them side by side is safe; writes always run on the one session."""
        sessions: list[SessionLike] = [self.session]
        with ExitStack() as stack:
            while len(sessions) < min(self.parallel, len(tasks)):
                try:
                    extra = self.session.fork()
                except ProvisionerError as exc:
                    self.notes.append(f"only {len(sessions)} parallel session(s) could be opened: {exc}")
                    break
                if extra is None:
                    break
                stack.callback(extra.close)
                sessions.append(extra)
            if len(sessions) == 1:
                for chunk, trustee in tasks:
                    yield self._read(chunk, trustee), len(chunk)
                return
            idle: queue.Queue[SessionLike] = queue.Queue()
            for session in sessions:
                idle.put(session)

            def work(task: tuple[list[Identity], Trustee]) -> dict[PairKey, Observation]:
                session = idle.get()
                try:
                    return self._read(task[0], task[1], session)
                finally:
                    idle.put(session)

            with ThreadPoolExecutor(max_workers=len(sessions), thread_name_prefix="provisioner-read") as pool:
                for task, found in zip(tasks, pool.map(work, tasks), strict=True):
                    yield found, len(task[0])

    def _read_batch(
        self, runner: Runner, chunk: Sequence[Identity], trustee: Trustee
    ) -> dict[PairKey, Observation]:
        results: dict[Identity, Observation] = {}
        batched = [mailbox for mailbox in chunk if shapes.pipeable(mailbox)] if runner.piping else []
        if len(batched) > 1:
            raw = shapes.piped_read(runner, batched, trustee, self.options)
            attributed = shapes.attribute_read(batched, trustee, raw, lambda m: self._lookup(runner, m))
            results = {mailbox: seen for mailbox, seen in zip(batched, attributed, strict=True) if seen is not None}
        alone = [mailbox for mailbox in chunk if mailbox not in results]
        results.update(zip(alone, shapes.read_each(runner, alone, trustee, self.options), strict=True))
        return {pair_key(mailbox, trustee): results[mailbox] for mailbox in chunk}

    def _lookup(self, runner: Runner, mailboxes: Sequence[Identity]) -> dict[Identity, str | ErrorInfo] | None:
        """Mailbox Identity keys of ``mailboxes``, looked up once per run (shared by every trustee)."""
        wanted = [mailbox for mailbox in mailboxes if mailbox not in self._keys]
        if wanted:
            found = shapes.lookup_keys(runner, wanted, self.options)
            if found is None:
                return None
            self._keys.update(found)
        return {mailbox: self._keys[mailbox] for mailbox in mailboxes}

    # ------------------------------------------------------------------ writing
    def batches(self, changes: Iterable[Step]) -> Iterator[list[Step]]:
        """Steps grouped per (trustee, cmdlet, parameters), at most ``batch_size`` each, no mailbox twice;
        identities with ``*`` alone."""
        open_batches: dict[tuple[Any, ...], tuple[list[Step], set[str]]] = {}
        for step in changes:
            if not shapes.pipeable(step.mailbox):
                yield [step]
                continue
            group = shapes.signature(step)
            batch, seen = open_batches.setdefault(group, ([], set()))
            if step.mailbox.key in seen:
                yield batch
                batch, seen = open_batches[group] = ([], set())
            batch.append(step)
            seen.add(step.mailbox.key)
            if len(batch) >= self.batch_size:
                yield batch
                del open_batches[group]
        for batch, _ in open_batches.values():
            yield batch

    def apply(self, plan: Plan, label: str = "applying") -> list[Outcome]:
        """Carry out every change of ``plan``, each sent to its mailbox's GUID; one outcome per item of the plan, in
        plan order, named as the plan names it."""
        try:
            wire, errors = self.pin([item.mailbox for item in plan.items if item.changes])
        except TransportLost as exc:  # lost for good before anything was sent: every change unknown
            return [outcomes.not_sent(item, str(exc)) if item.changes else unchanged_outcome(item)
                    for item in plan.items]
        names: dict[Identity, Identity] = {}  # GUID identity -> the name as written (first one, if several)
        sent: dict[PairKey, PlanItem] = {}  # two names of one mailbox: one change, one outcome for both
        for item in plan.items:
            if item.changes and item.mailbox in wire:
                guid = wire[item.mailbox]
                names.setdefault(guid, item.mailbox)
                sent.setdefault(pair_key(guid, item.trustee), replace(item, mailbox=guid))
        changes = list(step_builders.changes(replace(plan, items=tuple(sent.values())), self.options))
        tick = self.progress(label, len(changes)) if self.progress and changes else None
        done: dict[PairKey, Outcome] = {}
        journal = self.journal
        for batch in self.batches(changes):
            if self.lost is None and self.deadline.batches_closed:
                self.lose(self.deadline.describe())
            shown = [replace(step, mailbox=names[step.mailbox]) for step in batch]
            guids = {names[step.mailbox]: step.mailbox.value for step in batch}
            stop = self.lost or (journal and (journal.broken or self._journaled(
                partial(journal.intents, self.run_id, shown, guids))))
            if stop:  # nothing more is sent: what this batch would change is not known
                done.update((step.pair, outcomes.not_sent(step, stop)) for step in batch)  # keyed by its GUID
                if tick:
                    tick(len(batch))
                continue
            results = [replace(outcome, mailbox=names[outcome.mailbox]) for outcome in self._apply_batch(batch)]
            if journal:
                action_of = {(s.mailbox.key, s.trustee.identity.key): step_action(s) for s in shown}
                known = [o for o in results if o.result is not Result.UNKNOWN]  # unknown stays in doubt
                self._journaled(partial(journal.outcomes, self.run_id, known, action_of, guids))
            for outcome in results:
                done[pair_key(wire[outcome.mailbox], outcome.trustee)] = outcome
            if tick:
                tick(len(batch))
        return [outcomes.planned(item, wire, errors, done) for item in plan.items]

    def _journaled(self, write: Callable[[], None]) -> str | None:
        """Journal lines written, or why the journal cannot be written: then nothing more is sent (a note says so;
        the intents of changes made whose outcome it lacks are settled by the next run's reconciliation)."""
        try:
            write()
        except JournalUnwritable as exc:  # once: a broken journal is not written again (``Journal.broken``)
            self.notes.append(f"{exc}: nothing more was sent")
            return str(exc)
        return None

    def _write(self, runner: Runner, batch: Sequence[Step]) -> list[shapes.Written]:
        if len(batch) == 1 or not runner.piping:
            return shapes.write_each(runner, batch)
        if all(shapes.pipe_safe(step) for step in batch):
            return shapes.piped_write(runner, batch, self.options)
        if runner.facts.runs_statements:
            return shapes.statement_write(runner, batch)
        return [shapes.write_one(runner, step) for step in batch]  # protocol 2.1: one statement per pipeline

    def _apply_batch(self, batch: list[Step]) -> list[Outcome]:
        pending = {step.pair: step for step in batch}
        written: dict[PairKey, shapes.Written] = {}
        lost: str | None = None
        delays = self.retry.delays()
        while pending:
            try:
                for item in self._write(self.runner, list(pending.values())):
                    step_key = item.step.pair if isinstance(item, shapes.Pending) \
                        else item.pair
                    written[step_key] = item
                    transient = isinstance(item, Outcome) and item.error is not None and item.error.transient
                    if not transient:
                        pending.pop(step_key, None)
            except TransportLost as exc:
                lost = str(exc)
                if self.deadline.passed:
                    self.lose(self.deadline.describe())
                    break
                try:
                    self.session.reopen()
                    self._settle(pending, written)  # what the lost request applied is never sent twice
                except ProvisionerError as failure:  # TransportLost included
                    self.lose(f"{lost}; {failure}")
                    break
            if not pending:
                break
            delay = next(delays, None)
            if delay is None:
                break
            self.notes.append(f"{counted(len(pending), 'change')} hit a transient error; retrying in {delay:.1f}s")
            self.sleep(delay)
        for step_key, step in pending.items():
            last = written.get(step_key)
            if isinstance(last, Outcome) and last.error is not None and last.error.transient:
                # still throttled, unavailable or unanswered after every retry: it may have been applied anyway
                # (a reply lost on the way back), so a read decides; not visible: failed with this error
                written[step_key] = shapes.Pending(step, last.error, last.warnings)
            elif step_key not in written:  # unanswered: a read decides (unknown when no read can be made)
                detail = f"session lost before the outcome was known: {lost}"
                written[step_key] = shapes.Pending(step, ErrorInfo(detail, category="ConnectionError"))
        steps = {step.pair: step for step in batch}
        try:
            confirmed = self.confirm(list(written.values()), steps)
        except TransportLost as exc:  # lost for good while confirming: what a read did not settle is unknown
            confirmed = outcomes.unconfirmed(written, str(exc))
        return [confirmed[step.pair] for step in batch]

    def _settle(self, pending: dict[PairKey, Step], written: dict[PairKey, shapes.Written]) -> None:
        """After a lost session: the pending writes a read shows done are done (taken out of ``pending``)."""
        if not pending:
            return
        seen = self._visible([shapes.Pending(step) for step in pending.values()])
        for pair, (visible, _) in seen.items():
            if visible:
                written[pair] = shapes.done(pending.pop(pair))

    # ------------------------------------------------------------------ confirming and verifying
    def confirm(
        self, written: Sequence[shapes.Written], steps: dict[PairKey, Step]
    ) -> dict[PairKey, Outcome]:
        """Pending writes (their effect not shown by the server's output: every Remove, unplaced errors) are always
        confirmed by a read before they count as done. With ``verify``, one not visible yet is re-checked once after
        ``verify_delay_seconds`` (replication), then reported ``unknown``; with ``verify_proven``, grants whose ACE
        object the server returned are re-read too."""
        final: dict[PairKey, Outcome] = {}
        check: dict[PairKey, shapes.Pending] = {}
        for item in written:
            if isinstance(item, shapes.Pending):
                check[item.step.pair] = item
                continue
            pair = item.pair
            final[pair] = item
            if self.settings.verify_proven and item.result in (Result.GRANTED, Result.REMOVED):
                check[pair] = shapes.Pending(steps[pair], None, item.warnings)
        delay = self.settings.verify_delay_seconds
        attempts = 2 if self.settings.verify else 1
        for attempt in range(attempts):
            if not check:
                break
            if attempt:
                self.sleep(delay)
            last = attempt == attempts - 1
            invisible: dict[PairKey, shapes.Pending] = {}
            for pair, (visible, unreadable) in self._visible(list(check.values())).items():
                pending = check[pair]
                if visible:
                    final[pair] = shapes.done(pending.step, pending.warnings)
                elif pending.error is not None:
                    final[pair] = shapes.failed(pending.step, pending.error, pending.warnings)
                elif unreadable is not None and last:
                    detail = f"sent, but the state could not be read back: {unreadable}"
                    final[pair] = Outcome(pending.step.mailbox, pending.step.trustee, Result.UNKNOWN, detail,
                                          unreadable, pending.warnings)
                else:
                    invisible[pair] = pending
            check = invisible
        waited = f" after {delay}s" if self.settings.verify else ""
        for pair, pending in check.items():
            detail = f"accepted by Exchange but not visible{waited} (replication?)"
            final[pair] = Outcome(pending.step.mailbox, pending.step.trustee, Result.UNKNOWN, detail, None,
                                  pending.warnings)
        return final

    def _visible(
        self, pendings: Sequence[shapes.Pending]
    ) -> dict[PairKey, tuple[bool, ErrorInfo | None]]:
        """Per pending write: does a fresh read show its effect, and the read's error if it could not read."""
        by_trustee: dict[Identity, list[shapes.Pending]] = {}
        for pending in pendings:
            by_trustee.setdefault(pending.step.trustee.identity, []).append(pending)
        result: dict[PairKey, tuple[bool, ErrorInfo | None]] = {}
        for group in by_trustee.values():
            trustee = group[0].step.trustee
            observed = self.observe([p.step.mailbox for p in group], [trustee], label=None)
            for pending in group:
                pair = pair_key(pending.step.mailbox, trustee)
                seen = observed[pair]
                if seen.error is not None:
                    result[pair] = (False, seen.error)
                elif pending.step.action is StepAction.GRANT:
                    result[pair] = (seen.state is AccessState.PRESENT, None)
                else:
                    result[pair] = (not seen.explicit_allow, None)
        return result

