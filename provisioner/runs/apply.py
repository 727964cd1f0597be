"""``provisioner apply FILE``: carry out exactly the changes of a saved plan, or refuse when the world moved.

What apply reads again is only what the plan depends on: each planned change's mailbox (``ids | Get-Mailbox``: still
there, still the same GUID) and its (mailbox, trustee) permission (the change must still be the one planned: a
planned grant not yet there and not denied, a planned removal still an explicit Allow), plus the server facts of
the new session. Any difference is drift: apply then refuses with exit 7 and a short diff, nothing sent, unless
``--allow-drift`` applies the changes that are still valid (and reports the others as they are now). A different
tool version or a server that lost -AutoMapping is always refused: the commands would not be the reviewed ones.
The changes themselves go through the one engine (batches, retries, confirmation reads, journal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from provisioner import __version__
from provisioner.domain import planner
from provisioner.domain.model import (
    ErrorInfo,
    Identity,
    ItemState,
    Outcome,
    PairKey,
    Plan,
    PlanItem,
    Trustee,
    pair_key,
)
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.domain.text import escaped
from provisioner.engine.apply import Engine, ProgressFactory
from provisioner.engine.journal import Journal, applied_by_plan
from provisioner.engine.trustees import verify_trustees
from provisioner.errors import ExitCode, ProvisionerError
from provisioner.inputs.config import Connection, RunSettings
from provisioner.powershell.steps import StepOptions
from provisioner.runs.context import NO_HOOKS, Hooks, Lost, Run, RunSpec, lost_run, new_run_id, open_run
from provisioner.runs.needs import FactsCheck, cmdlets, required, step_options
from provisioner.runs.planfile import TENANT, SavedPlan, server_facts
from provisioner.runs.result import Job, RunResult
from provisioner.transport.facts import refuse_missing
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.session import PoolFactory, SessionLike

MAX_DIFF_LINES = 20


class PlanDrift(ProvisionerError):
    exit_code = ExitCode.PLAN_DRIFT

    def __init__(self, lines: Sequence[str], valid: int, total: int, *, hard: bool) -> None:
        self.lines = list(lines)
        shown = self.lines[:MAX_DIFF_LINES]
        if len(self.lines) > MAX_DIFF_LINES:
            shown.append(f"… and {len(self.lines) - MAX_DIFF_LINES} more")
        advice = ("make a new plan and have it reviewed" if hard else
                  f"make a new plan, or apply the {valid} still-valid of {total} changes with --allow-drift")
        super().__init__("the state moved since the plan was made; nothing was changed:\n  "
                         + "\n  ".join(shown) + f"\n{advice}")


@dataclass(frozen=True)
class Moved:
    """A planned change that no longer holds, and the item as it would be planned now."""

    now: PlanItem
    why: str
    planned: ItemState

    @property
    def line(self) -> str:
        return escaped(f"{self.now.mailbox} / {self.now.trustee.identity}: {self.why}")


_VERB = {ItemState.TO_ADD: "grant", ItemState.TO_REMOVE: "removal"}
_NOW = {
    ItemState.ALREADY_PRESENT: "Full Access is already there",
    ItemState.BLOCKED: "a Deny Full Access entry now exists",
    ItemState.ABSENT: "there is no explicit Full Access to remove any more",
    ItemState.INHERITED_ONLY: "only inherited access is left",
}


def _why(planned: ItemState, now: PlanItem) -> str:
    if now.state is ItemState.UNKNOWN:
        return f"planned {_VERB[planned]}, but the state cannot be read now: {now.detail}"
    return f"planned {_VERB[planned]}, but {_NOW[now.state]}"


def server_drift(saved: SavedPlan, connection: Connection, facts_now: dict[str, str],
                 automapping_now: bool) -> tuple[list[str], list[str]]:
    """(hard, soft) differences of tool, endpoint and server: hard ones are refused even with --allow-drift."""
    hard: list[str] = []
    soft: list[str] = []
    if saved.tool_version != __version__:
        hard.append(f"tool: planned with provisioner {saved.tool_version}, this is {__version__} (its commands may "
                    "differ from the reviewed script)")
    if _host(saved.endpoint.get("server")) != _host(connection.server):
        hard.append(f"server: the plan is for {saved.endpoint.get('server')}, the connection is {connection.server}")
    tenant = connection.exo.tenant if connection.backend == "exo" else None
    if saved.endpoint.get(TENANT) != tenant:
        hard.append(f"tenant: the plan is for {saved.endpoint.get(TENANT)}, the connection is for {tenant}")
    if saved.automapping and not automapping_now:
        hard.append("server: -AutoMapping was available when planned and is not now (role or server changed)")
    if not saved.automapping and automapping_now:
        hard.append("server: -AutoMapping is available now and was not when planned: grants sent without it would "
                    "take Exchange's default (AutoMapping on), not what was reviewed")
    for name, label in (("protocol", "PSRP protocol"), ("ps_version", "PowerShell version")):
        then, now = saved.facts.get(name, ""), facts_now.get(name, "")
        if then != now:
            soft.append(f"server: {label} {then or '?'} when planned, {now or '?'} now")
    return hard, soft


def _host(name: object) -> str | None:
    """A host name as DNS compares it: case-insensitive, without a trailing dot."""
    return str(name).casefold().rstrip(".") if name else None


def recheck(saved: SavedPlan, engine: Engine) -> tuple[list[PlanItem], list[Moved]]:
    """The planned changes still valid (as plan items) and those that moved, in plan order."""
    found = engine.mailboxes(list(dict.fromkeys(change.mailbox for change in saved.changes)))
    verdicts: dict[int, PlanItem | Moved] = {}
    wanted: dict[Identity, list[int]] = {}
    trustee_of: dict[Identity, Trustee] = {}
    for index, change in enumerate(saved.changes):
        ref = found.get(change.mailbox)
        if isinstance(ref, ErrorInfo) or ref is None:
            error = ref if isinstance(ref, ErrorInfo) else ErrorInfo("not read")
            now = PlanItem(change.mailbox, change.trustee, ItemState.UNKNOWN, str(error), error)
            why = "the mailbox is gone" if error.not_found else f"the mailbox cannot be read now: {error}"
            verdicts[index] = Moved(now, f"planned {_VERB[change.state]}, but {why}", change.state)
        elif change.mailbox_key and ref.key != change.mailbox_key:
            error = ErrorInfo(f"another mailbox (GUID {ref.key}) has this identity now")
            now = PlanItem(change.mailbox, change.trustee, ItemState.UNKNOWN, error.message, error)
            verdicts[index] = Moved(now, f"planned {_VERB[change.state]}, but {error.message}", change.state)
        else:
            wanted.setdefault(change.trustee.identity, []).append(index)
            trustee_of[change.trustee.identity] = change.trustee
    for trustee_id, indexes in wanted.items():
        trustee = trustee_of[trustee_id]
        observed = engine.observe([saved.changes[i].mailbox for i in indexes], [trustee], label="re-reading")
        for index in indexes:
            change = saved.changes[index]
            now = planner.replan(change.mailbox, trustee, change.state,
                                 observed[pair_key(change.mailbox, trustee)])
            verdicts[index] = now if now.state is change.state else Moved(now, _why(change.state, now), change.state)
    valid = [v for _, v in sorted(verdicts.items()) if isinstance(v, PlanItem)]
    moved = [v for _, v in sorted(verdicts.items()) if isinstance(v, Moved)]
    return valid, moved


def connection_for(saved: SavedPlan, connection: Connection) -> Connection:
    """The plan's endpoint (port, scheme, path, configuration, mode, DC) and batch size, with the applier's
    credentials; the server is the configured one if any (compared with the plan's by :func:`server_drift`)."""
    endpoint = {name: value for name, value in saved.endpoint.items() if name not in ("server", TENANT)}
    return replace(connection, **endpoint, server=connection.server or saved.endpoint.get("server"),
                   batch_size=saved.batch_size)


def reviewed(saved: SavedPlan, connection: Connection, soft: list[str]) -> FactsCheck:
    """The facts check of applying ``saved``: the step options as reviewed, after refusing a server that differs in
    what the commands would be (:class:`PlanDrift`, even with --allow-drift) or cannot run them; the soft
    differences (protocol, PowerShell version) are added to ``soft``."""

    def check(session: SessionLike) -> StepOptions:
        options = step_options(connection, session.facts, True, saved.action)
        hard, found = server_drift(saved, connection, server_facts(session.facts), options.automapping)
        soft.extend(found)
        options = replace(options, automapping=saved.automapping)  # as reviewed (off if planned without it)
        if hard:
            raise PlanDrift(hard + found, 0, len(saved.changes), hard=True)
        refuse_missing(session.facts, required(saved.action, options, session.runner.piping))
        return options

    return check


def run_apply(
    saved: SavedPlan,
    connection: Connection,
    settings: RunSettings,
    *,
    password: str | None = None,
    pool_factory: PoolFactory = open_pool,
    allow_drift: bool = False,
    progress: ProgressFactory | None = None,
    hooks: Hooks = NO_HOOKS,
) -> RunResult:
    """Re-read what ``saved`` depends on; apply exactly its still-valid changes, or raise :class:`PlanDrift`.
    ``connection``: from :func:`connection_for`."""
    started = datetime.now(UTC)
    soft: list[str] = []
    journal = Journal(settings.journal, plan=saved.digest) if settings.journal else None
    spec = RunSpec(connection, cmdlets(saved.action), reviewed(saved, connection, soft), settings,
                   new_run_id(f"apply-{saved.action.value}"), journal, batch_size=saved.batch_size, report_loss=True)
    summary = Job(saved.action, tuple(dict.fromkeys(c.mailbox for c in saved.changes)), saved.trustees, connection)
    try:
        with open_run(spec, password=password, pool_factory=pool_factory, progress=progress, hooks=hooks) as context:
            with context.reading():
                verify_trustees(context.engine, saved.trustees, [change.mailbox for change in saved.changes])
                valid, moved = recheck(saved, context.engine)
            outcomes, notes, items = _apply_valid(context, saved, valid, moved, journal, allow_drift, soft)
    except Lost as lost:  # nothing was changed: every planned change unknown, in a report (exit 4)
        return lost_run(summary, started, datetime.now(UTC), lost.reason, lost.notes,
                        pairs=[(change.mailbox, change.trustee) for change in saved.changes])
    plan = Plan(saved.action, tuple(items[pair_key(c.mailbox, c.trustee)] for c in saved.changes),
                saved.trustees, observed=True)
    return context.result(summary, plan, outcomes, started, notes=notes)


def _apply_valid(context: Run, saved: SavedPlan, valid: list[PlanItem], moved: list[Moved], journal: Journal | None,
                 allow_drift: bool, soft: list[str]) -> tuple[list[Outcome], list[str], dict[PairKey, PlanItem]]:
    """Apply the plan's still-valid changes (or refuse, :class:`PlanDrift`); the outcomes in the plan's order, the
    run's notes, and each change's item as it is now."""
    moved, done = _applied_before(moved, journal, saved.digest)
    if (moved or soft) and not allow_drift:
        raise PlanDrift(soft + [m.line for m in moved], len(valid), len(saved.changes), hard=False)
    still = Plan(saved.action, tuple(valid), saved.trustees, observed=True)
    context.planned(still)
    applied = context.engine.apply(still) if valid else []
    by_pair = {o.pair: o for o in applied}
    for entry in moved:
        by_pair[entry.now.pair] = _moved_outcome(entry)
    for entry in done:
        by_pair[entry.now.pair] = replace(unchanged_outcome(entry.now), detail=entry.why)
    outcomes = [by_pair[pair_key(c.mailbox, c.trustee)] for c in saved.changes]
    context.finished(outcomes)
    notes = context.notes + soft
    if moved:
        notes.append(f"applied {len(valid)} of {len(saved.changes)} planned changes; {len(moved)} had moved since "
                     "the plan and were left alone (--allow-drift)")
    items = {item.pair: item for item in valid}
    items.update({m.now.pair: m.now for m in (*moved, *done)})
    if done:
        notes.append(f"{len(done)} of the plan's changes were already applied by an earlier apply of this plan")
    return outcomes, notes, items


_DONE = {ItemState.TO_ADD: {ItemState.ALREADY_PRESENT},
         ItemState.TO_REMOVE: {ItemState.ABSENT, ItemState.INHERITED_ONLY}}


def _applied_before(moved: list[Moved], journal: Journal | None, digest: str) -> tuple[list[Moved], list[Moved]]:
    """(still moved, already applied): a change found done that an earlier apply of this very plan made (a run that
    was killed, or a second apply of the same file) is not drift."""
    if journal is None or not moved:
        return moved, []
    made = applied_by_plan(journal.path, digest)
    still: list[Moved] = []
    done: list[Moved] = []
    for entry in moved:
        run = made.get((entry.now.mailbox.value.casefold(), entry.now.trustee.identity.value.casefold()))
        if run is not None and entry.now.state in _DONE[entry.planned]:
            done.append(Moved(entry.now, f"already applied by run {run}", entry.planned))
        else:
            still.append(entry)
    return still, done


def _moved_outcome(entry: Moved) -> Outcome:
    outcome = unchanged_outcome(entry.now)
    return replace(outcome, detail=f"not applied, changed since the plan: {entry.why}")
