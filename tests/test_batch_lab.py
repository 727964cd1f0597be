"""BatchExecutor against the lab endpoint: the same plans and outcomes as PsrpExecutor, in far fewer requests.

Every comparison runs both executors on fresh labs with the same organisation and compares the plan, the
outcomes (result and error reason) and the lab's state afterwards; engine counters show nothing was done twice.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from provisioner_lab.api import Statement
from provisioner_lab.exchange.engine import EngineOptions
from provisioner_lab.run import Lab, build_engine, running_lab
from provisioner_lab.server import FaultOptions
from pypsrp.powershell import RunspacePool

from provisioner import planner
from provisioner import steps as step_builders
from provisioner.config import Connection
from provisioner.executors.batch import YOUNG_GC_THRESHOLD, BatchExecutor, fewer_collections
from provisioner.executors.psrp import PsrpExecutor, TransportLost, encode_command
from provisioner.model import Action, Identity, Outcome, Plan, Trustee
from provisioner.session import open_pool
from tests.pypsrp_values import plain

SERVICE, ADMIN, GHOST = "svc-codetwo@contoso.com", "sync.admin@contoso.com", "ghost-account"
DEMO_MAILBOXES = [
    "alice.wong", "no.such.person@contoso.com", "judy.nakamura", "Chris Taylor", "ivan.petrov", "sales@contoso.com",
    "carol.diaz", "Frank O'Connor", "room.oslo", "heidi.schmidt", "bob.meyer", "grace.hop*",
]
TRUSTEES = (Trustee(Identity(SERVICE)), Trustee(Identity(ADMIN), automapping=True), Trustee(Identity(GHOST)))


def connection(lab: Lab, **settings: Any) -> Connection:
    return Connection(server="127.0.0.1", port=lab.port, auth="basic", username=lab.username, insecure_lab=True,
                      **settings)


@contextmanager
def pool_for(lab: Lab) -> Iterator[RunspacePool]:
    with open_pool(connection(lab), lab.password) as pool:
        yield pool


def batch_executor(lab: Lab, pool: RunspacePool, dc: str | None = None, **settings: Any) -> BatchExecutor:
    return BatchExecutor(pool, step_builders.StepOptions(domain_controller=dc),
                         open_pool=lambda: open_pool(connection(lab), lab.password), **settings)


def grant(executor: PsrpExecutor, mailboxes: list[str], trustees: tuple[Trustee, ...] = TRUSTEES,
          action: Action = Action.GRANT) -> tuple[Plan, dict[tuple[str, str], Outcome]]:
    identities = [Identity(m) for m in mailboxes]
    plan = planner.plan(action, identities, trustees, executor.observe(identities, trustees))
    changes = list(step_builders.changes(plan, executor.options))
    outcomes = {(o.mailbox.key, o.trustee.identity.key): o for o in executor.apply(changes)}
    assert len(outcomes) == len(changes)
    return plan, outcomes


def summary(plan: Plan, outcomes: dict[tuple[str, str], Outcome]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for item in plan.items:
        outcome = outcomes.get((item.mailbox.key, item.trustee.identity.key))
        reason = (item.error.reason if item.error else "") + "|" + (outcome.error.reason if outcome and outcome.error
                                                                   else "")
        rows.append((item.mailbox.value, item.trustee.identity.value, item.state.value,
                     outcome.result.value if outcome else "-", reason))
    return rows


def acl_state(lab: Lab) -> dict[str, list[tuple[str, int, bool]]]:
    return {m.sid: sorted((e.sid, e.rights, e.deny) for e in m.acl.latest()) for m in lab.engine.directory.mailboxes()
            if m.acl is not None}


def test_demo_org_same_plan_outcomes_and_state_as_the_exact_executor() -> None:
    with running_lab() as exact_lab, pool_for(exact_lab) as pool:
        exact = PsrpExecutor(pool, encode_command, step_builders.StepOptions())
        expected_plan, expected_outcomes = grant(exact, DEMO_MAILBOXES)
    with running_lab() as lab, pool_for(lab) as pool:
        lab.server.counters.reset()
        plan, outcomes = grant(batch_executor(lab, pool, batch_size=5), DEMO_MAILBOXES)
        assert summary(plan, outcomes) == summary(expected_plan, expected_outcomes)
        assert acl_state(lab) == acl_state(exact_lab)
        assert lab.engine.directory.delegates_of("bob.meyer") == exact_lab.engine.directory.delegates_of("bob.meyer")
        # Nothing written twice: one Add per change. The first batch of each read is tried without delimiters;
        # the demo org is mixed, so it is read again with them, then every later batch is delimited.
        pairs = len(DEMO_MAILBOXES) * len(TRUSTEES)
        assert lab.engine.counters.invocations["Get-MailboxPermission"] == pairs + 5
        assert lab.engine.counters.invocations["Add-MailboxPermission"] == len(outcomes)
        assert exact_lab.engine.counters.invocations["Add-MailboxPermission"] == len(outcomes)
        assert lab.server.counters["Command"] < exact_lab.server.counters["Command"] / 2
    states = {(row[0], row[1]): (row[2], row[3]) for row in summary(plan, outcomes)}
    assert states[("alice.wong", SERVICE)] == ("to-add", "granted")
    assert states[("judy.nakamura", SERVICE)] == ("blocked", "-")
    assert states[("ivan.petrov", SERVICE)] == ("already-present", "-")
    assert states[("no.such.person@contoso.com", SERVICE)][0] == "unknown"
    assert states[("Chris Taylor", ADMIN)][0] == "unknown"
    assert states[("alice.wong", GHOST)][0] == "unknown"


def test_revoke_batches_give_the_exact_outcomes() -> None:
    with running_lab() as lab, pool_for(lab) as pool:
        executor = batch_executor(lab, pool, batch_size=4)
        grant(executor, DEMO_MAILBOXES, TRUSTEES[:2])
        _, outcomes = grant(executor, DEMO_MAILBOXES, TRUSTEES[:2], Action.REVOKE)
        removed = {key for key, outcome in outcomes.items() if outcome.result.value == "removed"}
        assert ("bob.meyer", SERVICE) in removed and ("ivan.petrov", SERVICE) in removed
        assert all(outcome.result.value == "removed" for outcome in outcomes.values())
        for mailbox, trustee in removed:
            assert not lab.engine.directory.has_full_access(mailbox, trustee)
        assert lab.engine.counters.invocations["Remove-MailboxPermission"] == len(removed)


@pytest.mark.parametrize("undelimited", [True, False])
def test_domain_controller_is_passed_to_every_batched_command(undelimited: bool) -> None:
    with running_lab() as lab, pool_for(lab) as pool:
        seen: list[Statement] = []
        original = lab.engine.run

        def recording(statements: list[Statement], pipeline_input: list[Any], *, user: str | None) -> Any:
            seen.extend(statements)
            return original(statements, pipeline_input, user=user)

        lab.engine.run = recording  # type: ignore[method-assign]
        _, outcomes = grant(batch_executor(lab, pool, "dc02.contoso.com", batch_size=10, undelimited=undelimited),
                            ["alice.wong", "bob.meyer", "nobody.here"], TRUSTEES[:2])
        commands = [command for statement in seen for command in statement.commands]
        reads = {"Get-MailboxPermission"} if undelimited else {"Get-Mailbox", "Get-MailboxPermission"}
        assert {command.name for command in commands} == reads | {"Add-MailboxPermission"}
        for command in commands:
            assert ("DomainController", "dc02.contoso.com") in [(a.name, a.value) for a in command.arguments]
        assert sum(1 for o in outcomes.values() if o.result.value == "granted") == 4
        # 2 trustees x 3 mailboxes x the read statements, then 4 Adds (nobody.here fails in the read)
        assert len(seen) == 2 * 3 * len(reads) + 4


def test_throttling_mid_write_batch_exact_outcomes_nothing_lost_or_done_twice() -> None:
    # Budget: 2 read batches of 8 Get-MailboxPermission (a first grant reads without delimiters) = 16, then 5 of
    # the 8 Adds of the first write batch.
    engine = build_engine(mailboxes=8, options=EngineOptions(throttle_max_cmdlets=21, throttle_refill=False))
    mailboxes = [f"user{i:06d}" for i in range(1, 9)]
    with running_lab(engine=engine) as lab, pool_for(lab) as pool:
        plan, outcomes = grant(batch_executor(lab, pool, batch_size=8), mailboxes, TRUSTEES[:2])
        assert all(item.state.value == "to-add" for item in plan.items)
        granted = {key for key, o in outcomes.items() if o.result.value == "granted"}
        failed = {key for key, o in outcomes.items() if o.result.value == "failed"}
        assert len(granted) == 5 and len(failed) == 11 and len(outcomes) == 16
        assert all("user load quota" in outcomes[key].detail for key in failed)
        for mailbox in mailboxes:
            for trustee in (SERVICE, ADMIN):
                assert lab.engine.directory.has_full_access(mailbox, trustee) == ((mailbox, trustee) in granted)
        assert lab.engine.counters.invocations["Add-MailboxPermission"] == 5  # each granted item written once
        # A second run once the budget is back grants exactly the rest.
        lab.engine.options = EngineOptions()
        _, second = grant(batch_executor(lab, pool, batch_size=8), mailboxes, TRUSTEES[:2])
        assert set(second) == failed and {o.result.value for o in second.values()} == {"granted"}
        assert lab.engine.counters.invocations["Add-MailboxPermission"] == 16


def test_throttling_mid_read_batch_leaves_the_rest_unknown_never_absent() -> None:
    # 7 cmdlets: Get-Mailbox/Get-MailboxPermission for 3 mailboxes and the 4th Get-Mailbox, then throttled.
    engine = build_engine(mailboxes=6, options=EngineOptions(throttle_max_cmdlets=7, throttle_refill=False))
    identities = [Identity(f"user{i:06d}") for i in range(1, 7)]
    with running_lab(engine=engine) as lab, pool_for(lab) as pool:
        observed = batch_executor(lab, pool, batch_size=6, undelimited=False).observe(identities, TRUSTEES[:1])
        states = [observed[planner.key(m, TRUSTEES[0])].state.value for m in identities]
        assert states == ["absent"] * 3 + ["unknown"] * 3
        assert lab.engine.counters.invocations["Get-MailboxPermission"] == 3


def test_parallel_pools_give_the_same_outcomes() -> None:
    mailboxes = [f"user{i:06d}" for i in range(1, 41)] + ["missing.one", "missing.two"]
    with running_lab(mailboxes=40) as lab, pool_for(lab) as pool:
        plan, outcomes = grant(batch_executor(lab, pool, batch_size=7, parallel=3), mailboxes, TRUSTEES[:2])
        assert sum(1 for o in outcomes.values() if o.result.value == "granted") == 80
        assert all(item.state.value == "unknown" for item in plan.items if item.mailbox.value.startswith("missing"))
        assert all(lab.engine.directory.has_full_access(m, SERVICE) for m in mailboxes[:40])
        assert lab.engine.counters.invocations["Add-MailboxPermission"] == 80
        assert lab.engine.counters.invocations["Get-MailboxPermission"] == 84  # uniform: no delimiters needed
        assert lab.engine.counters.invocations["Get-Mailbox"] == 0


def test_a_dropped_session_is_transport_lost() -> None:
    with running_lab() as lab, pool_for(lab) as pool:
        lab.server.set_faults(FaultOptions(drop_rate=1.0, actions=frozenset({"Command"}), seed=1))
        with pytest.raises(TransportLost):
            batch_executor(lab, pool).observe([Identity("alice.wong"), Identity("bob.meyer")], TRUSTEES[:1])


def test_requests_per_pair_on_a_thousand_mailboxes() -> None:
    mailboxes = [f"user{i:06d}" for i in range(1, 1001)]
    with running_lab(mailboxes=1000) as lab, pool_for(lab) as pool:
        executor = batch_executor(lab, pool)
        lab.server.counters.reset()
        _, first = grant(executor, mailboxes, TRUSTEES[:2])
        assert len(first) == 2000 and {o.result.value for o in first.values()} == {"granted"}
        first_requests = lab.server.counters["total"]
        lab.server.counters.reset()
        plan, again = grant(executor, mailboxes, TRUSTEES[:2])
        assert again == {} and {item.state.value for item in plan.items} == {"already-present"}
        assert lab.server.counters["total"] / 2000 <= 0.05
        assert first_requests / 2000 <= 0.1


def test_the_fast_reader_reads_lab_messages_exactly_like_pypsrp(monkeypatch: pytest.MonkeyPatch) -> None:
    from pypsrp.messages import ErrorRecordMessage
    from pypsrp.serializer import Serializer

    from provisioner.executors.wire import LeafFastSerializer

    captured: list[tuple[str, Any]] = []
    original = Serializer.deserialize

    def spy(self: Serializer, element: Any, metadata: Any = None, clear: bool = True) -> Any:
        if clear and isinstance(element, str) and getattr(metadata, "object", None) in (None, ErrorRecordMessage):
            captured.append((element, metadata))
        return original(self, element, metadata, clear)

    monkeypatch.setattr(Serializer, "deserialize", spy)
    with running_lab() as lab, pool_for(lab) as pool:
        exact = PsrpExecutor(pool, encode_command, step_builders.StepOptions())
        grant(exact, ["judy.nakamura", "nobody", "Chris Taylor", "ivan.petrov", "sales"], TRUSTEES)
    monkeypatch.undo()
    assert len(captured) > 10
    for text, metadata in captured:
        assert plain(LeafFastSerializer().deserialize(text, metadata)) == plain(Serializer().deserialize(text,
                                                                                                           metadata))


def test_batches_run_with_fewer_collections_and_the_threshold_comes_back() -> None:
    before = gc.get_threshold()
    during: list[int] = []
    with running_lab() as lab, pool_for(lab) as pool:
        executor = BatchExecutor(pool, step_builders.StepOptions(), batch_size=2)
        mailboxes = [Identity("judy.nakamura"), Identity("ivan.petrov"), Identity("nobody")]
        observed = executor.observe(mailboxes, [Trustee(Identity(SERVICE))],
                                    progress=lambda _: during.append(gc.get_threshold()[0]))
    assert len(observed) == 3 and during and all(threshold >= YOUNG_GC_THRESHOLD for threshold in during)
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("a batch failed")
    assert gc.get_threshold() == before
