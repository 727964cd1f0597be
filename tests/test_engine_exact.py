"""The engine's outcomes are exact on every protocol: checked against the lab organisation's real state.

Runs the real engine (jobs.run -> Engine -> shapes) over :class:`tests.fake_runner.LabRunner`, the lab's Exchange
engine in-process; "2.1" drops every statement but the first, as a PowerShell 2.0 server (Exchange 2010) does.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from provisioner_lab.exchange.engine import ExchangeEngine

from provisioner.domain.model import Action, ErrorInfo, Identity, Result, Trustee
from provisioner.engine.trustees import TrusteeProblem
from provisioner.inputs.config import Connection, RunSettings
from provisioner.powershell.steps import StepOptions, lookup
from provisioner.runs.jobs import run
from provisioner.runs.result import Job
from provisioner.transport.facts import MissingCapability
from provisioner.transport.psrp.runner import ClientRunner
from provisioner.transport.runner import FixedSession, NotRunnable, Origin, Pipeline, Raw
from tests.fake_runner import LabRunner

SERVICE = Trustee(Identity("svc-codetwo@contoso.com"), automapping=False, role="service-account")
ADMIN = Trustee(Identity("sync.admin@contoso.com"), automapping=False, role="admin-user")
PROTOCOLS = ("2.1", "2.3")


def targets(count: int, missing_every: int = 0) -> tuple[Identity, ...]:
    return tuple(
        Identity(f"nobody{i:06d}" if missing_every and i % missing_every == 0 else f"user{i:06d}@contoso.com")
        for i in range(1, count + 1)
    )


def run_job(runner: LabRunner, action: Action, mailboxes: tuple[Identity, ...],
            trustees: tuple[Trustee, ...] = (SERVICE, ADMIN), batch_size: int = 500) -> list[tuple[str, str, str]]:
    job = Job(action, mailboxes, trustees, Connection(batch_size=batch_size))
    result = run(job, session=FixedSession(runner))
    return [(o.mailbox.value, o.trustee.identity.value, o.result.value) for o in result.outcomes]


def holds(engine: ExchangeEngine, mailbox: Identity, trustee: Trustee) -> bool:
    return engine.directory.has_full_access(mailbox.value, trustee.identity.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("batch_size", [500, 7])
def test_first_grant_then_noop_then_revoke_are_exact(protocol: str, batch_size: int) -> None:
    engine = ExchangeEngine.generated(40)
    runner = LabRunner(engine, protocol)
    mailboxes = targets(30, missing_every=10)
    first = run_job(runner, Action.GRANT, mailboxes, batch_size=batch_size)
    for mailbox, trustee, result in first:
        expected = "failed" if mailbox.startswith("nobody") else "granted"
        assert result == expected, (mailbox, trustee, result)
    existing = [mailbox for mailbox in mailboxes if not mailbox.value.startswith("nobody")]
    assert all(holds(engine, mailbox, trustee) for mailbox in existing for trustee in (SERVICE, ADMIN))
    writes = engine.counters.writes
    again = run_job(runner, Action.GRANT, mailboxes, batch_size=batch_size)
    assert Counter(result for *_, result in again) == {"already-present": 54, "failed": 6}
    assert engine.counters.writes == writes  # a no-op writes nothing
    revoked = run_job(runner, Action.REVOKE, mailboxes, batch_size=batch_size)
    assert Counter(result for *_, result in revoked) == {"removed": 54, "failed": 6}
    assert not any(holds(engine, m, t) for m in existing for t in (SERVICE, ADMIN))  # really removed, on 2.1 too


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mixed_state_is_attributed_by_mailbox_identity(protocol: str) -> None:
    engine = ExchangeEngine.generated(40)
    runner = LabRunner(engine, protocol)
    mailboxes = targets(24)
    run_job(runner, Action.GRANT, mailboxes[::3], trustees=(SERVICE,))  # every third one already has it
    outcomes = run_job(runner, Action.GRANT, mailboxes, trustees=(SERVICE,))
    for index, (mailbox, _, result) in enumerate(outcomes):
        assert result == ("already-present" if index % 3 == 0 else "granted"), mailbox
    assert all(holds(engine, mailbox, SERVICE) for mailbox in mailboxes)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_automapping_is_exact_for_every_mailbox(protocol: str) -> None:
    """Piped writes would link only the last mailbox: AutoMapping grants run one invocation each."""
    engine = ExchangeEngine.generated(20)
    runner = LabRunner(engine, protocol)
    mapped = Trustee(ADMIN.identity, automapping=True, role="admin-user")
    mailboxes = targets(12)
    outcomes = run_job(runner, Action.GRANT, mailboxes, trustees=(mapped,))
    assert {result for *_, result in outcomes} == {"granted"}
    for mailbox in mailboxes:
        delegates = [d.casefold() for d in engine.directory.delegates_of(mailbox.value)]
        assert any("sync.admin" in d for d in delegates), (mailbox, delegates)
    if protocol == "2.1":
        assert all(len(p.statements) == 1 for p in runner.pipelines)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unknown_trustee_stops_the_run_before_anything_is_written(protocol: str) -> None:
    engine = ExchangeEngine.generated(10)
    runner = LabRunner(engine, protocol)
    ghost = Trustee(Identity("ghost@contoso.com"))
    with pytest.raises(TrusteeProblem, match=re.escape("trustee 'ghost@contoso.com' was not found")):
        run_job(runner, Action.GRANT, targets(8), trustees=(ghost, SERVICE))
    assert engine.counters.writes == 0  # the good trustee is not granted alone either


def test_statements_are_never_sent_to_a_protocol_21_server() -> None:
    """The runner refuses what a 2.1 server would silently cut short (never sent)."""
    runner = ClientRunner(client=None, facts=LabRunner(ExchangeEngine.generated(1), "2.1").facts)  # type: ignore[arg-type]
    options = StepOptions()
    with pytest.raises(NotRunnable):
        runner.run(Pipeline(((lookup(options),), (lookup(options),))))
    with pytest.raises(NotRunnable):
        runner.run(Pipeline.of(lookup(options), input=[]))  # Get-Mailbox without input would list every mailbox


def test_a_protocol_21_server_runs_only_the_first_statement() -> None:
    """What the fake models (and the lab's 2.1 profile serves): a batch of three removals removes one."""
    engine = ExchangeEngine.generated(5)
    for protocol, expected in (("2.1", 1), ("2.3", 3)):
        runner = LabRunner(engine, protocol)
        run_job(runner, Action.GRANT, targets(3), trustees=(SERVICE,))
        writes = engine.counters.writes
        from provisioner.domain.model import ItemState, PlanItem
        from provisioner.powershell.steps import revoke

        chain = tuple((revoke(PlanItem(m, SERVICE, ItemState.TO_REMOVE), StepOptions()).command,) for m in targets(3))
        runner.run(Pipeline(chain))
        assert engine.counters.writes - writes == expected


def test_missing_automapping_is_refused_before_anything_is_sent() -> None:
    engine = ExchangeEngine.generated(5)
    commands = {"Get-Mailbox": frozenset({"identity"}), "Get-MailboxPermission": frozenset({"identity", "user"}),
                "Add-MailboxPermission": frozenset({"identity", "user", "accessrights", "inheritancetype"}),
                "Remove-MailboxPermission": frozenset({"identity", "user", "accessrights", "inheritancetype",
                                                       "confirm"})}
    runner = LabRunner(engine, "2.1", commands)
    with pytest.raises(MissingCapability, match=r"grant it makes is automapped.*--accept-automapping"):
        run_job(runner, Action.GRANT, targets(3))
    assert runner.pipelines == []
    job = Job(Action.GRANT, targets(3), (SERVICE,), Connection(), automapping_unsupported_ok=True)
    result = run(job, session=FixedSession(runner))
    assert {o.result for o in result.outcomes} == {Result.GRANTED}
    assert all(p.parameter("AutoMapping") is None for pipeline in runner.pipelines for chain in pipeline.statements
               for p in chain)


def test_a_removal_not_visible_yet_is_unknown_never_removed() -> None:
    """Remove outputs nothing: it is read back; behind replication (no -DomainController) it is not reported done."""
    from provisioner_lab.exchange.engine import EngineOptions

    from provisioner.inputs.config import RunSettings

    now = [0.0]
    engine = ExchangeEngine.generated(10, EngineOptions(replication_delay_seconds=60), clock=lambda: now[0])
    runner = LabRunner(engine, "2.3")
    mailboxes = targets(4)
    run_job(runner, Action.GRANT, mailboxes, trustees=(SERVICE,))
    now[0] += 120  # the grants have replicated
    job = Job(Action.REVOKE, mailboxes, (SERVICE,), Connection())
    result = run(job, session=FixedSession(runner), settings=RunSettings(verify_delay_seconds=0))
    assert {o.result for o in result.outcomes} == {Result.UNKNOWN}
    assert all("not visible" in o.detail for o in result.outcomes)


@pytest.mark.parametrize(("verify_proven", "reads"), [(False, 1), (True, 2)])
def test_proven_grants_are_reread_only_when_asked(verify_proven: bool, reads: int) -> None:
    from provisioner.inputs.config import RunSettings

    engine = ExchangeEngine.generated(10)
    runner = LabRunner(engine, "2.3")
    job = Job(Action.GRANT, targets(6), (SERVICE,), Connection())
    run(job, session=FixedSession(runner), settings=RunSettings(verify_proven=verify_proven))
    permission_reads = [p for p in runner.pipelines if str(p.statements[0][-1].cmdlet) == "Get-MailboxPermission"
                        and p.input is not None]  # (not the trustee's one check, made before any read)
    assert len(permission_reads) == reads


class LostReplies(LabRunner):
    """Writes run on the server, but their replies are lost (a transient failure comes back instead), as when a
    gateway times out after Exchange did the work; ``apply=False``: they never ran."""

    def __init__(self, engine: ExchangeEngine, *, apply: bool) -> None:
        super().__init__(engine, "2.3")
        self.apply = apply

    def run(self, pipeline: Pipeline) -> Raw:
        cmdlets = {str(command.cmdlet) for chain in pipeline.statements for command in chain}
        if not cmdlets & {"Add-MailboxPermission", "Remove-MailboxPermission"}:
            return super().run(pipeline)
        if self.apply:
            super().run(pipeline)
        lost = ErrorInfo("the gateway timed out", reason="TimeoutException", category="OperationTimeout")
        raw = Raw()
        raw.failure = (lost, Origin())
        return raw


@pytest.mark.parametrize("applied", [True, False])
def test_a_write_whose_reply_was_lost_is_decided_by_a_read(applied: bool) -> None:
    engine = ExchangeEngine.generated(6)
    mailboxes = targets(4)
    job = Job(Action.GRANT, mailboxes, (SERVICE,), Connection())
    settings = RunSettings(retry_attempts=2, retry_base_seconds=0.001, retry_max_seconds=0.1)
    result = run(job, session=FixedSession(LostReplies(engine, apply=applied)), settings=settings)
    expected = Result.GRANTED if applied else Result.FAILED
    assert {o.result for o in result.outcomes} == {expected}  # never granted without proof, never lost if done
    assert all(holds(engine, mailbox, SERVICE) == applied for mailbox in mailboxes)
