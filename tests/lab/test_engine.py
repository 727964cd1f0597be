"""The lab Exchange engine, driven through ``run()`` with Statement objects; outcomes checked on its state."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from provisioner_lab.api import Argument, Invocation, LabEnum, LabObject, PipelineResult, Statement
from provisioner_lab.exchange import EngineOptions, ExchangeEngine, demo_engine, generate

USER = "CONTOSO\\sync.admin"
SVC = "svc-codetwo"


def cmd(name: str, *positional: Any, **named: Any) -> Invocation:
    """An Invocation; ``named`` keys are sent as given (``AccessRights=...``); ``None`` means a bare switch."""
    arguments = [Argument(None, value) for value in positional]
    arguments += [Argument(key, value) for key, value in named.items()]
    return Invocation(name, tuple(arguments))


def run(
    engine: ExchangeEngine,
    *statements: Invocation | tuple[Invocation, ...],
    pipeline_input: list[Any] | None = None,
    user: str | None = USER,
) -> PipelineResult:
    built = [Statement(item if isinstance(item, tuple) else (item,)) for item in statements]
    return engine.run(built, pipeline_input or [], user=user)


def grant(mailbox: str, trustee: str = SVC, **extra: Any) -> Invocation:
    return cmd("Add-MailboxPermission", Identity=mailbox, User=trustee, AccessRights=["FullAccess"], **extra)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine() -> ExchangeEngine:
    return demo_engine()


def explicit(engine: ExchangeEngine, mailbox: str, trustee: str) -> list[Any]:
    sid = engine.directory.principal(trustee).sid
    return [entry for entry in engine.directory.permissions_of(mailbox) if entry.sid == sid]


# ---------------------------------------------------------------------------------------------- grant
def test_grant_writes_an_explicit_full_access_entry_and_outputs_the_ace(engine: ExchangeEngine) -> None:
    result = run(engine, grant("alice.wong", InheritanceType="All", AutoMapping=False))
    assert result.failure is None and result.errors == [] and result.warnings == []
    [entry] = explicit(engine, "alice.wong", SVC)
    assert entry.rights == 1 and not entry.deny and not entry.inherited and entry.inheritance == "All"
    assert engine.directory.has_full_access("alice.wong", "CONTOSO\\svc-codetwo")

    [ace] = result.output
    assert isinstance(ace, LabObject)
    assert ace.type_names[0] == "Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject"
    assert ace.type_names[-1] == "System.Object"
    props = ace.properties
    assert set(props) >= {"Identity", "User", "AccessRights", "IsInherited", "Deny", "InheritanceType", "IsValid",
                          "ObjectState"}
    assert props["Identity"].type_names[0] == "Microsoft.Exchange.Data.Directory.ADObjectId"
    assert props["Identity"].to_string == "contoso.com/Sales/Alice Wong"
    assert props["User"].to_string == "CONTOSO\\svc-codetwo"
    [rights] = props["AccessRights"]
    assert isinstance(rights, LabEnum)
    assert rights.type_names[0] == "Microsoft.Exchange.Management.RecipientTasks.MailboxRights"
    assert (rights.text, rights.value) == ("FullAccess", 1)
    assert props["InheritanceType"].text == "All"
    assert props["InheritanceType"].type_names[0] == "System.DirectoryServices.ActiveDirectorySecurityInheritance"
    assert props["Deny"] is False and props["IsInherited"] is False


def test_rights_merge_into_one_entry_with_flags_text(engine: ExchangeEngine) -> None:
    run(engine, cmd("Add-MailboxPermission", "bob.meyer", User=SVC, AccessRights="ReadPermission"))
    run(engine, cmd("Add-MailboxPermission", "bob.meyer", User=SVC, AccessRights=["fullaccess", "DeleteItem"]))
    [entry] = explicit(engine, "bob.meyer", SVC)
    assert entry.rights == 1 | 65536 | 131072
    assert entry.rights_names == ["FullAccess", "DeleteItem", "ReadPermission"]
    result = run(engine, cmd("Get-MailboxPermission", "bob.meyer", User=SVC))
    [ace] = result.output
    assert ace.properties["AccessRights"][0].text == "FullAccess, DeleteItem, ReadPermission"
    assert ace.properties["AccessRights"][0].value == 1 + 65536 + 131072


def test_regrant_warns_changes_nothing_and_still_outputs(engine: ExchangeEngine) -> None:
    run(engine, grant("alice.wong"))
    writes = engine.counters.writes
    before = engine.directory.permissions_of("alice.wong")
    result = run(engine, grant("alice.wong"))
    assert result.failure is None and result.errors == []
    assert len(result.warnings) == 1 and "CONTOSO\\svc-codetwo" in result.warnings[0]
    assert len(result.output) == 1
    assert engine.directory.permissions_of("alice.wong") == before
    assert engine.counters.writes == writes


def test_automapping_default_true_only_for_user_mailbox_trustees(engine: ExchangeEngine) -> None:
    run(engine, grant("carol.diaz", "sync.admin@contoso.com"))
    assert engine.directory.delegates_of("carol.diaz") == ["CONTOSO\\sync.admin"]
    run(engine, grant("dave.okafor", SVC))  # no mailbox: never automapped
    run(engine, grant("erin.lindqvist", "Mailbox Sync Admins"))  # a group: skipped
    assert engine.directory.delegates_of("dave.okafor") == []
    assert engine.directory.delegates_of("erin.lindqvist") == []
    run(engine, grant("grace.hopper", "sync.admin", AutoMapping=False))
    assert engine.directory.delegates_of("grace.hopper") == []
    assert engine.directory.has_full_access("grace.hopper", "sync.admin")


def test_deny_writes_a_deny_entry(engine: ExchangeEngine) -> None:
    result = run(engine, grant("heidi.schmidt", Deny=None))
    assert result.failure is None
    [entry] = explicit(engine, "heidi.schmidt", SVC)
    assert entry.deny and entry.rights == 1
    assert not engine.directory.has_full_access("heidi.schmidt", SVC)
    [ace] = run(engine, cmd("Get-MailboxPermission", Identity="heidi.schmidt", User=SVC)).output
    assert ace.properties["Deny"] is True


def test_seeded_deny_and_orphan_entries(engine: ExchangeEngine) -> None:
    [deny] = explicit(engine, "judy.nakamura", SVC)
    assert deny.deny
    result = run(engine, cmd("Get-MailboxPermission", "carol.diaz"))
    users = [ace.properties["User"].to_string for ace in result.output]
    orphan = "S-1-5-21-3623811015-3361044348-30300820-1042"
    assert orphan in users
    assert users[0] == "NT AUTHORITY\\SELF"
    assert "CONTOSO\\Domain Admins" in users and "NT AUTHORITY\\SYSTEM" in users
    inherited_denies = [a.properties["User"].to_string for a in result.output
                        if a.properties["IsInherited"] and a.properties["Deny"]]
    assert set(inherited_denies) == {"CONTOSO\\Administrator", "CONTOSO\\Domain Admins", "CONTOSO\\Enterprise Admins",
                                     "CONTOSO\\Organization Management"}
    only = run(engine, cmd("Get-MailboxPermission", "carol.diaz", User=orphan)).output
    assert [a.properties["User"].to_string for a in only] == [orphan]


# ---------------------------------------------------------------------------------------------- identities
@pytest.mark.parametrize(
    "identity",
    ["alice.wong", "Alice Wong", "ALICE.WONG@contoso.com", "alice.wong@CONTOSO.com", "CONTOSO\\alice.wong",
     "contoso\\Alice.Wong", "CN=Alice Wong,OU=Sales,DC=contoso,DC=com", "contoso.com/Sales/Alice Wong"],
)
def test_identity_forms_resolve(engine: ExchangeEngine, identity: str) -> None:
    result = run(engine, cmd("Get-Mailbox", identity))
    assert result.errors == [] and [o.properties["Alias"] for o in result.output] == ["alice.wong"]


def test_guid_and_exchange_guid_resolve(engine: ExchangeEngine) -> None:
    alice = engine.directory.mailbox("alice.wong")
    for value in (alice.guid, alice.guid.upper(), alice.exchange_guid):
        assert run(engine, cmd("Get-MailboxPermission", value, User=SVC)).errors == []


def test_unknown_mailbox_is_non_terminating_and_later_statements_run(engine: ExchangeEngine) -> None:
    result = run(engine, grant("nobody@contoso.com"), grant("bob.meyer"))
    assert result.failure is None
    [error] = result.errors
    assert error.message == (
        "The operation couldn't be performed because object 'nobody@contoso.com' couldn't be found on "
        "'dc01.contoso.com'."
    )
    assert error.reason == "ManagementObjectNotFoundException"
    assert error.exception_type == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert error.category == "InvalidData"
    assert error.target_object == "nobody@contoso.com"
    assert "[FailureCategory=Cmdlet-ManagementObjectNotFoundException]" in error.fq_error_id
    assert error.fq_error_id.endswith(",Microsoft.Exchange.Management.RecipientTasks.AddMailboxPermission")
    assert error.command == "Add-MailboxPermission"
    assert len(result.output) == 1
    assert engine.directory.has_full_access("bob.meyer", SVC)


def test_unknown_mailbox_names_the_dc_given(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Get-MailboxPermission", "ghost", DomainController="dc02.contoso.com"))
    assert result.errors[0].message.endswith("couldn't be found on 'dc02.contoso.com'.")


def test_unknown_trustee_is_non_terminating(engine: ExchangeEngine) -> None:
    result = run(engine, grant("alice.wong", "ghost.user"), grant("bob.meyer"))
    assert result.failure is None
    [error] = result.errors
    assert error.reason == "ManagementObjectNotFoundException" and error.category == "InvalidData"
    assert error.target_object == "ghost.user"
    assert explicit(engine, "alice.wong", SVC) == []
    assert engine.directory.has_full_access("bob.meyer", SVC)


def test_ambiguous_mailbox_and_trustee(engine: ExchangeEngine) -> None:
    result = run(engine, grant("Chris Taylor"))
    [error] = result.errors
    assert error.reason == "ManagementObjectAmbiguousException"
    assert error.target_object == "Chris Taylor"
    result = run(engine, grant("alice.wong", "Chris Taylor"))
    [error] = result.errors
    assert error.reason == "ManagementObjectAmbiguousException"
    assert error.message == ('There are multiple users or groups matching the identity "Chris Taylor". '
                             "Please specify a unique value.")
    # unique forms of the same people still work
    assert run(engine, grant("chris.taylor@contoso.com", "christopher.taylor")).errors == []


def test_trustee_compared_by_sid_not_string(engine: ExchangeEngine) -> None:
    run(engine, grant("alice.wong", "svc-codetwo@contoso.com"))
    for form in ("CONTOSO\\svc-codetwo", "svc-codetwo", "CodeTwo Sync Service", engine.directory.principal(SVC).sid):
        [ace] = run(engine, cmd("Get-MailboxPermission", "alice.wong", User=form)).output
        assert ace.properties["User"].to_string == "CONTOSO\\svc-codetwo"
    # re-grant through another form of the same principal is recognised as already present
    assert run(engine, grant("alice.wong", "CONTOSO\\SVC-CODETWO")).warnings


# ---------------------------------------------------------------------------------------------- binding
def _failure(result: PipelineResult) -> Any:
    assert result.failure is not None, result
    return result.failure


def test_unknown_parameter_fails_the_pipeline(engine: ExchangeEngine) -> None:
    result = run(engine, grant("alice.wong", Bogus=1), grant("bob.meyer"))
    failure = _failure(result)
    assert failure.fq_error_id == "NamedParameterNotFound,Add-MailboxPermission"
    assert failure.reason == "ParameterBindingException" and failure.category == "InvalidArgument"
    assert failure.message == "A parameter cannot be found that matches parameter name 'Bogus'."
    assert not engine.directory.has_full_access("bob.meyer", SVC)  # the pipeline stopped


def test_parameter_prefixes_and_case(engine: ExchangeEngine) -> None:
    result = run(engine, Invocation("add-mailboxpermission", (
        Argument("ident", "alice.wong"), Argument("us", SVC), Argument("ACCESS", "FullAccess"),
        Argument("autom", False),
    )))
    assert result.failure is None and engine.directory.has_full_access("alice.wong", SVC)
    failure = _failure(run(engine, Invocation("Add-MailboxPermission", (Argument("A", "FullAccess"),))))
    assert failure.fq_error_id == "AmbiguousParameter,Add-MailboxPermission"
    assert "-AccessRights" in failure.message and "-AutoMapping" in failure.message


def test_common_parameters_accepted(engine: ExchangeEngine) -> None:
    result = run(engine, grant("alice.wong", ErrorAction="Stop", WarningAction="Continue", Verbose=None, Confirm=False,
                               OutVariable="x"))
    assert result.failure is None and engine.directory.has_full_access("alice.wong", SVC)


def test_missing_mandatory_parameter(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, cmd("Add-MailboxPermission", "alice.wong", User=SVC)))
    assert failure.fq_error_id == "MissingMandatoryParameter,Add-MailboxPermission"
    assert "AccessRights" in failure.message
    failure = _failure(run(engine, cmd("Get-MailboxPermission", User=SVC)))
    assert failure.fq_error_id == "MissingMandatoryParameter,Get-MailboxPermission"


def test_null_or_empty_mandatory_identity_is_refused(engine: ExchangeEngine) -> None:
    assert _failure(run(engine, cmd("Get-MailboxPermission", Identity=None))).fq_error_id.startswith(
        "ParameterArgumentValidationErrorNullNotAllowed")
    assert _failure(run(engine, cmd("Get-MailboxPermission", Identity=""))).fq_error_id.startswith(
        "ParameterArgumentValidationErrorEmptyStringNotAllowed")


def test_string_for_boolean_is_a_binding_error(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, grant("alice.wong", AutoMapping="false")))
    assert failure.fq_error_id == "ParameterArgumentTransformationError,Add-MailboxPermission"
    assert failure.reason == "ParameterBindingArgumentTransformationException"
    assert "Boolean parameters accept only Boolean values and numbers" in failure.message
    assert explicit(engine, "alice.wong", SVC) == []
    assert run(engine, grant("alice.wong", AutoMapping=0)).failure is None  # numbers are fine


def test_bad_enum_values(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, cmd("Add-MailboxPermission", "alice.wong", User=SVC, AccessRights="FullAcces")))
    assert failure.fq_error_id == "CannotConvertArgumentNoMessage,Add-MailboxPermission"
    assert "FullAcces" in failure.message and "FullAccess" in failure.message
    assert _failure(run(engine, grant("alice.wong", InheritanceType="Everything"))).fq_error_id.startswith(
        "CannotConvertArgumentNoMessage")
    assert _failure(run(engine, cmd("Get-Mailbox", RecipientTypeDetails="BigMailbox"))).fq_error_id.startswith(
        "CannotConvertArgumentNoMessage")
    assert run(engine, grant("alice.wong", InheritanceType="selfandchildren")).failure is None


def test_switch_and_result_size_types(engine: ExchangeEngine) -> None:
    assert _failure(run(engine, grant("alice.wong", Deny="yes"))).reason.startswith("ParameterBinding")
    assert run(engine, grant("alice.wong", Deny=False)).failure is None
    assert _failure(run(engine, cmd("Get-Mailbox", ResultSize="lots"))).fq_error_id.startswith(
        "CannotConvertArgumentNoMessage")
    assert len(run(engine, cmd("Get-Mailbox", ResultSize=2)).output) == 2
    assert len(run(engine, cmd("Get-Mailbox", ResultSize="unlimited")).output) == 15


def test_duplicate_and_extra_positional_arguments(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, Invocation("Get-Mailbox", (Argument("Identity", "a"), Argument("identity", "b")))))
    assert failure.fq_error_id == "ParameterAlreadyBound,Get-Mailbox"
    failure = _failure(run(engine, cmd("Get-MailboxPermission", "alice.wong", "bob.meyer")))
    assert failure.fq_error_id == "PositionalParameterNotFound,Get-MailboxPermission"


def test_parameters_from_different_sets(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, cmd("Get-Mailbox", Identity="alice.wong", Anr="al")))
    assert failure.fq_error_id == "AmbiguousParameterSet,Get-Mailbox"
    # as in PowerShell, a positional value with no positional slot left in the remaining sets:
    failure = _failure(run(engine, cmd("Get-Mailbox", "alice.wong", Anr="al")))
    assert failure.fq_error_id == "PositionalParameterNotFound,Get-Mailbox"


def test_unknown_cmdlet(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, cmd("Get-Process")))
    assert failure.reason == "CommandNotFoundException" and failure.category == "ObjectNotFound"
    assert failure.fq_error_id == "CommandNotFoundException"
    assert "'Get-Process' is not recognized" in failure.message


# ---------------------------------------------------------------------------------------------- pipelines
def test_get_mailbox_by_ou_piped_into_get_mailbox_permission(engine: ExchangeEngine) -> None:
    run(engine, grant("bob.meyer"))
    result = run(engine, (cmd("Get-Mailbox", OrganizationalUnit="contoso.com/Sales"),
                          cmd("Get-MailboxPermission", User=SVC)))
    assert result.failure is None and result.errors == []
    assert [ace.properties["Identity"].to_string for ace in result.output] == ["contoso.com/Sales/Bob Meyer"]


def test_get_mailbox_piped_into_add_mailbox_permission(engine: ExchangeEngine) -> None:
    result = run(engine, (cmd("Get-Mailbox", OrganizationalUnit="Staff", RecipientTypeDetails="UserMailbox"),
                          cmd("Add-MailboxPermission", User=SVC, AccessRights="FullAccess", AutoMapping=False)))
    assert result.failure is None and result.errors == []
    staff = ["carol.diaz", "dave.okafor", "erin.lindqvist", "frank.oconnor", "grace.hopper", "heidi.schmidt",
             "christopher.taylor"]
    assert len(result.output) == len(staff)
    assert all(engine.directory.has_full_access(alias, SVC) for alias in staff)
    assert not engine.directory.has_full_access("alice.wong", SVC)


def test_plain_strings_do_not_bind_to_mailbox_permission_identity(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Get-MailboxPermission", User=SVC), pipeline_input=["alice.wong", "bob.meyer"])
    assert result.failure is None and result.output == []
    assert [e.fq_error_id for e in result.errors] == ["InputObjectNotBound,Get-MailboxPermission"] * 2
    assert result.errors[0].target_object == "alice.wong"
    add = cmd("Add-MailboxPermission", User=SVC, AccessRights="FullAccess")
    result = run(engine, add, pipeline_input=["alice.wong"])
    assert [e.fq_error_id for e in result.errors] == ["InputObjectNotBound,Add-MailboxPermission"]
    assert not engine.directory.has_full_access("alice.wong", SVC)


def test_objects_with_identity_property_bind_by_property_name(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Get-MailboxPermission", User="sync.admin"),
                 pipeline_input=[{"Identity": "sales@contoso.com"}])
    assert result.errors == [] and len(result.output) == 1


def test_strings_bind_by_value_to_get_mailbox_and_group_members(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Get-Mailbox"), pipeline_input=["alice.wong", "bob.meyer@contoso.com"])
    assert [o.properties["Alias"] for o in result.output] == ["alice.wong", "bob.meyer"]
    result = run(engine, cmd("Get-DistributionGroupMember"), pipeline_input=["Sales Team"])
    assert {o.properties["Name"] for o in result.output} == {"Alice Wong", "Bob Meyer", "Sales Managers"}


def test_empty_upstream_runs_nothing(engine: ExchangeEngine) -> None:
    result = run(engine, (cmd("Get-Mailbox", Filter="Alias -eq 'nobody'"), cmd("Get-MailboxPermission")))
    assert result.failure is None and result.errors == [] and result.output == []


def test_missing_mandatory_with_pipeline_input(engine: ExchangeEngine) -> None:
    result = run(engine, (cmd("Get-Mailbox", "alice.wong"), cmd("Add-MailboxPermission", User=SVC)))
    # the Instance set could still take the record, so PowerShell only finds out per record
    assert result.failure is None
    assert [e.fq_error_id for e in result.errors] == ["InputObjectMissingMandatory,Add-MailboxPermission"]
    assert "AccessRights" in result.errors[0].message
    result = run(engine, (cmd("Get-Mailbox", "alice.wong"), cmd("Get-DistributionGroupMember", Bogus=1)))
    assert _failure(result).fq_error_id == "NamedParameterNotFound,Get-DistributionGroupMember"


def test_multiple_statements_run_in_order(engine: ExchangeEngine) -> None:
    result = run(engine, grant("alice.wong"), cmd("Get-MailboxPermission", "alice.wong", User=SVC))
    assert len(result.output) == 2
    assert result.output[1].properties["User"].to_string == "CONTOSO\\svc-codetwo"


# ---------------------------------------------------------------------------------------------- language mode
def test_no_language_refuses_scripts(engine: ExchangeEngine) -> None:
    result = engine.run([Statement((grant("bob.meyer"),)),
                         Statement((Invocation("Get-Mailbox | Select Name", is_script=True),))], [], user=USER)
    failure = _failure(result)
    assert failure.message == ("The syntax is not supported by this runspace. This can occur if the runspace is in "
                               "no-language mode.")
    assert failure.exception_type == "System.Management.Automation.ParseException"
    assert failure.fq_error_id == "ScriptsNotAllowed"
    assert not engine.directory.has_full_access("bob.meyer", SVC)  # nothing ran


# ---------------------------------------------------------------------------------------------- remove
def test_remove_without_confirm_false_fails_as_non_interactive(engine: ExchangeEngine) -> None:
    run(engine, grant("alice.wong", "sync.admin"))
    for extra in ({}, {"Confirm": None}, {"Confirm": True}):
        result = run(engine, cmd("Remove-MailboxPermission", "alice.wong", User="sync.admin",
                                 AccessRights="FullAccess", **extra))
        failure = _failure(result)
        assert failure.reason == "HostException"
        assert "NonInteractive" in failure.message
    assert engine.directory.has_full_access("alice.wong", "sync.admin")


def test_remove_with_confirm_false(engine: ExchangeEngine) -> None:
    run(engine, grant("alice.wong", "sync.admin"))
    assert engine.directory.delegates_of("alice.wong") == ["CONTOSO\\sync.admin"]
    result = run(engine, cmd("Remove-MailboxPermission", "alice.wong", User="sync.admin", AccessRights="FullAccess",
                             Confirm=False))
    assert result.failure is None and result.errors == [] and result.warnings == []
    assert result.output == []
    assert not engine.directory.has_full_access("alice.wong", "sync.admin")
    assert engine.directory.delegates_of("alice.wong") == []


def test_remove_whatif_changes_nothing(engine: ExchangeEngine) -> None:
    run(engine, grant("alice.wong"))
    remove = cmd("Remove-MailboxPermission", "alice.wong", User=SVC, AccessRights="FullAccess", WhatIf=None)
    result = run(engine, remove)
    assert result.failure is None and engine.directory.has_full_access("alice.wong", SVC)


def test_remove_missing_ace_warns(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Remove-MailboxPermission", "alice.wong", User=SVC, AccessRights="FullAccess",
                             Confirm=False))
    assert result.failure is None and result.errors == []
    assert result.warnings == [
        'Can\'t remove the access control entry on the object "CN=Alice Wong,OU=Sales,DC=contoso,DC=com" for '
        'account "CONTOSO\\svc-codetwo" because the ACE doesn\'t exist on the object.'
    ]


def test_remove_inherited_ace_is_ignored_with_warning(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Remove-MailboxPermission", "alice.wong", User="NT AUTHORITY\\SYSTEM",
                             AccessRights="FullAccess", Confirm=False))
    assert result.warnings and result.warnings[0].startswith(
        "An inherited access control entry has been specified: [Rights: CreateChild, ControlType: Allow]")
    assert len(run(engine, cmd("Get-MailboxPermission", "alice.wong", User="NT AUTHORITY\\SYSTEM")).output) == 1


def test_remove_deny_needs_deny_switch(engine: ExchangeEngine) -> None:
    remove = {"User": SVC, "AccessRights": "FullAccess", "Confirm": False}
    result = run(engine, cmd("Remove-MailboxPermission", "judy.nakamura", **remove))
    assert result.warnings and explicit(engine, "judy.nakamura", SVC)
    result = run(engine, cmd("Remove-MailboxPermission", "judy.nakamura", Deny=None, **remove))
    assert result.warnings == [] and explicit(engine, "judy.nakamura", SVC) == []


def test_remove_partial_rights_keeps_the_rest(engine: ExchangeEngine) -> None:
    run(engine, cmd("Add-MailboxPermission", "alice.wong", User=SVC, AccessRights=["FullAccess", "ReadPermission"]))
    run(engine, cmd("Remove-MailboxPermission", "alice.wong", User=SVC, AccessRights="FullAccess", Confirm=False))
    [entry] = explicit(engine, "alice.wong", SVC)
    assert entry.rights == 131072


def test_remove_orphaned_sid_entry(engine: ExchangeEngine) -> None:
    orphan = "S-1-5-21-3623811015-3361044348-30300820-1042"
    result = run(engine, cmd("Remove-MailboxPermission", "carol.diaz", User=orphan, AccessRights="FullAccess",
                             Confirm=False))
    assert result.errors == [] and result.warnings == []
    assert all(entry.sid != orphan for entry in engine.directory.permissions_of("carol.diaz"))


# ---------------------------------------------------------------------------------------------- selectors
def test_filters(engine: ExchangeEngine) -> None:
    def aliases(text: str) -> list[str]:
        result = run(engine, cmd("Get-Mailbox", Filter=text, ResultSize="Unlimited"))
        assert result.failure is None, result.failure
        return sorted(o.properties["Alias"] for o in result.output)

    assert aliases("Department -eq 'Finance'") == ["carol.diaz", "dave.okafor"]
    assert aliases("(RecipientTypeDetails -eq 'UserMailbox') -and (Alias -like 'c*')") == [
        "carol.diaz", "chris.taylor", "christopher.taylor"]
    assert aliases('DisplayName -eq "Frank O\'Connor"') == ["frank.oconnor"]
    assert aliases("DisplayName -eq 'Frank O''Connor'") == ["frank.oconnor"]
    assert aliases("RecipientTypeDetails -ne 'UserMailbox'") == ["room.oslo", "sales"]
    assert aliases("-not (Department -like '*E*') -and Department -ne $null") == ["ivan.petrov", "sync.admin"]
    assert aliases("CustomAttribute1 -eq 'sync' -or PrimarySmtpAddress -eq 'ivan.petrov@contoso.com'") == [
        "grace.hopper", "ivan.petrov"]
    assert aliases("Alias -notlike '*.*'") == ["sales"]


@pytest.mark.parametrize("bad", ["Alias -eq", "(Alias -eq 'x'", "Alias -gt 'x'", "Nonsense -eq 'x'", "Alias 'x'"])
def test_bad_filter_is_a_terminating_error(engine: ExchangeEngine, bad: str) -> None:
    failure = _failure(run(engine, cmd("Get-Mailbox", Filter=bad)))
    assert failure.message.startswith("Cannot bind parameter 'Filter' to the target.")
    assert failure.fq_error_id == "ParameterBindingFailed,Get-Mailbox"


def test_recipient_type_details_and_ou(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Get-Mailbox", RecipientTypeDetails=["SharedMailbox", "roommailbox"]))
    assert sorted(o.properties["Alias"] for o in result.output) == ["room.oslo", "sales"]
    [shared] = [o for o in result.output if o.properties["Alias"] == "sales"]
    assert shared.properties["RecipientTypeDetails"].text == "SharedMailbox"
    assert shared.type_names[0] == "Microsoft.Exchange.Data.Directory.Management.Mailbox"
    assert _failure(run(engine, cmd("Get-Mailbox", OrganizationalUnit="contoso.com/Nowhere"))).reason == (
        "ManagementObjectNotFoundException")
    result = run(engine, cmd("Get-Mailbox", "alice.wong", OrganizationalUnit="contoso.com/Staff"))
    assert result.output == [] and result.errors[0].reason == "ManagementObjectNotFoundException"


def test_mailbox_object_shape(engine: ExchangeEngine) -> None:
    [mbx] = run(engine, cmd("Get-Mailbox", "frank.oconnor")).output
    props = mbx.properties
    assert props["DisplayName"] == "Frank O'Connor"
    assert props["PrimarySmtpAddress"] == "frank.oconnor@contoso.com"
    assert props["UserPrincipalName"] == "frank.oconnor@contoso.com"
    assert props["SamAccountName"] == "frank.oconnor"
    assert props["OrganizationalUnit"] == "contoso.com/Staff"
    assert props["DistinguishedName"] == "CN=Frank O'Connor,OU=Staff,DC=contoso,DC=com"
    assert props["Identity"].to_string == "contoso.com/Staff/Frank O'Connor"
    assert props["Guid"] and props["ExchangeGuid"]


def test_get_mailbox_excludes_non_mailboxes(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Get-Mailbox", SVC))
    assert result.errors[0].reason == "ManagementObjectNotFoundException"
    assert result.errors[0].category == "NotSpecified"


def test_get_recipient_and_group_members(engine: ExchangeEngine) -> None:
    result = run(engine, cmd("Get-Recipient", "Sales Team"))
    [group] = result.output
    assert group.type_names[0] == "Microsoft.Exchange.Data.Directory.Management.ReducedRecipient"
    assert group.properties["RecipientTypeDetails"].text == "MailUniversalDistributionGroup"
    result = run(engine, cmd("Get-DistributionGroupMember", "sales-team@contoso.com"))
    by_name = {o.properties["Name"]: o for o in result.output}
    assert set(by_name) == {"Alice Wong", "Bob Meyer", "Sales Managers"}  # nested group not expanded
    assert by_name["Sales Managers"].properties["RecipientTypeDetails"].text == "MailUniversalDistributionGroup"
    assert len(run(engine, cmd("Get-DistributionGroupMember", "Sales Team", ResultSize=1)).output) == 1
    assert run(engine, cmd("Get-DistributionGroupMember", "Mailbox Sync Admins")).errors  # not a distribution group
    recipients = run(engine, cmd("Get-Recipient", ResultSize="Unlimited")).output
    assert "svc-codetwo" not in {o.properties["SamAccountName"] for o in recipients}  # not mail-enabled


# ---------------------------------------------------------------------------------------------- domain controller
def test_domain_controller_parameter(engine: ExchangeEngine) -> None:
    assert run(engine, grant("alice.wong", DomainController="DC02.contoso.com")).failure is None
    failure = _failure(run(engine, grant("bob.meyer", DomainController="dc99.contoso.com")))
    assert "dc99.contoso.com" in failure.message
    assert not engine.directory.has_full_access("bob.meyer", SVC)
    bad_name = run(engine, cmd("Get-Mailbox", DomainController="not a host"))
    assert _failure(bad_name).reason == "ParameterBindingException"


# ---------------------------------------------------------------------------------------------- error action
def test_error_action(engine: ExchangeEngine) -> None:
    result = run(engine, grant("ghost", ErrorAction="SilentlyContinue"), grant("alice.wong"))
    assert result.errors == [] and result.failure is None
    result = run(engine, grant("ghost", ErrorAction="Stop"), grant("bob.meyer"))
    assert _failure(result).reason == "ManagementObjectNotFoundException"
    assert not engine.directory.has_full_access("bob.meyer", SVC)


# ---------------------------------------------------------------------------------------------- throttling
def test_throttling_per_user_and_window() -> None:
    clock = FakeClock()
    engine = ExchangeEngine.from_seed(options=EngineOptions(throttle_max_cmdlets=3, throttle_window_seconds=60),
                                      clock=clock)
    for alias in ("alice.wong", "bob.meyer", "carol.diaz"):
        assert run(engine, grant(alias)).failure is None
    result = run(engine, grant("dave.okafor"), grant("erin.lindqvist"))
    failure = _failure(result)
    assert failure.message.startswith(
        "The WS-Management service cannot process the request. The user load quota of 3 requests per 60 seconds "
        "has been exceeded. Send future requests at a slower rate or raise the quota for this user.")
    assert failure.exception_type == "System.Management.Automation.Remoting.PSRemotingTransportException"
    assert not engine.directory.has_full_access("dave.okafor", SVC)
    assert run(engine, grant("dave.okafor"), user="CONTOSO\\other").failure is None  # per user
    assert engine.counters.throttled == 1
    clock.now += 61
    assert run(engine, grant("erin.lindqvist")).failure is None


def test_throttling_budget_without_refill() -> None:
    clock = FakeClock()
    options = EngineOptions(throttle_max_cmdlets=2, throttle_refill=False)
    engine = ExchangeEngine.from_seed(options=options, clock=clock)
    assert run(engine, cmd("Get-Mailbox", "alice.wong"), cmd("Get-Mailbox", "bob.meyer")).failure is None
    clock.now += 3600
    assert run(engine, cmd("Get-Mailbox", "alice.wong")).failure is not None


# ---------------------------------------------------------------------------------------------- replication
def test_replication_delay_hides_writes_from_other_dcs() -> None:
    clock = FakeClock()
    engine = ExchangeEngine.from_seed(options=EngineOptions(replication_delay_seconds=30), clock=clock)
    check = cmd("Get-MailboxPermission", "alice.wong", User=SVC)
    run(engine, grant("alice.wong"))
    assert run(engine, check).output == []  # not replicated yet
    assert engine.directory.has_full_access("alice.wong", SVC)  # but written
    clock.now += 31
    assert len(run(engine, check).output) == 1

    run(engine, grant("bob.meyer", DomainController="dc02.contoso.com"))
    pinned = cmd("Get-MailboxPermission", "bob.meyer", User=SVC, DomainController="dc02.contoso.com")
    other = cmd("Get-MailboxPermission", "bob.meyer", User=SVC, DomainController="dc01.contoso.com")
    assert len(run(engine, pinned).output) == 1
    assert run(engine, other).output == []
    assert run(engine, cmd("Get-MailboxPermission", "bob.meyer", User=SVC)).output == []
    clock.now += 31
    assert len(run(engine, other).output) == 1


def test_replication_delay_applies_to_removal() -> None:
    clock = FakeClock()
    engine = ExchangeEngine.from_seed(options=EngineOptions(replication_delay_seconds=10), clock=clock)
    run(engine, grant("alice.wong"))
    clock.now += 11
    run(engine, cmd("Remove-MailboxPermission", "alice.wong", User=SVC, AccessRights="FullAccess", Confirm=False))
    assert len(run(engine, cmd("Get-MailboxPermission", "alice.wong", User=SVC)).output) == 1
    clock.now += 11
    assert run(engine, cmd("Get-MailboxPermission", "alice.wong", User=SVC)).output == []


# ---------------------------------------------------------------------------------------------- counters, threads
def test_counters(engine: ExchangeEngine) -> None:
    run(engine, grant("alice.wong"), grant("alice.wong"), cmd("Get-Mailbox", "bob.meyer"))
    snap = engine.counters.snapshot()
    assert snap["invocations"] == 3 and snap["records"] == 3  # no pipeline input: one record each
    assert snap["by_cmdlet"] == {"Add-MailboxPermission": 2, "Get-Mailbox": 1}
    assert snap["writes"] == 1 and snap["pipelines"] == 1
    assert snap["by_user"] == {USER: 3}
    assert snap["cost_seconds"] == 0.0  # no cost model
    engine.counters.reset()
    assert engine.counters.snapshot()["writes"] == 0


def test_concurrent_runs(engine: ExchangeEngine) -> None:
    aliases = ["alice.wong", "bob.meyer", "carol.diaz", "dave.okafor", "erin.lindqvist", "frank.oconnor"]
    errors: list[Any] = []

    def worker(alias: str) -> None:
        for _ in range(20):
            result = run(engine, grant(alias), cmd("Get-MailboxPermission", alias, User=SVC))
            if result.failure or result.errors:
                errors.append(result)

    threads = [threading.Thread(target=worker, args=(alias,)) for alias in aliases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(len(explicit(engine, alias, SVC)) == 1 for alias in aliases)
    assert engine.counters.writes == len(aliases)


# ---------------------------------------------------------------------------------------------- scale
def test_result_size_default_truncates_with_warning() -> None:
    engine = ExchangeEngine(generate(1200))
    result = run(engine, cmd("Get-Mailbox"))
    assert len(result.output) == 1000 and len(result.warnings) == 1
    assert "-ResultSize Unlimited" in result.warnings[0]
    result = run(engine, cmd("Get-Mailbox", ResultSize=10))
    assert len(result.output) == 10 and "more results" in result.warnings[0]
    assert len(run(engine, cmd("Get-Mailbox", ResultSize="Unlimited")).output) == 1201  # + sync.admin


def test_generate_100000() -> None:
    directory = generate(100_000)
    engine = ExchangeEngine(directory)
    assert sum(1 for _ in directory.mailboxes()) == 100_001
    assert directory.mailbox("user099999").primary_smtp == "user099999@contoso.com"
    assert directory.mailbox("User 000042").recipient_type_details == "UserMailbox"
    assert directory.mailbox("user000050").recipient_type_details == "SharedMailbox"
    result = run(engine, grant("user077777"), cmd("Get-MailboxPermission", "user077777@contoso.com", User=SVC))
    assert result.errors == [] and len(result.output) == 2
    result = run(engine, cmd("Get-Mailbox", OrganizationalUnit="contoso.com/Sales", ResultSize=5))
    assert len(result.output) == 5


# ---------------------------------------------------------------------------------------------- Instance set
def test_get_permission_piped_into_remove_uses_the_instance_set(engine: ExchangeEngine) -> None:
    run(engine, cmd("Add-MailboxPermission", "alice.wong", User=SVC, AccessRights=["FullAccess", "ReadPermission"]))
    result = run(engine, (cmd("Get-MailboxPermission", "alice.wong", User=SVC),
                          cmd("Remove-MailboxPermission", Confirm=False)))
    assert result.failure is None and result.errors == [] and result.warnings == []
    assert explicit(engine, "alice.wong", SVC) == []
    # the piped seeded Deny ACE removes the deny entry
    result = run(engine, (cmd("Get-MailboxPermission", "judy.nakamura", User=SVC),
                          cmd("Remove-MailboxPermission", Confirm=False)))
    assert result.errors == [] and explicit(engine, "judy.nakamura", SVC) == []
    # inherited entries piped in are ignored with a warning
    result = run(engine, (cmd("Get-MailboxPermission", "bob.meyer", User="NT AUTHORITY\\SYSTEM"),
                          cmd("Remove-MailboxPermission", Confirm=False)))
    assert result.warnings and result.warnings[0].startswith("An inherited access control entry")


def test_ignore_default_scope_with_domain_controller(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, grant("alice.wong", IgnoreDefaultScope=None, DomainController="dc01.contoso.com")))
    assert "IgnoreDefaultScope" in failure.message


def test_error_records_carry_bound_parameters(engine: ExchangeEngine) -> None:
    [error] = run(engine, grant("ghost")).errors
    assert error.bound_parameters == {"Identity": "ghost", "User": SVC, "AccessRights": ["FullAccess"]}


def test_demo_seed_matches_users_csv(engine: ExchangeEngine) -> None:
    import csv
    from pathlib import Path

    lines = Path(__file__).parents[2].joinpath("examples", "users.csv").read_text("utf-8").splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert len(rows) == 8
    for row in rows:
        mailbox = engine.directory.mailbox(row["PrimarySmtpAddress"])
        assert mailbox.display_name == row["DisplayName"]
        assert mailbox.department == row["Department"]
        assert mailbox.recipient_type_details == "UserMailbox"
        assert explicit(engine, row["PrimarySmtpAddress"], SVC) == []  # clean slate for the sync account
    assert engine.directory.principal(SVC).upn == "svc-codetwo@contoso.com"
    assert not engine.directory.principal(SVC).is_mailbox
    assert engine.directory.mailbox("sync.admin@contoso.com").recipient_type_details == "UserMailbox"
    assert engine.directory.default_dc == "dc01.contoso.com"


def test_directory_derived_identity_forms() -> None:
    from provisioner_lab.exchange import Directory

    directory = Directory()
    odd = directory.add_mailbox("obrien", "Brien, O'", "contoso.com/Users")
    assert odd.dn == "CN=Brien\\, O',CN=Users,DC=contoso,DC=com"
    for form in (odd.dn, odd.dn.lower(), "contoso.com/Users/Brien, O'", "CONTOSO\\obrien", odd.sid, odd.sid.lower(),
                 odd.guid, "Brien, O'", "obrien@contoso.com"):
        assert directory.lookup(form) == [odd], form
    assert directory.lookup("OTHERDOMAIN\\obrien") == []
    assert directory.lookup("NT AUTHORITY\\SYSTEM")[0].sid == "S-1-5-18"


def test_null_optional_identity_returns_everything_and_wildcards(engine: ExchangeEngine) -> None:
    assert len(run(engine, cmd("Get-Mailbox", Identity=None)).output) == 15
    assert sorted(o.properties["Alias"] for o in run(engine, cmd("Get-Mailbox", "chris*")).output) == [
        "chris.taylor", "christopher.taylor"]
    assert [o.properties["Alias"] for o in run(engine, cmd("Get-Mailbox", Anr="Frank")).output] == ["frank.oconnor"]
    users = run(engine, cmd("Get-User", SVC)).output
    assert [u.properties["UserPrincipalName"] for u in users] == ["svc-codetwo@contoso.com"]
    assert users[0].type_names[0] == "Microsoft.Exchange.Data.Directory.Management.User"


def test_owner_set_is_reported_as_not_implemented(engine: ExchangeEngine) -> None:
    failure = _failure(run(engine, cmd("Get-MailboxPermission", "alice.wong", Owner=None)))
    assert failure.category == "NotImplemented"


def test_null_identity_refused_where_mandatory_in_some_set(engine: ExchangeEngine) -> None:
    for name in ("Add-MailboxPermission", "Remove-MailboxPermission"):
        failure = _failure(run(engine, cmd(name, Identity=None, User=SVC, AccessRights="FullAccess", Confirm=False)))
        assert failure.fq_error_id == f"ParameterArgumentValidationErrorNullNotAllowed,{name}"


def test_output_written_before_a_failure_is_kept(engine: ExchangeEngine) -> None:
    sales = cmd("Get-Mailbox", OrganizationalUnit="contoso.com/Sales", RecipientTypeDetails="UserMailbox")
    result = run(engine, (sales, cmd("Add-MailboxPermission", User=SVC, AccessRights="FullAccess", ErrorAction="Stop")))
    assert result.failure is None and len(result.output) == 3
    # alice is granted, then "ghost" fails with -ErrorAction Stop: alice's output object stays in the result
    result = run(engine, cmd("Get-MailboxPermission", User=SVC, ErrorAction="Stop"),
                 pipeline_input=[{"Identity": "alice.wong"}, {"Identity": "ghost"}, {"Identity": "bob.meyer"}])
    assert _failure(result).reason == "ManagementObjectNotFoundException"
    assert [ace.properties["Identity"].to_string for ace in result.output] == ["contoso.com/Sales/Alice Wong"]


def test_deserialised_objects_as_pipeline_input(engine: ExchangeEngine) -> None:
    """Objects a client sends back arrive as property bags (dicts) with nested property bags."""
    [mailbox] = run(engine, cmd("Get-Mailbox", "alice.wong")).output
    bag = {k: (v.properties if isinstance(v, LabObject) else v) for k, v in mailbox.properties.items()}
    result = run(engine, cmd("Add-MailboxPermission", User=SVC, AccessRights="FullAccess"), pipeline_input=[bag])
    assert result.errors == [] and engine.directory.has_full_access("alice.wong", SVC)
    [ace] = run(engine, cmd("Get-MailboxPermission", "alice.wong", User=SVC)).output
    ace_bag = {k: (v.properties if isinstance(v, LabObject) else v) for k, v in ace.properties.items()}
    # a deserialised ACE is no MailboxAcePresentationObject: only Identity binds (by property name) ...
    result = run(engine, cmd("Remove-MailboxPermission", Confirm=False), pipeline_input=[ace_bag])
    assert [e.fq_error_id for e in result.errors] == ["InputObjectMissingMandatory,Remove-MailboxPermission"]
    # ... so User and AccessRights must be given
    remove = cmd("Remove-MailboxPermission", User=ace_bag["User"], AccessRights="FullAccess", Confirm=False)
    result = run(engine, remove, pipeline_input=[ace_bag])
    assert result.errors == [] and result.warnings == []
    assert not engine.directory.has_full_access("alice.wong", SVC)
