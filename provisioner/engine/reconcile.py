"""Settle what killed runs left in doubt: every journal intent without an outcome, decided by reading the live state.

A run writes one ``intent`` line per change before sending a batch and one ``change`` line per outcome after Exchange
answered (see :mod:`provisioner.engine.journal`). A run killed in between (kill -9, power loss, a lost session) leaves
intents whose outcome nobody knows: Exchange may have made the change or not. Every changing run reconciles them all,
whatever run left them, before it plans, under the run lock: one read per trustee and batch
(:meth:`provisioner.engine.apply.Engine.observe`), then one ``reconciled`` line per intent, attributed to the run that
sent
it, so that ``journal undo`` of that run reverses exactly what was made. An intent whose pair cannot be read now stays
in doubt (the next run tries again; ``journal undo`` of its run refuses until it is settled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provisioner.domain.model import Identity, Observation, Result, Trustee, pair_key
from provisioner.domain.wording import plural
from provisioner.engine.apply import Engine
from provisioner.engine.journal import InDoubt, Journal, in_doubt

NOT_MADE = "not-made"  # the read shows the change was not made: nothing to undo
GONE = "gone"  # the mailbox (or trustee) no longer exists: whatever was made went with it


@dataclass(frozen=True)
class Reconciled:
    settled: int
    left: int  # still in doubt: the pair could not be read

    def note(self) -> str | None:
        if not self.settled and not self.left:
            return None
        text = f"reconciled {self.settled:,} journal {plural('entry', self.settled)} left in doubt by killed runs"
        return text + (f"; {self.left} could not be read and stay in doubt" if self.left else "")


def reconcile(engine: Engine, by_run: str) -> Reconciled:
    """Settle every intent in doubt in ``engine``'s journal (none: nothing is read)."""
    journal = engine.journal
    if journal is None:
        return Reconciled(0, 0)
    doubts = in_doubt(journal.path)
    if not doubts:
        return Reconciled(0, 0)
    result = settle(engine, journal, doubts, by_run)
    note = result.note()
    if note is not None:
        engine.notes.append(note)
    return result


def settle(engine: Engine, journal: Journal, doubts: Sequence[InDoubt], by_run: str) -> Reconciled:
    groups: dict[tuple[str, bool], list[InDoubt]] = {}
    for doubt in doubts:
        groups.setdefault((doubt.trustee.casefold(), doubt.automapping), []).append(doubt)
    settled: list[tuple[InDoubt, str]] = []
    for group in groups.values():
        trustee = Trustee(Identity(group[0].trustee), group[0].automapping, group[0].role)
        mailboxes = list(dict.fromkeys(_sent_to(doubt) for doubt in group))
        observed = engine.observe(mailboxes, [trustee], label=None)
        for doubt in group:
            outcome = decide(doubt, observed[pair_key(_sent_to(doubt), trustee)])
            if outcome is not None:
                settled.append((doubt, outcome))
    journal.reconciled(settled, by_run)
    return Reconciled(len(settled), len(doubts) - len(settled))


def _sent_to(doubt: InDoubt) -> Identity:
    """The mailbox the intent was sent to: its GUID when the journal has it (the name may name another one now)."""
    return Identity(doubt.mailbox_guid or doubt.mailbox)


def decide(doubt: InDoubt, seen: Observation) -> str | None:
    """What the intent's read says was made (None: unreadable now, still in doubt)."""
    if seen.error is not None:
        return GONE if seen.error.not_found else None
    present = seen.explicit_allow
    if doubt.action == "grant":
        return Result.GRANTED.value if present else NOT_MADE
    return Result.REMOVED.value if not present else NOT_MADE
