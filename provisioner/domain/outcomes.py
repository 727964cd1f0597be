"""The outcome of a plan item that nothing is (or will be) sent for."""

from __future__ import annotations

from provisioner.domain.model import Action, ItemState, Outcome, PlanItem, Result

_STATE_RESULT = {
    ItemState.ALREADY_PRESENT: Result.ALREADY_PRESENT,
    ItemState.BLOCKED: Result.BLOCKED,
    ItemState.ABSENT: Result.ABSENT,
    ItemState.INHERITED_ONLY: Result.INHERITED_ONLY,
    ItemState.TO_ADD: Result.PLANNED,
    ItemState.TO_REMOVE: Result.PLANNED,
}


def unchanged_outcome(item: PlanItem, action: Action = Action.GRANT) -> Outcome:
    """The outcome of an item nothing was (or will be) sent for."""
    if action is Action.AUDIT and item.state is ItemState.TO_ADD:
        return Outcome(item.mailbox, item.trustee, Result.MISSING, item.detail)
    if action is Action.AUDIT and item.state is ItemState.ALREADY_PRESENT:
        return Outcome(item.mailbox, item.trustee, Result.PRESENT, item.detail)  # an audit reads, it found it there
    if item.state is ItemState.UNKNOWN:
        # A mailbox or trustee that does not exist (or is ambiguous) is a definite failure; anything else is
        # a state that could not be read.
        result = Result.FAILED if item.error is not None and item.error.definitive else Result.UNKNOWN
        return Outcome(item.mailbox, item.trustee, result, item.detail, item.error)
    return Outcome(item.mailbox, item.trustee, _STATE_RESULT[item.state], item.detail)
