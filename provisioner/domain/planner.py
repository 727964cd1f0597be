"""Desired state + observed state -> plan. Pure and deterministic: same inputs, same plan, same order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from provisioner.domain.model import (
    AccessState,
    Action,
    Identity,
    ItemState,
    Observation,
    PairKey,
    Plan,
    PlanItem,
    Trustee,
    pair_key,
)


def _grant_state(observation: Observation) -> tuple[ItemState, str]:
    state = observation.state
    if state is AccessState.UNKNOWN:
        return ItemState.UNKNOWN, str(observation.error)
    if state is AccessState.DENIED:
        return ItemState.BLOCKED, "an explicit or inherited Deny FullAccess entry exists for this trustee"
    if state is AccessState.PRESENT:
        return ItemState.ALREADY_PRESENT, "explicit" if observation.explicit_allow else "inherited"
    return ItemState.TO_ADD, ""


def _revoke_state(observation: Observation) -> tuple[ItemState, str]:
    if observation.error is not None:
        return ItemState.UNKNOWN, str(observation.error)
    if observation.explicit_allow:
        return ItemState.TO_REMOVE, ""
    if observation.inherited_allow:
        return ItemState.INHERITED_ONLY, "access is inherited (database or AD), not set on the mailbox"
    if observation.deny:
        return ItemState.ABSENT, "no Allow entry; the Deny entry is left alone"
    return ItemState.ABSENT, ""


_DECIDE = {Action.GRANT: _grant_state, Action.AUDIT: _grant_state, Action.REVOKE: _revoke_state}
_OFFLINE = {Action.GRANT: ItemState.TO_ADD, Action.REVOKE: ItemState.TO_REMOVE}


def plan(
    action: Action,
    mailboxes: Sequence[Identity],
    trustees: Sequence[Trustee],
    observed: Mapping[PairKey, Observation] | None,
) -> Plan:
    """One item per (mailbox, trustee), mailboxes in input order, trustees in input order within each.

    ``observed`` None means offline: nothing was read, so every pair is listed as a change. A pair missing
    from ``observed`` is UNKNOWN, never absent.
    """
    if not trustees:
        raise ValueError("no trustees")
    items: list[PlanItem] = []
    if observed is None:
        if action not in _OFFLINE:
            raise ValueError(f"{action.value} needs the observed state")
        offline_state = _OFFLINE[action]
        items = [PlanItem(mailbox, trustee, offline_state, "not read (offline)") for mailbox in mailboxes
                 for trustee in trustees]
        return Plan(action, tuple(items), tuple(trustees), observed=False)
    decide = _DECIDE[action]
    for mailbox in mailboxes:
        for trustee in trustees:
            observation = observed.get(pair_key(mailbox, trustee))
            if observation is None:
                items.append(PlanItem(mailbox, trustee, ItemState.UNKNOWN, "not read"))
                continue
            state, detail = decide(observation)
            items.append(PlanItem(mailbox, trustee, state, detail, observation.error))
    return Plan(action, tuple(items), tuple(trustees), observed=True)


def replan(mailbox: Identity, trustee: Trustee, planned: ItemState, observation: Observation) -> PlanItem:
    """The item a change planned as ``planned`` (to-add or to-remove) would be planned as from ``observation``."""
    decide = _grant_state if planned is ItemState.TO_ADD else _revoke_state
    state, detail = decide(observation)
    return PlanItem(mailbox, trustee, state, detail, observation.error)
