"""``provisioner reapply``: the scheduled job. Resolve targets, observe, plan, apply in journaled batches, verify.

Safe to run every hour for years:

- targets are resolved live (selectors, explicit identities, exclusions); a selector that cannot be read stops
  the run before anything changes;
- only missing grants are applied; an unreadable pair is ``unknown`` and retried next run, never "absent";
- ``prune`` removes the managed trustees' explicit Allow Full Access from mailboxes no longer targeted (never
  other trustees, inherited or Deny entries), and is refused when a target could not be resolved;
- a plan with more changes than ``max_changes`` is refused (exit 6, nothing applied) unless forced;
- every batch is journaled before and after it is sent (see :mod:`provisioner.engine.journal`), and changes left in
  doubt by a killed run are reconciled from the live state first;
- transient errors (transport, throttling) are retried per batch with exponential backoff and jitter, bounded in
  attempts and time, without re-sending items whose outcome is known; a broken session is reopened;
- a change counts as done only when the server's output proves it (a grant's returned ACE) or a read shows it
  (every removal); one not visible yet is re-checked after a delay (replication), then reported ``unknown`` (and
  left in doubt in the journal) rather than done. Reads, writes, retries and checks are the engine's
  (:mod:`provisioner.engine.apply`); this module adds targets, reconciliation, pruning and the change valve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from provisioner.domain import planner
from provisioner.domain.model import (
    Action,
    Identity,
    ItemState,
    Observation,
    Outcome,
    PairKey,
    Plan,
    PlanItem,
    Trustee,
)
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.domain.wording import counted
from provisioner.engine.apply import Engine, ProgressFactory
from provisioner.engine.journal import Journal, owned
from provisioner.engine.resolve import MailboxRef, Resolver
from provisioner.engine.trustees import verify_trustees
from provisioner.errors import ExitCode, ProvisionerError
from provisioner.inputs.config import Connection, RunSettings, Selector
from provisioner.runs.context import NO_HOOKS, Hooks, Lost, RunSpec, lost_run, new_run_id, open_run
from provisioner.runs.needs import cmdlets, needs
from provisioner.runs.result import Job, RunResult
from provisioner.runs.script import plan_script
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.session import PoolFactory


class TooManyChanges(ProvisionerError):
    exit_code = ExitCode.TOO_MANY_CHANGES


class EmptySelector(ProvisionerError):
    """A pruning run whose selector matched nothing: stopped before anything changed (exit 2: fix the config)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class ReapplyJob:
    connection: Connection
    trustees: tuple[Trustee, ...]
    explicit: tuple[Identity, ...] = ()
    selectors: tuple[Selector, ...] = ()
    exclude: tuple[str, ...] = ()
    settings: RunSettings = field(default_factory=RunSettings)
    prune: bool = False
    prune_unowned: bool = False  # prune every explicit grant of the managed trustees, not only provisioner's
    dry_run: bool = False
    force: bool = False
    automapping_unsupported_ok: bool = False
    run_id: str = field(default_factory=new_run_id)
    sources: Mapping[Identity, str] = field(default_factory=dict)  # where each explicit target was given


