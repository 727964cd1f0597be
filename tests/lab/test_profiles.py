"""Server profiles through the real pypsrp client: negotiated protocol, PSVersionTable, statements per pipeline,
parameters per release."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from provisioner_lab import clixml
from provisioner_lab.api import Argument, Invocation, Statement
from provisioner_lab.exchange.engine import EngineOptions, ExchangeEngine
from provisioner_lab.profiles import PROFILES, ServerProfile, get_profile
from provisioner_lab.run import Lab, running_lab
from pypsrp.powershell import PowerShell, RunspacePool

from .conftest import open_pool

SVC = "svc-codetwo"
MAILBOXES = ("alice.wong", "bob.meyer", "carol.diaz")


@contextmanager
def pool_on(profile: str, **lab_options: Any) -> Iterator[tuple[Lab, RunspacePool]]:
    with running_lab(profile=profile, **lab_options) as lab:
        pool = open_pool(lab.server, username=lab.username, password=lab.password)
        try:
            yield lab, pool
        finally:
            pool.close()


@pytest.fixture(params=["fast", "psrpcore"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the fast CREATE_PIPELINE reader and again with psrpcore's generic deserialiser."""
    if request.param == "psrpcore":

        def unsupported(data: bytes, **options: Any) -> Any:
            raise clixml.Unsupported("forced")

        monkeypatch.setattr(clixml, "parse_create_pipeline", unsupported)
    return str(request.param)


def test_profiles_and_lookup() -> None:
    assert set(PROFILES) == {"exchange2010", "exchange2010sp1", "exchange2013", "exchange2019"}
    assert get_profile(None).name == "exchange2019"
    assert get_profile("Exchange2010") is PROFILES["exchange2010"]
    assert get_profile(PROFILES["exchange2013"]) is PROFILES["exchange2013"]
    with pytest.raises(ValueError, match="unknown server profile"):
        get_profile("exchange2007")
    versions = {name: (p.protocol_version, p.ps_version) for name, p in PROFILES.items()}
    assert versions == {"exchange2010": ("2.1", "2.0"), "exchange2010sp1": ("2.1", "2.0"),
                        "exchange2013": ("2.2", "3.0"), "exchange2019": ("2.3", "5.1.17763.1")}
    assert [p.reads_extra_cmds for p in PROFILES.values()] == [False, False, True, True]


@pytest.mark.parametrize("name", list(PROFILES))
def test_negotiated_protocol_and_psversiontable_through_pypsrp(name: str) -> None:
    profile = PROFILES[name]
    with pool_on(name) as (_lab, pool):
        assert pool.protocol_version == profile.protocol_version
        assert pool.ps_version == "2.0"  # every PowerShell server says 2.0 in SESSION_CAPABILITY
        assert pool.serialization_version == "1.1.0.1"
        private = pool.application_private_data
        assert private is not None
        table = private.data["PSVersionTable"]
        assert table["PSVersion"] == profile.ps_version
        assert table["PSRemotingProtocolVersion"] == profile.protocol_version
        assert table["SerializationVersion"] == "1.1.0.1"
        assert table["BuildVersion"] == profile.build_version
        assert table["CLRVersion"] == profile.clr_version
        assert table["WSManStackVersion"] == profile.wsman_stack_version
        assert table["PSCompatibleVersions"] == list(profile.compatible_versions)
        assert ("PSEdition" in table) == (name == "exchange2019")


def _three_grants(pool: RunspacePool) -> PowerShell:
    ps = PowerShell(pool)
    for index, mailbox in enumerate(MAILBOXES):
        if index:
            ps.add_statement()
        ps.add_cmdlet("Add-MailboxPermission").add_parameters(
            {"Identity": mailbox, "User": SVC, "AccessRights": ["FullAccess"], "AutoMapping": False}
        )
    ps.invoke()
    return ps


def _granted(engine: ExchangeEngine) -> list[str]:
    return [mailbox for mailbox in MAILBOXES if engine.directory.has_full_access(mailbox, SVC)]


def test_protocol_21_runs_only_the_first_statement(parser: str) -> None:
    with pool_on("exchange2010") as (lab, pool):
        ps = _three_grants(pool)
        assert ps.had_errors is False and ps.streams.error == []
        assert len(ps.output) == 1  # only the first statement's ACE object
        assert lab.engine.counters.writes == 1
        assert lab.engine.counters.invocations["Add-MailboxPermission"] == 1
        assert _granted(lab.engine) == ["alice.wong"]


