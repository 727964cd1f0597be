"""Planner cases as data (tests/data/plans/cases.json): observed state -> item state, and plan shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioner.domain import planner
from provisioner.domain.model import (
    Action,
    ErrorInfo,
    Identity,
    ItemState,
    Observation,
    PermissionEntry,
    Trustee,
    pair_key,
)

CASES = json.loads((Path(__file__).parent / "data" / "plans" / "cases.json").read_text())["cases"]
ALICE = Identity("alice@contoso.com")
SVC = Trustee(Identity("svc-codetwo@contoso.com"), role="service-account")


def _observation(raw: Any) -> Observation | None:
    if raw is None:
        return None
    if raw == "error":
        return Observation.unreadable(ErrorInfo("read failed", reason="SomeException"))
    entries = [
        PermissionEntry(frozenset(p.strip().casefold() for p in rights.split(",")), deny=deny, inherited=inherited)
        for rights, deny, inherited in raw
    ]
    return Observation.from_entries(entries)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case: dict[str, Any]) -> None:
    observation = _observation(case["observed"])
    observed = {} if observation is None else {pair_key(ALICE, SVC): observation}
    result = planner.plan(Action(case["action"]), [ALICE], [SVC], observed)
    assert [item.state.value for item in result.items] == [case["expect"]]


def test_identities_compare_case_insensitively_in_lookups() -> None:
    observed = {pair_key(Identity("ALICE@Contoso.com"), Trustee(Identity("SVC-CODETWO@contoso.com"))): Observation(
        explicit_allow=True
    )}
    result = planner.plan(Action.GRANT, [ALICE], [SVC], observed)
    assert result.items[0].state is ItemState.ALREADY_PRESENT


def test_offline_plan_lists_every_pair_in_order() -> None:
    mailboxes = [Identity(f"user{i}@contoso.com") for i in range(3)]
    trustees = [SVC, Trustee(Identity("sync.admin"), role="admin-user")]
    result = planner.plan(Action.GRANT, mailboxes, trustees, None)
    assert not result.observed
    assert [(i.mailbox.value, i.trustee.identity.value) for i in result.items] == [
        (m.value, t.identity.value) for m in mailboxes for t in trustees
    ]
    assert all(item.state is ItemState.TO_ADD for item in result.items)
    assert result.counts() == {"to-add": 6}


def test_offline_audit_is_refused() -> None:
    with pytest.raises(ValueError, match="observed"):
        planner.plan(Action.AUDIT, [ALICE], [SVC], None)


def test_unknown_keeps_the_error_for_the_outcome() -> None:
    error = ErrorInfo("couldn't be found", reason="ManagementObjectNotFoundException")
    result = planner.plan(Action.GRANT, [ALICE], [SVC], {pair_key(ALICE, SVC): Observation.unreadable(error)})
    assert result.items[0].state is ItemState.UNKNOWN
    assert result.items[0].error == error


@pytest.mark.parametrize(
    "bad", ["", " ", "\t", "a\nb", "a\x00b", "a\rb", "x" * 513, "a\u2028b", "\u202e", "\u200b \u200c"]
)
def test_identity_refuses_what_exchange_would_misread(bad: str) -> None:
    with pytest.raises(ValueError):
        Identity(bad)


def test_identity_equality_and_hash_fold_case() -> None:
    assert Identity("Alice@Contoso.COM") == Identity("alice@contoso.com")
    assert len({Identity("A"), Identity("a")}) == 1
    assert Identity("Alice").value == "Alice"
