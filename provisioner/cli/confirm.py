"""Confirmation of wide changes: revoke, ``reapply --prune``, ``journal undo`` and applying a plan that removes.

On a terminal the run shows the count of what it is about to change and asks; ``--yes`` answers for scripts and
scheduled jobs. Without a terminal there is no one to ask, so such a run is refused before anything is sent unless
``--yes`` is given: a cron job that silently starts removing access is worse than one that fails loudly once.
A run that turns out to change nothing asks nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from provisioner.domain.model import ItemState, Plan
from provisioner.domain.wording import counted
from provisioner.engine.apply import Engine
from provisioner.errors import Declined, InputError

Ask = Callable[[str], bool]


def _ask_on_terminal(question: str) -> bool:
    import typer

    return bool(typer.confirm(question, default=False, err=True))


def on_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


@dataclass(frozen=True)
class Confirmation:
    yes: bool  # --yes: the answer is given
    interactive: bool  # someone is at a terminal to answer
    ask: Ask = _ask_on_terminal

    @classmethod
    def from_terminal(cls, yes: bool) -> Confirmation:
        return cls(yes=yes, interactive=on_terminal())

    def require(self, what: str) -> None:
        """Refuse, before connecting, a run that would have to ask when no one can answer."""
        if not self.yes and not self.interactive:
            raise InputError(f"{what} asks for confirmation and there is no terminal to ask on: nothing was sent. "
                             "Add --yes (scripts and scheduled jobs), or run it from a terminal")

    def confirm(self, question: str) -> None:
        if self.yes:
            return
        if not self.ask(question):
            raise Declined("declined at the prompt: nothing was changed")

    def hook(self, question: Callable[[Plan], str | None]) -> Callable[[Plan, Engine], None]:
        """A ``planned`` hook: ask ``question(plan)`` (None: nothing wide to confirm) before anything is applied."""

        def planned(plan: Plan, _engine: Engine) -> None:
            text = question(plan)
            if text is not None:
                self.confirm(text)

        return planned


def removals_question(what: str) -> Callable[[Plan], str | None]:
    """"<what>: remove Full Access for N (mailbox, trustee) pairs on M mailboxes[, and grant K]. Continue?"."""

    def question(plan: Plan) -> str | None:
        removals = [item for item in plan.items if item.state is ItemState.TO_REMOVE]
        if not removals:
            return None
        grants = sum(1 for item in plan.items if item.state is ItemState.TO_ADD)
        mailboxes = len({item.mailbox for item in removals})
        trustees = ", ".join(dict.fromkeys(item.trustee.identity.value for item in removals))
        also = f", and grant {grants}" if grants else ""
        return (f"{what}: remove Full Access of {trustees} on {counted(mailboxes, 'mailbox')} "
                f"({counted(len(removals), 'removal')}{also})."
                " Continue?")

    return question


def changes_question(what: str, plan: Plan) -> str | None:
    """For a plan known before connecting (undo, a saved plan): its changes counted, or None if it has none."""
    removals = sum(1 for item in plan.items if item.state is ItemState.TO_REMOVE)
    grants = sum(1 for item in plan.items if item.state is ItemState.TO_ADD)
    if not removals and not grants:
        return None
    mailboxes = len({item.mailbox for item in plan.items})
    trustees = ", ".join(dict.fromkeys(item.trustee.identity.value for item in plan.items))
    return (f"{what}: {counted(removals, 'removal')} and {counted(grants, 'grant')} of {trustees} on "
            f"{counted(mailboxes, 'mailbox')}. Continue?")