def test_protocol_22_runs_every_statement(parser: str) -> None:
    with pool_on("exchange2013") as (lab, pool):
        ps = _three_grants(pool)
        assert ps.had_errors is False and len(ps.output) == 3
        assert lab.engine.counters.writes == 3
        assert _granted(lab.engine) == list(MAILBOXES)


def test_automapping_missing_before_2010_sp2_fails_binding_through_pypsrp() -> None:
    with pool_on("exchange2010sp1") as (lab, pool):
        ps = PowerShell(pool)
        ps.add_cmdlet("Add-MailboxPermission").add_parameters(
            {"Identity": "alice.wong", "User": SVC, "AccessRights": ["FullAccess"], "AutoMapping": False}
        )
        ps.invoke()
        assert ps.had_errors is True and ps.output == []
        [error] = ps.streams.error
        assert str(error) == "A parameter cannot be found that matches parameter name 'AutoMapping'."
        assert error.fq_error == "NamedParameterNotFound,Add-MailboxPermission"
        assert error.reason == "ParameterBindingException"
        assert error.category == 5  # ErrorCategory.InvalidArgument
        assert str(error.message).startswith("InvalidArgument:")
        assert lab.engine.counters.writes == 0
        # without it the grant binds (and 2010 SP1 automaps unconditionally, which the lab does by default)
        ps = PowerShell(pool)
        ps.add_cmdlet("Add-MailboxPermission").add_parameters(
            {"Identity": "alice.wong", "User": SVC, "AccessRights": ["FullAccess"]}
        )
        ps.invoke()
        assert ps.had_errors is False and lab.engine.counters.writes == 1


def _binding_error(profile: str | ServerProfile, cmdlet: str, **parameters: Any) -> str | None:
    engine = ExchangeEngine.from_seed(options=EngineOptions(profile=profile))
    invocation = Invocation(cmdlet, tuple(Argument(name, value) for name, value in parameters.items()))
    result = engine.run([Statement((invocation,))], [], user="lab-admin")
    return None if result.failure is None else result.failure.fq_error_id


def test_parameters_follow_the_release() -> None:
    identity = {"Identity": "alice.wong"}
    # -AutoMapping: 2010 SP2 on
    for name, expected in (("exchange2010sp1", "NamedParameterNotFound,Add-MailboxPermission"),
                           ("exchange2010", None), ("exchange2019", None)):
        assert _binding_error(name, "Add-MailboxPermission", **identity, User=SVC, AccessRights="FullAccess",
                              AutoMapping=False, WhatIf=True) == expected
    # common parameters of the PowerShell version: InformationAction is 5.0, PipelineVariable 4.0
    assert _binding_error("exchange2013", "Get-Mailbox", **identity,
                          InformationAction="SilentlyContinue") == "NamedParameterNotFound,Get-Mailbox"
    assert _binding_error("exchange2013", "Get-Mailbox", **identity,
                          PipelineVariable="x") == "NamedParameterNotFound,Get-Mailbox"
    assert _binding_error("exchange2019", "Get-Mailbox", **identity, InformationAction="SilentlyContinue") is None
    # parameters of another product (Exchange Online only) do not exist on-premises
    assert _binding_error("exchange2019", "Get-MailboxPermission", **identity,
                          GroupMailbox=True) == "NamedParameterNotFound,Get-MailboxPermission"
    # a parameter of 2016+ is not in 2013, and neither is its parameter set
    assert _binding_error("exchange2013", "Remove-MailboxPermission", **identity,
                          ClearAutoMapping=True) == "NamedParameterNotFound,Remove-MailboxPermission"


def test_a_profile_object_goes_to_both_engine_and_server() -> None:
    with running_lab(profile=PROFILES["exchange2013"]) as lab:
        assert lab.engine.profile.name == "exchange2013" and lab.server.profile.name == "exchange2013"
    engine = ExchangeEngine.from_seed(options=EngineOptions(profile="exchange2010"))
    with running_lab(engine=engine) as lab:
        assert lab.server.profile.name == "exchange2010"
    with pytest.raises(ValueError), running_lab(engine=engine, profile="exchange2013"):
        pass
