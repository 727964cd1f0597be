"""The executors over the real client (psrpcore, pypsrp's WSMan) with the HTTP layer replayed by ``responses``
(recorded from the lab).

This pins what goes over the wire: a change in the commands the executors send fails here until the cassettes
are re-recorded (``python -m tests.wire_replay``), and outcomes are decided from recorded server answers alone.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from provisioner.domain.model import Action, Identity, ItemState, Outcome, Plan, Result, Trustee
from provisioner.inputs.config import Connection
from provisioner.runs.jobs import run
from provisioner.runs.result import Job
from provisioner.transport.facts import ServerFacts
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.psrp.runner import ClientRunner, ClientScriptRunner
from provisioner.transport.runner import FixedSession
from tests.wire_replay import load, recording, replaying, save

SVC = Trustee(Identity("svc-codetwo@contoso.com"), role="service-account")
MAILBOXES = [Identity(name) for name in ("alice.wong", "ivan.petrov", "no.such@contoso.com", "judy.nakamura")]
PASSWORD = "Lab-Passw0rd!"


def _connection(port: int, configuration_name: str) -> Connection:
    return Connection(server="127.0.0.1", port=port, auth="basic", username="lab-admin", insecure_lab=True,
                      configuration_name=configuration_name)


def scenario(pool: Any, script_mode: bool) -> tuple[Plan, list[Outcome]]:
    """A grant through the real engine; the facts are given (the cassettes hold no GET_COMMAND_METADATA)."""
    facts = ServerFacts(pool.protocol_version)
    runner = ClientScriptRunner(pool, facts) if script_mode else ClientRunner(pool, facts)
    result = run(Job(Action.GRANT, tuple(MAILBOXES), (SVC,), Connection()), session=FixedSession(runner))
    return result.plan, [o for o in result.outcomes if o.mailbox.value == "alice.wong"]


CASES = {"command-mode": ("Microsoft.Exchange", False), "script-mode": ("Microsoft.PowerShell", True)}


def record_all() -> None:
    from provisioner_lab.run import running_lab

    for name, (configuration, script_mode) in CASES.items():
        with running_lab(full_language=script_mode, auth=("basic",)) as lab:
            connection = _connection(lab.port, configuration)
            exchanges: list[dict[str, Any]] = []
            with recording(exchanges), open_pool(connection, PASSWORD) as pool:
                scenario(pool, script_mode)
            save(name, f"http://127.0.0.1:{lab.port}/PowerShell", exchanges)


def _replay(name: str) -> tuple[Plan, list[Outcome], list[bytes]]:
    url, exchanges = load(name)
    port = int(url.split(":")[2].split("/")[0])
    configuration, script_mode = CASES[name]
    with replaying(exchanges, url) as sent, open_pool(_connection(port, configuration), PASSWORD) as pool:
        plan, outcomes = scenario(pool, script_mode)
    return plan, outcomes, sent


def _check(plan: Plan, outcomes: list[Outcome]) -> None:
    states = {item.mailbox.value: item.state for item in plan.items}
    assert states == {
        "alice.wong": ItemState.TO_ADD,
        "ivan.petrov": ItemState.ALREADY_PRESENT,
        "no.such@contoso.com": ItemState.UNKNOWN,
        "judy.nakamura": ItemState.BLOCKED,
    }
    unknown = next(item for item in plan.items if item.state is ItemState.UNKNOWN)
    assert unknown.error is not None and unknown.error.not_found
    assert [(o.mailbox.value, o.result) for o in outcomes] == [("alice.wong", Result.GRANTED)]


def _pipelines(sent: list[bytes]) -> list[bytes]:
    """The CREATE_PIPELINE payloads (CLIXML) carried in the Command requests' rsp:Arguments."""
    found = []
    for body in sent:
        for match in re.finditer(rb"<rsp:Arguments>([^<]+)</rsp:Arguments>", body):
            found.append(base64.b64decode(match.group(1)))
    return found


def test_command_mode_replayed() -> None:
    plan, outcomes, sent = _replay("command-mode")
    _check(plan, outcomes)
    pipelines = _pipelines(sent)
    # the four looked up once (ids | Get-Mailbox: each must name exactly one mailbox); the trustee checked once
    # (Get-MailboxPermission -Identity <a GUID> -User T); one piped read of the three that exist, by GUID (ids |
    # Get-Mailbox | Get-MailboxPermission; their ACEs placed by the Identity keys the lookup gave); the one grant,
    # proven by the ACE object it returns
    assert len(pipelines) == 4
    assert all(b'<B N="IsScript">false</B>' in p and b'<B N="IsScript">true</B>' not in p for p in pipelines)
    assert b">Get-Mailbox<" in pipelines[0] and b">Get-MailboxPermission<" not in pipelines[0]
    assert b">Get-MailboxPermission<" in pipelines[1] and b">Get-Mailbox<" not in pipelines[1]
    assert b">Get-Mailbox<" in pipelines[2] and b">Get-MailboxPermission<" in pipelines[2]
    assert sum(b">Add-MailboxPermission<" in p for p in pipelines) == 1


def test_script_mode_replayed() -> None:
    plan, outcomes, sent = _replay("script-mode")
    _check(plan, outcomes)
    pipelines = _pipelines(sent)
    assert all(b'<B N="IsScript">true</B>' in p for p in pipelines)
    assert any(b"Get-Mailbox -Identity &apos;alice.wong&apos;" in p or
               b"Get-Mailbox -Identity 'alice.wong'" in p for p in pipelines)
    guid = re.compile(rb"Add-MailboxPermission -Identity (&apos;|')[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-")
    assert sum(bool(guid.search(p)) for p in pipelines) == 1  # the write goes to alice's mailbox by its GUID
