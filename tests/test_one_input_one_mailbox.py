"""One input, one mailbox: an input that names several mailboxes (Get-* returns every match, as Exchange does) or
uses a wildcard is failed naming the matches, and nothing is read or written for it; every other input is read and
written by its mailbox's GUID, exactly, on every protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from provisioner_lab.exchange.engine import ExchangeEngine
from provisioner_lab.run import running_lab

from provisioner.domain.model import Action, Identity, Result, Trustee
from provisioner.inputs.config import Connection
from provisioner.powershell.steps import StepOptions, command
from provisioner.runs.jobs import run
from provisioner.runs.result import Job
from provisioner.transport.runner import FixedSession, Pipeline
from tests.fake_runner import LabRunner

SERVICE = Trustee(Identity("svc-codetwo@contoso.com"), automapping=False, role="service-account")
ADMIN = Trustee(Identity("sync.admin@contoso.com"), automapping=False, role="admin-user")
TWINS = ("sam.smith.sales@contoso.com", "sam.smith.staff@contoso.com")


def with_twins(engine: ExchangeEngine) -> ExchangeEngine:
    """Two mailboxes named 'Sam Smith' (display name and CN) in two OUs: legal in AD, common in real orgs."""
    directory = engine.directory
    directory.add_mailbox("sam.smith.sales", "Sam Smith", "contoso.com/Sales")
    directory.add_mailbox("sam.smith.staff", "Sam Smith", "contoso.com/Staff")
    return engine


def test_get_star_returns_every_match_and_the_changing_cmdlets_refuse() -> None:
    runner = LabRunner(with_twins(ExchangeEngine.from_seed(None)), "2.3")
    plain = StepOptions()
    both = runner.run(Pipeline.of(command("Get-Mailbox", ("Identity", "Sam Smith"), options=plain)))
    assert len(both.output) == 2 and not both.errors
    acl = runner.run(Pipeline.of(command("Get-MailboxPermission", ("Identity", "Sam Smith"), options=plain)))
    assert not acl.errors and len(acl.output) >= 2  # the entries of both mailboxes
    add = runner.run(Pipeline.of(command("Add-MailboxPermission", ("Identity", "Sam Smith"),
                                         ("User", SERVICE.identity.value), ("AccessRights", "FullAccess"),
                                         options=plain)))
    assert add.errors and add.errors[0][0].ambiguous
    piped = runner.run(Pipeline.of(command("Get-Mailbox", options=plain),
                                   input=["alice.wong", "Sam Smith", "bob.meyer"]))
    assert len(piped.output) == 4  # Exchange would hand both to a piped Add-MailboxPermission


@pytest.mark.parametrize("protocol", ["2.1", "2.3"])
@pytest.mark.parametrize("batch_size", [500, 2])
def test_an_ambiguous_name_is_failed_and_nothing_touches_either_mailbox(protocol: str, batch_size: int) -> None:
    engine = with_twins(ExchangeEngine.from_seed(None))
    runner = LabRunner(engine, protocol)
    mailboxes = tuple(Identity(name) for name in ("alice.wong", "Sam Smith", "bob.meyer", "Alice Wong"))
    writes = engine.counters.writes
    result = run(Job(Action.GRANT, mailboxes, (SERVICE, ADMIN), Connection(batch_size=batch_size)),
                 session=FixedSession(runner))
    outcomes = {(o.mailbox.value, o.trustee.identity.value): o for o in result.outcomes}
    for trustee in (SERVICE, ADMIN):
        twin = outcomes[("Sam Smith", trustee.identity.value)]
        assert twin.result is Result.FAILED and twin.error is not None and twin.error.ambiguous
        assert all(address in twin.error.message for address in TWINS)
        assert outcomes[("alice.wong", trustee.identity.value)].result is Result.GRANTED
        assert outcomes[("bob.meyer", trustee.identity.value)].result is Result.GRANTED
        # two names of one mailbox: one change, the same outcome for both
        assert outcomes[("Alice Wong", trustee.identity.value)].result is Result.GRANTED
        for twin_address in TWINS:
            assert not engine.directory.has_full_access(twin_address, trustee.identity.value)
    assert engine.counters.writes - writes == 4  # alice and bob, two trustees; alice once
    assert Counter(o.result for o in result.outcomes) == {Result.GRANTED: 6, Result.FAILED: 2}


def test_the_cli_reports_the_ambiguous_line_and_writes_only_the_others(tmp_path: Path) -> None:
    with running_lab(engine=with_twins(ExchangeEngine.from_seed(None))) as lab:
        users = tmp_path / "users.txt"
        users.write_text("alice.wong\nSam Smith\n", encoding="utf-8")
        env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}
        done = subprocess.run(
            [sys.executable, "-m", "provisioner", "grant", "--users-file", str(users),
             "--admin-user", ADMIN.identity.value, "--service-account", SERVICE.identity.value,
             "--report", str(tmp_path / "r.json"), *lab.cli_args("ntlm")],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 1, done.stderr
        report = json.loads((tmp_path / "r.json").read_text())
        results = {(i["mailbox"], i["trustee"]): i["result"] for i in report["items"]}
        assert results[("Sam Smith", SERVICE.identity.value)] == "failed"
        assert results[("alice.wong", SERVICE.identity.value)] == "granted"
        assert "matches 2 mailboxes" in done.stderr
        assert "add 1 mailbox" in done.stderr  # the MAPI-profile count: alice only
        for address in TWINS:
            assert not lab.engine.directory.has_full_access(address, SERVICE.identity.value)
