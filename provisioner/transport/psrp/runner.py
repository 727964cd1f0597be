"""The Runner seam over :class:`provisioner.transport.psrp.client.Client`: the same
:class:`~provisioner.transport.runner.Pipeline` in, the same :class:`~provisioner.transport.runner.Raw` out as
pypsrp's path gives (``tests/pypsrp_reference.py``), so the engine does not change. Server facts (protocol,
PSVersionTable, command metadata, and whether Select-Object may project reads) come through the same client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psrpcore
import requests
from pypsrp.exceptions import WinRMError

from provisioner.domain.model import ErrorInfo
from provisioner.transport import records
from provisioner.transport.facts import NEEDED, ServerFacts
from provisioner.transport.psrp import clixml
from provisioner.transport.psrp.client import Client, Outcome, ProtocolFailure
from provisioner.transport.psrp.records import error_record, warning_record
from provisioner.transport.psrp.wire import WireError
from provisioner.transport.runner import (
    NotRunnable,
    Origin,
    Pipeline,
    Raw,
    TransportLost,
    origin,
    refuse_unrunnable,
    wire_value,
)

#: What a broken transport, session or protocol raises (the engine reopens the session or reports unknowns).
LOST = (WinRMError, requests.exceptions.RequestException, OSError, ProtocolFailure, WireError,
        clixml.ClixmlError, psrpcore.PSRPCoreError)


def raw_of(outcome: Outcome) -> Raw:
    raw = Raw(output=list(outcome.output))
    for record in outcome.errors:
        stream_record = error_record(record)
        raw.errors.append((records.error_info(stream_record), origin(stream_record)))
    for record in outcome.warnings:
        stream_record = warning_record(record)
        raw.warnings.append((records.warning_text(stream_record), origin(stream_record)))
    if outcome.failed:
        if outcome.failure is not None:
            stream_record = error_record(outcome.failure)
            raw.failure = (records.error_info(stream_record), origin(stream_record))
        else:
            raw.failure = (ErrorInfo("the pipeline failed without an error record", category="NotSpecified"), Origin())
    return raw


class ClientRunner:
    """Command mode (NoLanguage endpoint) over the tool's own client."""

    piping = True

    def __init__(self, client: Client, facts: ServerFacts) -> None:
        self.client = client
        self.facts = facts

    def run(self, pipeline: Pipeline) -> Raw:
        refuse_unrunnable(pipeline, self.facts)
        ps = self.client.powershell(pipeline.input is not None)
        for index, chain in enumerate(pipeline.statements):
            if index:
                ps.add_statement()
            for command in chain:
                ps.add_command(str(command.cmdlet))
                for parameter in command.parameters:
                    # a switch is sent as pypsrp sends it (a null value: PowerShell binds the switch as present)
                    ps.add_parameter(str(parameter.name), None if parameter.is_switch else wire_value(parameter.value))
        return invoke(self.client, ps, pipeline.input)


def invoke(client: Client, ps: psrpcore.ClientPowerShell, pipeline_input: Sequence[str] | None = None) -> Raw:
    try:
        outcome = client.invoke(ps, pipeline_input)
    except LOST as exc:
        raise TransportLost(f"{type(exc).__name__}: {exc}") from exc
    return raw_of(outcome)


class ClientScriptRunner:
    """Script mode (a full-language endpoint): each command as the reviewed script shows it, one per pipeline."""

    piping = False

    def __init__(self, client: Client, facts: ServerFacts) -> None:
        self.client = client
        self.facts = facts

    def run_preamble(self, script: str) -> Raw:
        return invoke(self.client, self.client.powershell(False).add_script(script))

    def run(self, pipeline: Pipeline) -> Raw:
        from provisioner.powershell.render import render_command

        if pipeline.input is not None or len(pipeline.statements) != 1:
            raise NotRunnable("script mode runs one command chain per pipeline, without input")
        script = " | ".join(render_command(command) for command in pipeline.statements[0])
        return invoke(self.client, self.client.powershell(False).add_script(script))


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return records.text(value)


def read_facts(client: Client, cmdlets: Iterable[str] = tuple(NEEDED)) -> ServerFacts:
    """The facts of an open client's server: protocol (SESSION_CAPABILITY), PSVersionTable
    (APPLICATION_PRIVATE_DATA) and the cmdlets and parameters this account has (GET_COMMAND_METADATA)."""
    cmdlets = tuple(cmdlets)  # the run's: Select-Object among them (whether reads may be projected)
    notes: list[str] = []
    commands: dict[str, frozenset[str]] | None
    try:
        metadata = client.command_metadata(cmdlets)
    except LOST as exc:  # a server that does not answer GET_COMMAND_METADATA: probed per cmdlet by check
        notes.append(f"command metadata not available ({type(exc).__name__}); parameters were not checked")
        commands = None
    else:
        commands = {}
        for entry in metadata:
            props = clixml.properties(entry)
            parameters = props.get("Parameters")
            names = parameters.keys() if isinstance(parameters, Mapping) else ()
            commands[records.text(props.get("Name"))] = frozenset(str(key).casefold() for key in names)
    table = client.application_private_data.get("PSVersionTable")
    versions = {str(name): _plain(value) for name, value in table.items()} if isinstance(table, Mapping) else {}
    return ServerFacts(client.protocol_version, versions, commands, tuple(notes),
                       frozenset(name.casefold() for name in cmdlets))
