"""The saved plan file: it round-trips exactly, and any edit, damage or foreign file is refused by name."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.domain.model import Action, Identity, ItemState, Plan, PlanItem, Trustee, identity_problem
from provisioner.errors import InputError
from provisioner.inputs.config import Connection
from provisioner.powershell.steps import StepOptions
from provisioner.runs.apply import server_drift
from provisioner.runs.planfile import SavedPlan, digest_of, load
from provisioner.transport.facts import ServerFacts

# identities as the tool plans them: valid, and without a wildcard (refused at every input)
names = st.text(min_size=1, max_size=30).filter(lambda text: identity_problem(text) is None and "*" not in text)
FACTS = ServerFacts("2.3", {"PSVersion": "5.1.17763.1"})


def saved_plan(mailboxes: list[str], trustee: str = "svc", *, removals: int = 0) -> SavedPlan:
    who = Trustee(Identity(trustee), automapping=False, role="service-account")
    items = [PlanItem(Identity(m), who, ItemState.TO_REMOVE if i < removals else ItemState.TO_ADD)
             for i, m in enumerate({m.casefold(): m for m in reversed(mailboxes)}.values())]
    items.append(PlanItem(Identity("already"), who, ItemState.ALREADY_PRESENT, "explicit"))
    plan = Plan(Action.REAPPLY, tuple(items), (who,), observed=True)
    keys = {item.mailbox: f"guid-{n}" for n, item in enumerate(items)}
    return SavedPlan.of(plan, Connection(server="ex01.contoso.com", port=443, scheme="https"), FACTS,
                        StepOptions(), keys, datetime(2026, 12, 3, tzinfo=UTC))


@given(st.lists(names, min_size=1, max_size=8), names, st.integers(min_value=0, max_value=8))
def test_a_plan_round_trips_exactly(mailboxes: list[str], trustee: str, removals: int) -> None:
    original = saved_plan(mailboxes, trustee, removals=removals)
    path = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
    file = path / f"roundtrip-{id(original)}.plan"
    try:
        file.write_text(original.dumps("ab" * 32), encoding="utf-8")
        loaded = load(file)
    finally:
        file.unlink(missing_ok=True)
    assert loaded == original
    assert [c.mailbox.value for c in loaded.changes] == [c.mailbox.value for c in original.changes]  # byte for byte
    assert loaded.digest == original.digest
    assert loaded.unchanged == {"already-present": 1}


def _edits(body: dict[str, object]) -> list[dict[str, object]]:
    """One copy of ``body`` per kind of edit an approver must never miss."""
    edits = []
    for change in ("mailbox", "trustee", "state", "mailbox_key"):
        copy = json.loads(json.dumps(body))
        value = copy["changes"][0][change]
        copy["changes"][0][change] = "to-remove" if change == "state" else value + "x"
        edits.append(copy)
    copy = json.loads(json.dumps(body))
    copy["changes"].append(dict(copy["changes"][0], mailbox="extra"))
    edits.append(copy)
    copy = json.loads(json.dumps(body))
    copy["endpoint"]["server"] = "evil.example"
    edits.append(copy)
    return edits


def test_any_edit_of_the_body_is_refused(tmp_path: Path) -> None:
    document = json.loads(saved_plan(["a", "b"]).dumps())
    for edited in _edits(document["body"]):
        path = tmp_path / "edited.plan"
        path.write_text(json.dumps({**document, "body": edited}), encoding="utf-8")
        with pytest.raises(InputError, match="changed after it was made"):
            load(path)


def test_damaged_and_foreign_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.plan"
    broken.write_text('{\n "format": "provisioner-plan/1",\n "body": {,\n}', encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{broken}:3: not a plan file"):
        load(broken)
    foreign = tmp_path / "foreign.plan"
    foreign.write_text('{"format": "terraform"}', encoding="utf-8")
    with pytest.raises(InputError, match="not a plan file of this tool"):
        load(foreign)
    with pytest.raises(InputError, match="plan file not found"):
        load(tmp_path / "missing.plan")


def test_server_differences_split_into_refused_and_allowed() -> None:
    saved = saved_plan(["a"])
    connection = Connection(server="ex01.contoso.com")
    assert server_drift(saved, connection, {"protocol": "2.3", "ps_version": "5.1.17763.1"}, True) == ([], [])
    hard, soft = server_drift(saved, Connection(server="ex02.contoso.com"),
                              {"protocol": "2.1", "ps_version": "2.0"}, True)
    assert hard == ["server: the plan is for ex01.contoso.com, the connection is ex02.contoso.com"]
    assert soft == ["server: PSRP protocol 2.3 when planned, 2.1 now",
                    "server: PowerShell version 5.1.17763.1 when planned, 2.0 now"]
    hard, _ = server_drift(saved, connection, {"protocol": "2.3", "ps_version": "5.1.17763.1"}, False)
    assert hard == ["server: -AutoMapping was available when planned and is not now (role or server changed)"]


def test_an_exchange_online_plan_is_for_its_tenant_only() -> None:
    from provisioner.inputs.config import ExoSettings

    who = Trustee(Identity("svc"))
    plan = Plan(Action.GRANT, (PlanItem(Identity("a"), who, ItemState.TO_ADD),), (who,), observed=True)
    contoso = Connection(backend="exo", exo=ExoSettings(tenant="contoso.onmicrosoft.com"))
    saved = SavedPlan.of(plan, contoso, ServerFacts(), StepOptions(), {}, datetime(2026, 12, 3, tzinfo=UTC))
    assert saved.endpoint["backend"] == "exo" and saved.endpoint["tenant"] == "contoso.onmicrosoft.com"
    assert server_drift(saved, contoso, {}, True) == ([], [])
    fabrikam = Connection(backend="exo", exo=ExoSettings(tenant="fabrikam.onmicrosoft.com"))
    hard, _ = server_drift(saved, fabrikam, {}, True)
    assert hard == ["tenant: the plan is for contoso.onmicrosoft.com, the connection is for fabrikam.onmicrosoft.com"]


@pytest.mark.parametrize("edit, message", [
    (lambda body: body["changes"].append(dict(body["changes"][0])), "planned twice"),
    (lambda body: body.__setitem__("batch_size", 0), "batch_size 0"),
    (lambda body: body["endpoint"].__setitem__("port", 70000), "endpoint port 70000"),
    (lambda body: body["endpoint"].__setitem__("mode", "evil"), "endpoint mode 'evil'"),
    (lambda body: body["changes"][0].__setitem__("trustee", "someone-else"), "not among the plan's trustees"),
])
def test_a_plan_written_with_a_valid_digest_but_impossible_content_is_refused_by_field(
    edit: Any, message: str, tmp_path: Path
) -> None:
    document = json.loads(saved_plan(["a", "b"]).dumps())
    edit(document["body"])
    document["digest"] = digest_of(document["body"])  # someone recomputed the digest: the content check remains
    path = tmp_path / "odd.plan"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(InputError, match=message) as raised:
        load(path)
    assert str(path) in str(raised.value)


def test_hostile_json_is_a_clean_error_never_a_traceback(tmp_path: Path) -> None:
    base = json.loads(saved_plan(["a"]).dumps())
    texts = {
        "repeated key": '{"format": "provisioner-plan/1", "format": "provisioner-plan/1", "body": {}}',
        "lone surrogate": json.dumps({**base, "body": {**base["body"], "created": "\ud800"}}),
        "deep nesting": '{"format": "provisioner-plan/1", "body": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "infinite batch": json.dumps(base).replace('"batch_size": 500', '"batch_size": Infinity'),
    }
    for name, text in texts.items():
        path = tmp_path / f"{name}.plan"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with pytest.raises(InputError):
            load(path)


def test_server_names_compare_as_dns_does_and_automapping_must_match() -> None:
    saved = saved_plan(["a"])
    facts = {"protocol": "2.3", "ps_version": "5.1.17763.1"}
    assert server_drift(saved, Connection(server="EX01.Contoso.com."), facts, True) == ([], [])
    unsupported = replace(saved, automapping=False)  # planned with --automapping-unsupported-ok
    hard, _ = server_drift(unsupported, Connection(server="ex01.contoso.com"), facts, True)
    assert hard and "-AutoMapping is available now and was not when planned" in hard[0]


def test_apply_runs_the_reviewed_preamble_not_the_appliers() -> None:
    from provisioner.runs.apply import connection_for

    who = Trustee(Identity("svc"))
    plan = Plan(Action.GRANT, (PlanItem(Identity("a"), who, ItemState.TO_ADD),), (who,), observed=True)
    reviewed = Connection(server="ex01", mode="script", preamble="Add-PSSnapin Microsoft.Exchange.Management")
    saved = SavedPlan.of(plan, reviewed, FACTS, StepOptions(), {}, datetime(2026, 12, 3, tzinfo=UTC))
    applier = Connection(server="ex01", preamble="Add-MailboxPermission -Identity ceo -User mallory")
    assert connection_for(saved, applier).preamble == reviewed.preamble
    assert connection_for(saved, applier).mode == "script"
