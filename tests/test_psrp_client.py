"""The tool's PSRP client against the lab, beside pypsrp's path: the same pipelines give the same records, errors,
warnings and failures, and the same server facts, on every lab profile (protocol 2.1, 2.2, 2.3), with Basic and
NTLM. Nothing here is mocked: both clients talk to the lab's endpoint over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from provisioner_lab.run import Lab, running_lab
from pypsrp.powershell import RunspacePool

from provisioner.domain.model import ErrorInfo
from provisioner.inputs.config import Connection
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import FULL_ACCESS, Command, Parameter
from provisioner.transport import records
from provisioner.transport.facts import ServerFacts
from provisioner.transport.psrp.connect import build_wsman, open_pool
from provisioner.transport.psrp.runner import ClientRunner, ClientScriptRunner, read_facts
from provisioner.transport.runner import NotRunnable, Pipeline, Raw, TransportLost
from tests.pypsrp_reference import PsrpRunner, ScriptRunner
from tests.pypsrp_reference import read_facts as pypsrp_facts

PROFILES = ["exchange2010", "exchange2010sp1", "exchange2013", "exchange2019"]
SERVICE = "svc-codetwo@contoso.com"


def connection(lab: Lab, auth: str) -> Connection:
    return Connection(server="127.0.0.1", port=lab.port, auth=auth, username=lab.username,
                      configuration_name=lab.server.configuration_name, insecure_lab=auth == "basic",
                      scheme="http", operation_timeout=5)


@contextmanager
def pypsrp_pool(settings: Connection, password: str) -> Iterator[RunspacePool]:
    """The reference: pypsrp's own RunspacePool on the same WSMan settings (PsrpRunner/ScriptRunner read it)."""
    pool = RunspacePool(build_wsman(settings, password), configuration_name=settings.configuration_name)
    pool.open()
    try:
        yield pool
    finally:
        pool.close()


def command(cmdlet: str, **parameters: Any) -> Command:
    return Command(Bare(cmdlet), tuple(Parameter(Bare(name), value) for name, value in parameters.items()))


def pipelines(protocol: str) -> list[Pipeline]:
    """Reads that find, miss and fail; piped input with missing names; a switch; a multi-statement batch (2.2+)."""
    chosen = [
        Pipeline.of(command("Get-Mailbox", Identity="alice.wong")),
        Pipeline.of(command("Get-MailboxPermission", Identity="judy.nakamura")),
        Pipeline.of(command("Get-MailboxPermission", Identity="nobody.here", User=SERVICE)),
        Pipeline.of(command("Get-Mailbox"), command("Get-MailboxPermission", User=SERVICE),
                    input=["ivan.petrov", "nobody.here", "alice.wong", "carol.diaz"]),
        Pipeline.of(command("Get-Mailbox", Identity="alice.wong", NoSuchParameter="x")),
        Pipeline.of(command("Add-MailboxPermission", Identity="nobody.here", User=SERVICE, AccessRights=FULL_ACCESS,
                            InheritanceType=Bare("All"), Confirm=False)),
        Pipeline.of(command("Remove-MailboxPermission", Identity="alice.wong", User="sync.admin@contoso.com",
                            AccessRights=FULL_ACCESS, InheritanceType=Bare("All"), Confirm=False)),
        Pipeline.of(command("Get-Mailbox", Identity="alice.wong", ResultSize=Bare("Unlimited"), Verbose=None)),
    ]
    if protocol >= "2.2":
        chosen.append(Pipeline((
            (command("Get-MailboxPermission", Identity="ivan.petrov", User=SERVICE),),
            (command("Get-MailboxPermission", Identity="nobody.here", User=SERVICE),),
            (command("Get-MailboxPermission", Identity="judy.nakamura"),),
        )))
    return chosen


def shown(value: Any) -> Any:
    """A property as the tool reads it: text, a list entry by entry (its own text is each reader's repr)."""
    return [shown(item) for item in value] if isinstance(value, list) else records.text(value)


def comparable_object(obj: Any) -> Any:
    props = records.properties(obj)
    return (records.type_names(obj), records.text(obj), records.permission_entry(obj),
            {name: shown(value) for name, value in props.items()})


REQUEST = re.compile(r"RequestId=[^,\]]*,TimeStamp=[^\]]*")


def same_request(info: ErrorInfo) -> ErrorInfo:
    """Exchange stamps every FullyQualifiedErrorId with the request's id and time: the rest must be the same."""
    return replace(info, fq_error_id=REQUEST.sub("RequestId=*,TimeStamp=*", info.fq_error_id))


def comparable(raw: Raw) -> Any:
    failure = None if raw.failure is None else (same_request(raw.failure[0]), raw.failure[1])
    return ([comparable_object(obj) for obj in raw.output], [(same_request(e), o) for e, o in raw.errors],
            raw.warnings, failure)


@pytest.fixture(scope="module", params=PROFILES)
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with running_lab(profile=request.param) as running:
        yield running


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_same_records_errors_and_facts_as_pypsrp(lab: Lab, auth: str) -> None:
    settings = connection(lab, auth)
    with pypsrp_pool(settings, lab.password) as pool, open_pool(settings, lab.password) as client:
        theirs_facts, ours_facts = pypsrp_facts(pool), read_facts(client)
        assert ours_facts.protocol_version == theirs_facts.protocol_version == lab.server.profile.protocol_version
        assert ours_facts.commands == theirs_facts.commands and ours_facts.commands
        assert ours_facts.ps_version == theirs_facts.ps_version and ours_facts.ps_version
        theirs, ours = PsrpRunner(pool, theirs_facts), ClientRunner(client, ours_facts)
        seen = {"output": 0, "errors": 0, "warnings": 0, "failure": 0}
        for pipeline in pipelines(ours_facts.protocol_version):
            expected, got = theirs.run(pipeline), ours.run(pipeline)
            assert comparable(got) == comparable(expected), pipeline
            for kind in seen:
                seen[kind] += bool(getattr(got, kind))
    # two empty results would compare equal: the pipelines above did find, miss, warn and fail
    assert all(seen.values()), seen


