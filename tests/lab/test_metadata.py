"""GET_COMMAND_METADATA through pypsrp's public ``RunspacePool.get_command_metadata``, per profile and with RBAC
trims (which also decide what binds and what exists)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from provisioner_lab.api import MetadataQuery
from provisioner_lab.exchange import RoleTrim
from provisioner_lab.exchange.discovery import type_name, wildcard
from provisioner_lab.exchange.engine import EngineOptions, ExchangeEngine
from provisioner_lab.run import Lab, running_lab
from pypsrp.complex_objects import CommandMetadata
from pypsrp.powershell import PowerShell, RunspacePool

from .conftest import open_pool

SVC = "svc-codetwo"
PERMISSION_CMDLETS = ["Add-MailboxPermission", "Get-MailboxPermission", "Remove-MailboxPermission"]


@contextmanager
def pool_on(**lab_options: Any) -> Iterator[tuple[Lab, RunspacePool]]:
    with running_lab(**lab_options) as lab:
        pool = open_pool(lab.server, username=lab.username, password=lab.password)
        try:
            yield lab, pool
        finally:
            pool.close()


def by_name(entries: list[CommandMetadata]) -> dict[str, CommandMetadata]:
    return {entry.name: entry for entry in entries}


@pytest.mark.parametrize(
    ("profile", "automapping", "information_action"),
    [("exchange2010sp1", False, False), ("exchange2010", True, False), ("exchange2013", True, False),
     ("exchange2019", True, True)],
)
def test_metadata_per_profile(profile: str, automapping: bool, information_action: bool) -> None:
    with pool_on(profile=profile) as (lab, pool):  # NoLanguage, as the Exchange endpoint
        assert lab.engine.options.language_mode == "NoLanguage"
        entries = by_name(pool.get_command_metadata("*-MailboxPermission"))
        assert sorted(entries) == PERMISSION_CMDLETS
        add = entries["Add-MailboxPermission"]
        assert str(add.command_type) == "Cmdlet"
        assert add.namespace == lab.engine.profile.snapin
        assert add.output_type == ["Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject"]
        assert {"Identity", "User", "AccessRights", "InheritanceType", "Deny", "Confirm", "WhatIf",
                "ErrorAction", "Verbose"} <= set(add.parameters)
        assert ("AutoMapping" in add.parameters) is automapping
        assert ("InformationAction" in add.parameters) is information_action
        assert "GroupMailbox" not in add.parameters  # Exchange Online only
        identity = add.parameters["Identity"]
        assert identity.name == "Identity" and identity.switch_parameter is False and identity.dynamic is False
        assert identity.parameter_type == "Microsoft.Exchange.Configuration.Tasks.MailboxIdParameter"
        confirm = add.parameters["Confirm"]
        assert confirm.switch_parameter is True and confirm.aliases == ["cf"]
        assert confirm.parameter_type == "System.Management.Automation.SwitchParameter"
        assert add.parameters["AccessRights"].parameter_type == (
            "Microsoft.Exchange.Management.RecipientTasks.MailboxRights[]")


def test_metadata_names_wildcards_and_unknown_names() -> None:
    with pool_on() as (lab, pool):
        assert pool.get_command_metadata("Get-NoSuchThing") == []
        assert pool.get_command_metadata(["No-*"]) == []
        assert sorted(by_name(pool.get_command_metadata(["get-mailbox", "GET-USER"]))) == ["Get-Mailbox", "Get-User"]
        assert sorted(by_name(pool.get_command_metadata(["Get-Mailbox*", "Get-Mailbox"]))) == [
            "Get-Mailbox", "Get-MailboxPermission"]
        everything = by_name(pool.get_command_metadata("*"))
        # the lab's 7 Exchange cmdlets and the 2 core cmdlets Exchange keeps public
        assert len(everything) == 9 and "Get-DistributionGroupMember" in everything
        assert {"Select-Object", "Measure-Object"} <= set(everything)
        assert lab.engine.counters.metadata_requests == 5
        assert lab.engine.counters.pipelines == 0  # not a client pipeline


def test_rbac_trims_metadata_binding_and_commands() -> None:
    rbac = {"LAB-ADMIN": {"Add-MailboxPermission": {"AutoMapping", "deny"}, "Remove-MailboxPermission": None}}
    with pool_on(profile="exchange2013", rbac=rbac) as (lab, pool):
        entries = by_name(pool.get_command_metadata(PERMISSION_CMDLETS))
        assert sorted(entries) == ["Add-MailboxPermission", "Get-MailboxPermission"]
        add = entries["Add-MailboxPermission"]
        assert "AutoMapping" not in add.parameters and "Deny" not in add.parameters
        assert {"Identity", "User", "AccessRights"} <= set(add.parameters)

        ps = PowerShell(pool)
        ps.add_cmdlet("Add-MailboxPermission").add_parameters(
            {"Identity": "alice.wong", "User": SVC, "AccessRights": ["FullAccess"], "AutoMapping": False}
        )
        ps.invoke()
        [error] = ps.streams.error
        assert str(error) == "A parameter cannot be found that matches parameter name 'AutoMapping'."
        assert error.fq_error == "NamedParameterNotFound,Add-MailboxPermission"

        ps = PowerShell(pool)
        ps.add_cmdlet("Remove-MailboxPermission").add_parameters(
            {"Identity": "ivan.petrov", "User": SVC, "AccessRights": ["FullAccess"], "Confirm": False}
        )
        ps.invoke()
        [error] = ps.streams.error
        assert error.reason == "CommandNotFoundException"
        assert str(error).startswith("The term 'Remove-MailboxPermission' is not recognized")
        assert lab.engine.counters.writes == 0


def test_rbac_applies_only_to_the_named_account() -> None:
    engine = ExchangeEngine.from_seed(options=EngineOptions(rbac={
        "CONTOSO\\auditor": RoleTrim(cmdlets=frozenset({"Add-MailboxPermission"})),
    }))
    query = MetadataQuery(("Add-MailboxPermission",))
    assert engine.command_metadata(query, user="auditor").commands == []  # DOMAIN\\name also matches name
    [error] = engine.command_metadata(query, user="auditor").errors
    assert error.fq_error_id == "CommandNotFoundException,Microsoft.PowerShell.Commands.GetCommandCommand"
    assert [info.name for info in engine.command_metadata(query, user="lab-admin").commands] == [
        "Add-MailboxPermission"]
    assert engine.command_metadata(MetadataQuery(("Add-*",)), user="auditor").errors == []  # wildcards: no error
    assert engine.command_metadata(MetadataQuery(command_types=0x2), user=None).commands == []  # functions only


def test_parameter_sets_in_metadata() -> None:
    engine = ExchangeEngine.from_seed()
    [info] = engine.command_metadata(MetadataQuery(("Get-MailboxPermission",)), user=None).commands
    params = {param.name: param for param in info.parameters}
    [identity_set] = [pset for pset in params["Identity"].sets if pset.name == "AccessRights"]
    assert identity_set.mandatory and identity_set.position == 0 and identity_set.by_property_name
    assert not identity_set.by_value
    assert [pset.name for pset in params["Verbose"].sets] == ["__AllParameterSets"]


def test_wildcards_and_type_names() -> None:
    assert wildcard("*-MailboxPermission").match("add-mailboxpermission")
    assert wildcard("Get-Mailbo?").match("Get-Mailbox") and not wildcard("Get-Mailbo?").match("Get-Mailboxes")
    assert wildcard("Get-[MR]*").match("Get-Recipient") and not wildcard("Get-[MR]*").match("Get-User")
    assert wildcard("a`*b").match("a*b") and not wildcard("a`*b").match("axb")
    assert type_name("RecipientTypeDetails[]") == "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails[]"
    assert type_name("ActiveDirectorySecurityInheritance") == (
        "System.DirectoryServices.ActiveDirectorySecurityInheritance")
    assert type_name("Unlimited") == "Microsoft.Exchange.Data.Unlimited`1[System.UInt32]"
