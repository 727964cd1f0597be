"""Server-side projection: where the session has Select-Object -Property, reads ask only for what the tool reads;
outcomes are exactly those of unprojected reads, on every lab profile; a server that refuses it is read unprojected
for the rest of the session. Reads are sized apart from writes (``read_batch_size``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from provisioner_lab.exchange import EngineOptions, ExchangeEngine
from provisioner_lab.run import LAB_USER, Lab, running_lab

from provisioner.domain.model import Action, Identity, ItemState, Plan, PlanItem, Trustee
from provisioner.engine.apply import DEFAULT_READ_BATCH_SIZE, Engine
from provisioner.engine.resolve import Resolver
from provisioner.inputs.config import Connection, RunSettings
from provisioner.powershell.steps import StepOptions
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.psrp.runner import ClientRunner, read_facts
from provisioner.transport.runner import FixedSession
from tests import labcli
from tests.fake_runner import LabRunner

PROFILES = ["exchange2010sp1", "exchange2010", "exchange2013", "exchange2019"]
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
#: Demo mailboxes in every state: nothing, an orphaned SID entry, a Deny for the service account, an existing grant,
#: the admin's automapped grant, a name that is no one, a shared mailbox by SMTP address.
TARGETS = ["alice.wong", "carol.diaz", "judy.nakamura", "ivan.petrov", "sales@contoso.com", "nobody.here",
           "bob.meyer", "heidi.schmidt"]
NO_SELECT = {LAB_USER: {"Select-Object": None}}


def items(completed: Any) -> list[tuple[str, str, str, str]]:
    assert completed.returncode in (0, 1, 3), completed.stderr
    document = json.loads(completed.stdout)
    return [(item["mailbox"], item["trustee"], item["result"], (item.get("error") or {}).get("reason") or "")
            for item in document["items"]]


def run_cli(lab: Lab, folder: Path, *args: str) -> list[tuple[str, str, str, str]]:
    targets = [arg for mailbox in TARGETS for arg in ("-m", mailbox)]
    return items(labcli.run(lab, folder, *args, *targets, "--admin-user", ADMIN, "--service-account", SERVICE,
                            "--format", "json"))


def journey(lab: Lab, folder: Path) -> tuple[list[Any], int, int]:
    """audit, grant, audit again: the items of each, and the bytes the lab sent for the first audit."""
    before = lab.server.counters["bytes_out"]
    first = run_cli(lab, folder, "audit")
    audit_bytes = lab.server.counters["bytes_out"] - before
    extra = ["--accept-automapping"] if lab.engine.profile.name == "exchange2010sp1" else []
    granted = run_cli(lab, folder, "grant", "--no-journal", *extra)
    again = run_cli(lab, folder, "audit")
    return [first, granted, again], audit_bytes, lab.engine.counters.snapshot()["core_invocations"]


@pytest.mark.parametrize("profile", PROFILES)
def test_projected_and_unprojected_sessions_give_the_same_outcomes(profile: str, tmp_path: Path) -> None:
    with running_lab(profile=profile) as lab:
        projected, projected_bytes, selects = journey(lab, tmp_path)
    with running_lab(profile=profile, rbac=NO_SELECT) as lab:
        plain, plain_bytes, no_selects = journey(lab, tmp_path)
    assert projected == plain
    first, granted, _ = projected
    assert {result for _, _, result, _ in first} >= {"missing", "blocked", "failed", "present"}
    assert ("nobody.here", SERVICE, "failed", "ManagementObjectNotFoundException") in granted
    assert selects > 0 and no_selects == 0  # metadata without Select-Object: never sent
    # the whole audit, metadata included (which lists two more commands when projecting): still fewer bytes; the
    # bytes of one read alone are compared in tests/lab/test_core_cmdlets.py
    assert projected_bytes < plain_bytes, (projected_bytes, plain_bytes)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.fixture
def connection_to() -> Iterator[Any]:
    def connect(lab: Lab) -> Connection:
        return Connection(server="127.0.0.1", port=lab.port, auth="basic", username=lab.username, insecure_lab=True,
                          scheme="http", operation_timeout=5)
    yield connect


def observe(runner: ClientRunner, mailboxes: list[str]) -> Any:
    engine = Engine(FixedSession(runner), StepOptions(), RunSettings(retry_attempts=0))
    trustees = [Trustee(Identity(ADMIN), role="admin-user"), Trustee(Identity(SERVICE), role="service-account")]
    observed = engine.observe([Identity(name) for name in mailboxes], trustees)
    return {key: (seen.state, seen.explicit_allow, seen.error and seen.error.reason) for key, seen in observed.items()}


@pytest.mark.parametrize(("profile", "trim", "refusal"), [
    ("exchange2010", {"Select-Object": None}, "CommandNotFoundException"),
    ("exchange2019", {"Select-Object": None}, "CommandNotFoundException"),
    ("exchange2019", {"Select-Object": {"Property"}}, "NamedParameterNotFound"),
])
def test_a_refused_projection_falls_back_once_and_is_remembered_for_the_session(
        profile: str, trim: dict[str, Any], refusal: str, connection_to: Any) -> None:
    with running_lab(profile=profile) as lab, open_pool(connection_to(lab), lab.password) as client:
        # the reference: an account that has Select-Object
        expected = observe(ClientRunner(client, read_facts(client)), TARGETS)
    with running_lab(profile=profile, rbac={LAB_USER: trim}) as lab, open_pool(connection_to(lab),
                                                                                 lab.password) as client:
        facts = read_facts(client)
        assert not facts.projects  # the metadata says so: a real run never tries
        lab.engine.counters.reset()
        plain = observe(ClientRunner(client, facts), TARGETS)
        unprojected_pipelines = lab.engine.counters.pipelines
        # a server whose metadata claimed Select-Object -Property but refuses it when called
        claimed = replace(facts, commands={**(facts.commands or {}), "Select-Object": frozenset({"property"})})
        assert claimed.projects
        lab.engine.counters.reset()
        fallen_back = observe(ClientRunner(client, claimed), TARGETS)
        assert lab.engine.counters.pipelines == unprojected_pipelines + 1  # one refused read, then none
    assert fallen_back == plain == expected
    assert not claimed.projects
    error, origin = claimed.projection.refused
    assert error.fq_error_id.split(",")[0] == refusal and "select-object" in {origin.command.casefold(),
                                                                               error.target.casefold()}


# ---------------------------------------------------------------------------------------------- read sizes
def counted_engine(size: int) -> tuple[ExchangeEngine, LabRunner]:
    lab_engine = ExchangeEngine.generated(size, EngineOptions())
    return lab_engine, LabRunner(lab_engine)


def read_invocations(read_batch_size: int | None, size: int = 2500) -> dict[str, int]:
    lab_engine, runner = counted_engine(size)
    options: dict[str, Any] = {} if read_batch_size is None else {"read_batch_size": read_batch_size}
    engine = Engine(FixedSession(runner), StepOptions(), RunSettings(retry_attempts=0), **options)
    mailboxes = [Identity(f"user{index:06d}") for index in range(1, size + 1)]
    engine.mailboxes(mailboxes)  # resolved once (ids | Get-Mailbox per read batch)
    resolved = dict(lab_engine.counters.invocations)
    lab_engine.counters.reset()
    engine.observe(mailboxes, [Trustee(Identity(ADMIN), role="admin-user"),
                               Trustee(Identity(SERVICE), role="service-account")])
    return {"resolve": resolved.get("Get-Mailbox", 0), **lab_engine.counters.snapshot()["by_cmdlet"]}


def test_reads_take_2000_inputs_per_invocation_by_default_and_the_setting_otherwise() -> None:
    assert DEFAULT_READ_BATCH_SIZE >= 2000
    by_default = read_invocations(None)
    assert by_default == {"resolve": 2, "Get-Mailbox": 4, "Get-MailboxPermission": 4}  # 2 per trustee
    assert read_invocations(500) == {"resolve": 5, "Get-Mailbox": 10, "Get-MailboxPermission": 10}


def test_writes_still_batch_by_batch_size() -> None:
    lab_engine, runner = counted_engine(1200)
    engine = Engine(FixedSession(runner), StepOptions(automapping=False), RunSettings(retry_attempts=0),
                    batch_size=500)
    trustee = Trustee(Identity(SERVICE), role="service-account")
    plan = Plan(Action.GRANT, tuple(PlanItem(Identity(f"user{index:06d}"), trustee, ItemState.TO_ADD)
                                    for index in range(1, 1201)), (trustee,), True)
    engine.apply(plan)
    assert lab_engine.counters.invocations["Add-MailboxPermission"] == 3  # 500 + 500 + 200


def test_resolver_takes_the_engines_read_size() -> None:
    _, runner = counted_engine(10)
    assert Resolver(runner, StepOptions(), batch=7).batch == 7


def test_the_read_size_is_a_setting_checked_like_every_other(tmp_path: Path) -> None:
    with running_lab() as lab:
        bad = labcli.run(lab, tmp_path, "audit", "-m", "alice.wong", "--admin-user", ADMIN, "--read-batch-size", "0")
        assert bad.returncode == 2 and "--read-batch-size" in bad.stderr and "Traceback" not in bad.stderr
        config = tmp_path / "elsewhere" / "provisioner.toml"  # not the working folder's (found by discovery)
        config.parent.mkdir()
        config.write_text("[connection]\nread_batch_size = 0\n", encoding="utf-8")
        in_file = labcli.run(lab, tmp_path, "audit", "-m", "alice.wong", "--admin-user", ADMIN, "--config",
                             str(config))
        assert in_file.returncode == 2 and "read_batch_size" in in_file.stderr
        good = labcli.run(lab, tmp_path, "audit", "-m", "alice.wong", "--admin-user", ADMIN, "--read-batch-size", "3")
        assert good.returncode in (0, 3), good.stderr
