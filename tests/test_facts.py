"""Server facts per run: a session reads the metadata of the cmdlets its run may send, no more, and decides only
on what it read (a cmdlet it did not ask about is neither refused nor assumed checked)."""

from __future__ import annotations

import pytest
from provisioner_lab.run import running_lab

from provisioner.domain.model import Action
from provisioner.inputs.config import Connection
from provisioner.powershell.steps import StepOptions
from provisioner.runs.needs import cmdlets, required
from provisioner.transport.facts import refuse_missing
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.psrp.runner import read_facts


@pytest.mark.parametrize("action", list(Action))
def test_a_run_asks_for_what_it_may_send(action: Action) -> None:
    asked = set(cmdlets(action))
    for piping in (False, True):
        assert set(required(action, StepOptions(), piping)) <= asked
    assert ("Add-MailboxPermission" in asked) == (action in (Action.GRANT, Action.REAPPLY, Action.UNDO))
    assert ("Remove-MailboxPermission" in asked) == (action in (Action.REVOKE, Action.REAPPLY, Action.UNDO))


def test_a_grant_session_reads_three_cmdlets_and_judges_only_those() -> None:
    with running_lab(profile="exchange2010sp1") as lab:
        connection = Connection(server="127.0.0.1", port=lab.server.port, auth="ntlm", username=lab.username,
                                insecure_lab=True)
        with open_pool(connection, lab.password) as pool:
            facts = read_facts(pool, cmdlets(Action.GRANT))
    # the run's cmdlets, Select-Object among them (whether reads may be projected)
    assert {name.casefold() for name in facts.commands or {}} == {c.casefold() for c in cmdlets(Action.GRANT)}
    assert "select-object" in {c.casefold() for c in cmdlets(Action.GRANT)} and facts.projects
    assert not facts.has_parameter("Add-MailboxPermission", "AutoMapping")  # read: 2010 SP1 has none
    assert facts.known("Add-MailboxPermission") and not facts.known("Remove-MailboxPermission")
    assert facts.has_parameter("Remove-MailboxPermission", "Confirm")  # not read: not judged
    refuse_missing(facts, {"Get-MailboxPermission": {"Identity", "User"}})


def test_a_server_without_automapping_refuses_only_runs_that_want_it_off() -> None:
    """Exchange 2010 before SP2 automaps every grant: a run whose trustees all asked for automapping gets what it
    asked for; one that wants it off for any trustee is refused unless the admin accepts automapping."""
    from provisioner.domain.model import Identity, Trustee
    from provisioner.runs.needs import step_options
    from provisioner.transport.facts import MissingCapability, ServerFacts

    sp1 = ServerFacts("2.1", commands={"add-mailboxpermission": frozenset({"identity", "user", "accessrights"})})
    on = Trustee(Identity("sync.admin@contoso.com"), automapping=True)
    off = Trustee(Identity("svc-codetwo@contoso.com"), automapping=False)
    assert step_options(Connection(), sp1, False, Action.GRANT, (on,)).automapping is False  # not sent: the default
    with pytest.raises(MissingCapability):
        step_options(Connection(), sp1, False, Action.GRANT, (on, off))
    assert step_options(Connection(), sp1, True, Action.GRANT, (on, off)).automapping is False  # accepted
