"""Trustees first: each trustee resolved once, by the very resolution the permission cmdlets use, before any
permission is read or written; a typo stops the run with one message naming it."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from provisioner.domain.model import Identity, Trustee
from provisioner.engine.apply import Engine
from provisioner.errors import InputError
from provisioner.powershell import steps as step_builders
from provisioner.powershell.steps import Step
from provisioner.transport.runner import Pipeline, Raw, Runner, TransportLost


class TrusteeProblem(InputError):
    """A trustee that names no one, or several: the run stops before any permission is read or written."""


def _trustee_probe(runner: Runner, *, step: Step) -> Raw:
    raw = runner.run(Pipeline.of(step.command))
    error = raw.first_error
    if error is not None and error.transient:
        raise TransportLost(f"resolving trustee {step.trustee.identity}: {error}")
    return raw


def verify_trustees(engine: Engine, trustees: Sequence[Trustee], mailboxes: Sequence[Identity]) -> None:
    """Each trustee resolved once, before any permission is read or written, by the very resolution the
    permission cmdlets use (``Get-MailboxPermission -Identity <a target's GUID> -User T``, one per trustee):
    a trustee that is not found or ambiguous stops the run with one message naming it (exit 2). Nothing is
    sent when no target names a mailbox (nothing would be read or written either)."""
    wire, _ = engine.pin(mailboxes)
    anchor = next(iter(wire.values()), None)
    if anchor is None:
        return
    problems: list[str] = []
    for trustee in trustees:
        step = step_builders.read(anchor, trustee, engine.options)
        raw: Raw = engine.with_session(functools.partial(_trustee_probe, step=step))
        error = raw.first_error
        if error is not None and error.definitive:
            what = "is ambiguous" if error.ambiguous else "was not found"
            problems.append(f"trustee '{trustee.identity}' {what} (Exchange: {error.message.rstrip('.')})")
    if problems:
        raise TrusteeProblem("; ".join(problems) + ". Give a UPN, DOMAIN\\sam, SMTP address or alias that names "
                             "exactly one user or group; nothing was written")
