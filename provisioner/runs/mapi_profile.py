"""The seed's second step: which mailboxes the admin-console user's MAPI profile must (no longer) list.

In "MAPI profile mode" the sync product opens every synchronised mailbox through the MAPI profile of the user who
runs its admin console; Full Access alone is not enough, each mailbox must also be added to that profile (Mail >
Show Profiles > Properties > Data Files > Settings > Advanced > Mailboxes). The tool does not edit MAPI profiles: it
lists, per run, the mailboxes newly granted to that user (to add) and those removed (to take out), with what the
profile dialog and admins search by: display name, primary SMTP address and LegacyExchangeDN (the X.500 address
the profile stores). The names are read from Exchange (``ids | Get-Mailbox``, one pipeline per batch) after the
run, in the same session.

A mailbox granted with AutoMapping on is added to Outlook by Autodiscover and is not stored in the profile; it is
listed with ``automapping`` true and must not be added by hand as well (KB 981245).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from provisioner.domain.model import Outcome, Result, Trustee
from provisioner.domain.wording import counted
from provisioner.engine.apply import Engine
from provisioner.engine.resolve import MailboxRef
from provisioner.errors import InputError
from provisioner.runs.result import ProfileEntry
from provisioner.transport.runner import TransportLost

ADMIN_ROLE = "admin-user"
RUN_CHANGES: Mapping[Result, str] = {Result.GRANTED: "add", Result.REMOVED: "remove"}
AUDIT_CHANGES: Mapping[Result, str] = {Result.PRESENT: "present"}
def admin_users(trustees: Sequence[Trustee]) -> tuple[Trustee, ...]:
    return tuple(trustee for trustee in trustees if trustee.role == ADMIN_ROLE)


def require_admin(trustees: Sequence[Trustee], option: str) -> None:
    if not admin_users(trustees):
        raise InputError(f"{option} lists the admin-console user's mailboxes: give --admin-user or set "
                         "[trustees] admin_user in the config")


@dataclass
class ProfileList:
    """A run's ``finished`` hook: collects the admin-console user's changed mailboxes and reads their names."""

    changes: Mapping[Result, str] = field(default_factory=lambda: RUN_CHANGES)
    names: bool = True  # read the names (a report or list will show them); False: only count, nothing read
    entries: list[ProfileEntry] = field(default_factory=list)

    def __call__(self, outcomes: Sequence[Outcome], engine: Engine) -> None:
        picked = [(o, self.changes[o.result]) for o in outcomes
                  if o.trustee.role == ADMIN_ROLE and o.result in self.changes]
        if not picked:
            return
        if not self.names:
            self.entries.extend(ProfileEntry(change, o.mailbox, o.trustee) for o, change in picked)
            return
        try:
            found = engine.mailboxes(list(dict.fromkeys(outcome.mailbox for outcome, _ in picked)))
        except TransportLost as exc:  # the writes are done and their outcomes known: a note, never a lost report
            engine.notes.append(f"the MAPI-profile names could not be read: {exc}")
            found = {}
        for outcome, change in picked:
            ref = found.get(outcome.mailbox)
            if isinstance(ref, MailboxRef):
                self.entries.append(ProfileEntry(change, outcome.mailbox, outcome.trustee, ref.display_name,
                                                 ref.primary_smtp, ref.legacy_dn))
            else:
                why = f"names not read: {ref}" if ref is not None else "names not read"
                self.entries.append(ProfileEntry(change, outcome.mailbox, outcome.trustee, note=why))

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.change] = counts.get(entry.change, 0) + 1
        return counts

    def summary(self) -> str | None:
        """One line for the run's report, or None when the profile needs no change."""
        if not self.entries:
            return None
        counts = self.counts()
        parts = [f"{verb} {counted(counts[change], 'mailbox')}" for change, verb in (
            ("add", "add"), ("remove", "remove"), ("present", "list")) if change in counts]
        automapped = sum(1 for entry in self.entries if entry.trustee.automapping and entry.change == "add")
        line = f"MAPI profile of the admin-console user: {', '.join(parts)}"
        if automapped:
            line += f" ({automapped} automapped: Outlook adds those itself, do not add them by hand)"
        return line
