"""The expert one-liners with pipeline input, through pypsrp's public API (add_cmdlet chains, invoke(input=...)):
``ids | Get-Mailbox | Get-/Add-/Remove-MailboxPermission -User T ...``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provisioner_lab.run import Lab, running_lab
from pypsrp.powershell import PowerShell, RunspacePool

from .conftest import open_pool

TRUSTEE = "sync.admin"  # a UserMailbox, so AutoMapping applies to it
ACCOUNT = "CONTOSO\\sync.admin"
IDS = ["alice.wong", "bob.meyer", "nobody.here", "carol.diaz"]
FOUND = ["alice.wong", "bob.meyer", "carol.diaz"]


@pytest.fixture
def org() -> Iterator[Lab]:
    """A fresh lab (demo organisation) per test."""
    with running_lab() as running:
        yield running


@pytest.fixture
def pool(org: Lab) -> Iterator[RunspacePool]:
    opened = open_pool(org.server, username=org.username, password=org.password)
    try:
        yield opened
    finally:
        opened.close()


def piped(pool: RunspacePool, cmdlet: str, parameters: dict[str, object]) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-Mailbox").add_cmdlet(cmdlet).add_parameters(parameters)
    ps.invoke(input=IDS)
    return ps


def assert_one_missing(ps: PowerShell) -> None:
    [error] = ps.streams.error
    assert error.reason == "ManagementObjectNotFoundException"
    assert str(error) == "The operation couldn't be performed because object 'nobody.here' couldn't be found on " \
                         "'dc01.contoso.com'."
    assert error.target_object == "nobody.here"  # the input string itself
    assert error.activity == "Get-Mailbox"


def grant_parameters(**extra: object) -> dict[str, object]:
    return {"User": TRUSTEE, "AccessRights": ["FullAccess"], "InheritanceType": "All", **extra}


def test_ids_into_get_mailbox_into_get_mailboxpermission(org: Lab, pool: RunspacePool) -> None:
    ps = PowerShell(pool)
    ps.add_cmdlet("Add-MailboxPermission").add_parameters({"Identity": "bob.meyer", **grant_parameters()})
    ps.invoke()
    ps = piped(pool, "Get-MailboxPermission", {"User": TRUSTEE})
    assert_one_missing(ps)
    [ace] = ps.output  # only bob.meyer has an entry for the trustee; the others give nothing
    assert str(ace.adapted_properties["User"]) == ACCOUNT
    assert str(ace.adapted_properties["Identity"]) == "contoso.com/Sales/Bob Meyer"
    counters = org.engine.counters
    assert counters.invocations["Get-Mailbox"] == 1 and counters.invocations["Get-MailboxPermission"] == 1
    assert counters.records == 1 + len(IDS) + len(FOUND)  # the Add, then 4 ids into Get-Mailbox, 3 mailboxes on


def test_ids_into_get_mailbox_into_add_mailboxpermission(org: Lab, pool: RunspacePool) -> None:
    ps = piped(pool, "Add-MailboxPermission", grant_parameters(AutoMapping=False))
    assert_one_missing(ps)
    assert [str(ace.adapted_properties["Identity"]).rsplit("/", 1)[1] for ace in ps.output] == [
        "Alice Wong", "Bob Meyer", "Carol Diaz"]
    directory = org.engine.directory
    assert all(directory.has_full_access(mailbox, TRUSTEE) for mailbox in FOUND)
    assert org.engine.counters.writes == 3
    assert all(directory.delegates_of(mailbox) == [] for mailbox in FOUND)


def test_piped_add_automaps_only_the_last_record(org: Lab, pool: RunspacePool) -> None:
    ps = piped(pool, "Add-MailboxPermission", grant_parameters())  # AutoMapping defaults to $true
    assert len(ps.output) == 3
    directory = org.engine.directory
    assert all(directory.has_full_access(mailbox, TRUSTEE) for mailbox in FOUND)
    # SetMailboxPermissionTaskBase applies the delegation once, in EndProcessing, for the last DataObject
    assert [directory.delegates_of(mailbox) for mailbox in FOUND] == [[], [], [ACCOUNT]]


def test_one_grant_per_invocation_automaps_each(org: Lab, pool: RunspacePool) -> None:
    for mailbox in FOUND:
        ps = PowerShell(pool)
        ps.add_cmdlet("Add-MailboxPermission").add_parameters({"Identity": mailbox, **grant_parameters()})
        ps.invoke()
    assert [org.engine.directory.delegates_of(mailbox) for mailbox in FOUND] == [[ACCOUNT]] * 3


def test_ids_into_get_mailbox_into_remove_mailboxpermission(org: Lab, pool: RunspacePool) -> None:
    for mailbox in FOUND:  # granted one by one: every mailbox automapped
        ps = PowerShell(pool)
        ps.add_cmdlet("Add-MailboxPermission").add_parameters({"Identity": mailbox, **grant_parameters()})
        ps.invoke()
    writes = org.engine.counters.writes
    ps = piped(pool, "Remove-MailboxPermission", grant_parameters(Confirm=False))
    assert_one_missing(ps)
    assert ps.output == []  # Remove writes no objects
    directory = org.engine.directory
    assert not any(directory.has_full_access(mailbox, TRUSTEE) for mailbox in FOUND)
    assert org.engine.counters.writes == writes + 3
    # the delegate link is cleared for the last record only (the others keep a stale msExchDelegateListLink)
    assert [directory.delegates_of(mailbox) for mailbox in FOUND] == [[ACCOUNT], [ACCOUNT], []]


def test_piped_remove_without_confirm_false_fails_on_the_prompt(pool: RunspacePool) -> None:
    ps = piped(pool, "Remove-MailboxPermission", grant_parameters())
    assert ps.had_errors
    assert any(error.reason == "HostException" for error in ps.streams.error)