class Reapply:
    """Targets, doubt left by killed runs, and the plan of one re-apply; reads and writes go through the engine."""

    def __init__(self, job: ReapplyJob, engine: Engine) -> None:
        self.job, self.engine = job, engine
        self.journal = engine.journal
        self.notes = engine.notes
        self.options = engine.options

    # ------------------------------------------------------------------ reading
    def observe(self, mailboxes: Sequence[Identity], trustees: Sequence[Trustee]) -> dict[PairKey, Observation]:
        return self.engine.observe(mailboxes, trustees)

    def _with_session(self, action: Callable[[Any], Any]) -> Any:
        return self.engine.with_session(action)

    def _select(self, selector: Selector) -> list[MailboxRef]:
        refs: list[MailboxRef] = self._with_session(lambda runner: Resolver(runner, self.options).selector(selector))
        return refs

    def targets(self) -> tuple[list[Identity], set[str], bool]:
        """Target identities, the keys of resolved targets (for prune), and whether every target resolved."""
        by_key: dict[str, MailboxRef] = {}
        unresolved: list[Identity] = []
        complete = True
        explicit = list(self.job.explicit)
        resolved = self.engine.mailboxes(explicit)
        for identity in self.job.explicit:
            found = resolved[identity]
            if isinstance(found, MailboxRef):
                by_key.setdefault(found.key, found)
            else:
                unresolved.append(identity)  # observed below: its error becomes the items' outcome
                complete = complete and found.definitive
        for selector in self.job.selectors:
            refs = self._select(selector)
            if not refs and self.job.prune and not selector.allow_empty:
                raise EmptySelector(
                    f"selector {selector} matched no mailboxes: not pruning, because a typo in a selector would "
                    "remove access from every mailbox it should match; nothing was changed. Fix the selector, or "
                    "set allow_empty = true in its [[targets.selector]] if it may be empty")
            self.engine.remember({ref.identity: ref for ref in refs})  # pinned: no second lookup to read or write
            self.notes.append(f"selector {selector}: {counted(len(refs), 'mailbox')}")
            for ref in refs:
                by_key.setdefault(ref.key, ref)
        excluded = {value.casefold() for value in self.job.exclude}
        kept = {key: ref for key, ref in by_key.items() if excluded.isdisjoint(ref.names)}
        if len(kept) != len(by_key):
            self.notes.append(f"excluded {counted(len(by_key) - len(kept), 'mailbox')}")
        identities = [ref.identity for ref in kept.values()]
        identities += [identity for identity in unresolved if identity.key not in excluded]
        return identities, set(kept), complete

    # ------------------------------------------------------------------ planning
    def plan(self) -> Plan:
        identities, target_keys, complete = self.targets()
        trustees = self.job.trustees
        verify_trustees(self.engine, trustees, identities)  # a mistyped trustee: one message, nothing read or written
        observed = self.observe(identities, trustees)
        grant_plan = planner.plan(Action.GRANT, identities, trustees, observed)
        items = list(grant_plan.items)
        if self.job.prune:
            if not complete:
                raise ProvisionerError("not pruning: some targets could not be resolved, so 'no longer targeted' is "
                                       "not known; nothing was changed")
            items += self.prune(trustees, target_keys)
        return Plan(Action.REAPPLY, tuple(items), trustees, observed=True)

    def prune(self, trustees: Sequence[Trustee], target_keys: set[str]) -> list[PlanItem]:
        """Removals of the managed trustees' explicit Full Access on mailboxes no longer targeted: by default only
        what provisioner granted (the journal's grants, by trustee and mailbox GUID); with ``prune_unowned`` every
        explicit Allow entry. Each is named by its primary SMTP address and sent to its GUID."""
        path = self.job.settings.journal
        if path is None and not self.job.prune_unowned:
            raise ProvisionerError("not pruning: without a journal provisioner cannot tell the grants it made from "
                                   "anyone else's; nothing was changed (--prune-unowned removes every explicit grant "
                                   "of the managed trustees on mailboxes no longer targeted)")
        mine = owned(path) if path is not None else set()
        candidates: dict[Identity, list[tuple[str, str]]] = self._with_session(
            lambda runner: Resolver(runner, self.options).prune_candidates(trustees)
        )
        chosen: list[tuple[Trustee, str]] = []
        unowned = 0
        for trustee in trustees:
            for key, _address in candidates[trustee.identity]:
                if key in target_keys:
                    continue
                if self.job.prune_unowned or (trustee.identity.key, key) in mine:
                    chosen.append((trustee, key))
                else:
                    unowned += 1
        if unowned:
            self.notes.append(f"prune: {unowned} explicit Full Access {'entry' if unowned == 1 else 'entries'} of "
                              "managed trustees on mailboxes no longer targeted were not granted by provisioner (or "
                              "before it recorded ownership) and were left alone; --prune-unowned removes them too")
        refs = self.engine.mailboxes(list(dict.fromkeys(Identity(key) for _, key in chosen)))
        items: list[PlanItem] = []
        for trustee, key in chosen:
            ref = refs[Identity(key)]
            name = Identity(ref.readable) if isinstance(ref, MailboxRef) else Identity(key)
            if isinstance(ref, MailboxRef):
                self.engine.remember({name: ref})
            owner = "granted by provisioner" if (trustee.identity.key, key) in mine \
                else "not granted by provisioner: --prune-unowned"
            items.append(PlanItem(name, trustee, ItemState.TO_REMOVE, f"no longer targeted; {owner} (GUID {key})"))
        return items

    def apply(self, plan: Plan) -> list[Outcome]:
        return self.engine.apply(plan)


def run_reapply(
    job: ReapplyJob,
    *,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    sleep: Callable[[float], None] = time.sleep,
    progress: ProgressFactory | None = None,
    hooks: Hooks = NO_HOOKS,
) -> RunResult:
    started = datetime.now(UTC)
    spec = RunSpec(job.connection, cmdlets(Action.REAPPLY),
                   needs(Action.REAPPLY, job.connection, job.automapping_unsupported_ok, job.trustees), job.settings,
                   job.run_id, Journal(job.settings.journal) if job.settings.journal and not job.dry_run else None,
                   report_loss=True, dry_run=job.dry_run)
    try:
        with open_run(spec, password=password, pool_factory=pool_factory, progress=progress, hooks=hooks,
                      sleep=sleep) as context:
            runner = Reapply(job, context.engine)
            with context.reading():
                plan = runner.plan()
            changes = plan.changes
            script = None
            if job.dry_run:
                script = plan_script(plan, runner.options, job.connection)
            too_many = len(changes) > job.settings.max_changes and not job.force
            refuse = job.dry_run or too_many  # dry-run: stop before executing
            if not too_many:
                context.planned(plan)
            outcomes = [unchanged_outcome(item) for item in plan.items] if refuse else runner.apply(plan)
            context.finished(outcomes)
    except Lost as lost:  # nothing was sent, or lost before the plan was known: the job still leaves a report (exit 4)
        return _lost(job, started, lost.reason, lost.notes)
    summary = Job(Action.REAPPLY, tuple(dict.fromkeys(i.mailbox for i in plan.items)), job.trustees, job.connection,
                  sources=job.sources,
                  dry_run=job.dry_run)
    refused = TooManyChanges(
        f"the plan has {len(changes)} changes, more than max_changes={job.settings.max_changes}: nothing was "
        "applied. Check the selectors; rerun with --force (or raise [reapply] max_changes) if this is intended."
    ) if too_many else None
    # a scheduled run is named in its report and summary line even without a journal
    return context.result(summary, plan, outcomes, started, script=script, run_id=job.run_id,
                          refused=refused)


def _lost(job: ReapplyJob, started: datetime, reason: str, notes: Sequence[str] = ()) -> RunResult:
    """A re-apply whose session was lost for good before its plan was known: the explicit targets' pairs are
    unknown (selectors could not be read), nothing was changed, the report says why (exit 4)."""
    return lost_run(Job(Action.REAPPLY, job.explicit, job.trustees, job.connection, sources=job.sources), started,
                    datetime.now(UTC), reason, notes, job.run_id)
