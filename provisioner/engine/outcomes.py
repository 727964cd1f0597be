"""How a change's outcome is decided when the server did not show it: not sent (the session lost, the journal
unwritable), sent but not read back, or not a change at all; and each plan item's outcome from its change's."""

from __future__ import annotations

from dataclasses import replace

from provisioner.domain.model import ErrorInfo, Identity, Outcome, PairKey, PlanItem, Result, pair_key
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.engine import shapes
from provisioner.powershell.steps import Step


def not_sent(change: Step | PlanItem, reason: str) -> Outcome:
    """A change not sent because of ``reason``: unknown (what it would change is not known)."""
    detail = f"not sent: {reason}"
    return Outcome(change.mailbox, change.trustee, Result.UNKNOWN, detail, ErrorInfo(detail))


def unconfirmed(written: dict[PairKey, shapes.Written], reason: str) -> dict[PairKey, Outcome]:
    """Outcomes of a batch whose confirming read could not run: shown by the server's output, as shown; the rest
    (sent, effect not seen) unknown."""
    final: dict[PairKey, Outcome] = {}
    detail = f"sent, but the state could not be read back: {reason}"
    for pair, item in written.items():
        if isinstance(item, shapes.Pending):
            final[pair] = Outcome(item.step.mailbox, item.step.trustee, Result.UNKNOWN, detail,
                                  ErrorInfo(detail, category="ConnectionError"), item.warnings)
        else:
            final[pair] = item
    return final


def planned(item: PlanItem, wire: dict[Identity, Identity], errors: dict[Identity, ErrorInfo],
            done: dict[PairKey, Outcome]) -> Outcome:
    """A plan item's outcome, named as the plan names it: unchanged, failed before sending (its name matched no
    single mailbox), or its change's outcome (``done``, keyed by the GUID it was sent to, ``wire``)."""
    if not item.changes:
        return unchanged_outcome(item)
    error = errors.get(item.mailbox)
    if error is not None:  # named no single mailbox when it was to be written: nothing was sent
        return Outcome(item.mailbox, item.trustee, Result.FAILED, error.message, error)
    return replace(done[pair_key(wire[item.mailbox], item.trustee)], mailbox=item.mailbox)