def test_results_are_real(lab: Lab) -> None:
    """What the differential compares is not empty: ACEs come back as records, misses as errors, a bad parameter as
    the pipeline's failure, and a multi-statement pipeline is refused below protocol 2.2."""
    settings = connection(lab, "ntlm")
    with open_pool(settings, lab.password) as client:
        runner = ClientRunner(client, read_facts(client))
        aces = runner.run(pipelines("2.1")[1])
        assert aces.output and all(records.permission_entry(obj) is not None for obj in aces.output)
        missing = runner.run(pipelines("2.1")[2])
        assert missing.errors and missing.errors[0][0].reason == "ManagementObjectNotFoundException"
        assert missing.errors[0][1].identity == "nobody.here"
        piped = runner.run(pipelines("2.1")[3])
        assert [origin.target for _, origin in piped.errors] == ["nobody.here"]
        bad = runner.run(pipelines("2.1")[4])
        assert bad.failure is not None and not bad.output
        # PowerShell 3.0 and later take 500 KiB envelopes: fewer requests for input and output
        assert client.wsman.max_envelope_size == (512000 if runner.facts.runs_statements else 153600)
        batch = Pipeline(((command("Get-Mailbox", Identity="alice.wong"),),) * 2)
        if runner.facts.runs_statements:
            assert len(runner.run(batch).output) == 2
        else:
            with pytest.raises(NotRunnable):
                runner.run(batch)


def test_every_receive_is_bounded(lab: Lab) -> None:
    """A deadline already past: nothing more is sent, the client says why."""
    from provisioner.transport.psrp.client import ProtocolFailure

    settings = connection(lab, "basic")
    with open_pool(settings, lab.password) as client:
        client.bounds.deadline = client.bounds.clock() - 1
        sent = client.requests
        with pytest.raises(ProtocolFailure, match="deadline"):
            client.invoke(client.powershell(False).add_command("Get-Mailbox"))
        assert client.requests == sent


def test_script_mode_same_as_pypsrp() -> None:
    """A full-language endpoint: a preamble, then commands as script text, one per pipeline."""
    with running_lab(full_language=True) as full:
        settings = connection(full, "ntlm")
        with pypsrp_pool(settings, full.password) as pool, open_pool(settings, full.password) as client:
            theirs = ScriptRunner(pool, ServerFacts(str(pool.protocol_version)))
            ours = ClientScriptRunner(client, ServerFacts(client.protocol_version))
            preamble = "$ErrorActionPreference = 'Continue'"
            assert comparable(ours.run_preamble(preamble)) == comparable(theirs.run_preamble(preamble))
            for pipeline in pipelines("2.1")[:3] + pipelines("2.1")[5:7]:
                expected, got = theirs.run(pipeline), ours.run(pipeline)
                assert comparable(got) == comparable(expected), pipeline
            assert ours.run(pipelines("2.1")[1]).output
            with pytest.raises(NotRunnable):
                ours.run(pipelines("2.1")[3])  # piped input: command mode only


@pytest.mark.parametrize("verb", ["grant", "reapply"])
def test_a_config_with_fast_wire_still_runs_and_says_the_key_is_ignored(verb: str, tmp_path: Path) -> None:
    """Scheduled jobs whose config still sets ``fast_wire`` keep running; the report's notes say to remove it
    (the scheduled job's report too: the server's notes were once left out of reapply's)."""
    with running_lab() as lab:
        config = tmp_path / "provisioner.toml"
        config.write_text(lab.config_toml() + "fast_wire = true\n", encoding="utf-8")
        env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8",
               "XDG_STATE_HOME": str(tmp_path / "state")}
        result = subprocess.run(
            [sys.executable, "-m", "provisioner", verb, "--config", str(config), "-m", "alice.wong",
             "--service-account", SERVICE, "--report", str(tmp_path / "report.json")],
            capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
            cwd=Path(__file__).parent.parent)
        assert result.returncode == 0, result.stderr
        assert lab.engine.directory.has_full_access("alice.wong", SERVICE)
    notes = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["notes"]
    assert any("fast_wire is deprecated and ignored" in note for note in notes)


def test_a_pipeline_without_progress_is_given_up() -> None:
    """A server that answers Receives but produces nothing for longer than the stall bound: the client stops
    asking (paced meanwhile) and the runner reports a lost session, never a hang."""
    from provisioner_lab.exchange.cost import CostModel

    with running_lab(cost=CostModel(per_pipeline_ms=4000.0)) as slow:
        settings = replace(connection(slow, "basic"), operation_timeout=1)
        with open_pool(settings, slow.password) as client:
            client.bounds.stall_seconds = 1.5
            runner = ClientRunner(client, ServerFacts(client.protocol_version))
            before = client.requests
            with pytest.raises(TransportLost, match=r"no progress for 1\.5 s"):
                runner.run(pipelines("2.1")[0])
            assert 2 <= client.requests - before <= 10  # paced: a handful of Receives, not a busy loop
