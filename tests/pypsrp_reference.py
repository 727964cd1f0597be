"""pypsrp's own path, the reference the tool's PSRP client is proven against (``tests/test_psrp_client.py``): the
product no longer uses it.

- :class:`PsrpRunner`, command mode (the ``Microsoft.Exchange`` endpoint, NoLanguage): ``add_cmdlet`` /
  ``add_parameter`` / ``add_statement`` and ``invoke(input=...)`` of pypsrp's public API; values travel as
  parameters, never as text. It refuses what the product's runner refuses (:func:`refuse_unrunnable`);
- :class:`ScriptRunner`, script mode (a full-language endpoint): the command rendered by the same template as the
  reviewed script, after a preamble; one command per pipeline, no input;
- :func:`read_facts`: the server facts of an open pypsrp RunspacePool (protocol, PSVersionTable, command metadata).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import WinRMError
from pypsrp.powershell import PowerShell, RunspacePool
from requests.exceptions import RequestException

from provisioner.domain.model import ErrorInfo
from provisioner.transport import records
from provisioner.transport.facts import NEEDED, ServerFacts
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


def collect(ps: PowerShell, output: list[Any] | None) -> Raw:
    """A finished pypsrp pipeline as Raw. pypsrp appends the terminating error record (PIPELINE_STATE Failed) last
    to ``streams.error``: that one is the failure."""
    errors = list(ps.streams.error)
    raw = Raw(output=list(output or []))
    failed = bool(ps.had_errors) or ps.state == PSInvocationState.FAILED
    failure_record = errors.pop() if failed and errors else None
    raw.errors = [(records.error_info(record), origin(record)) for record in errors]
    raw.warnings = [(records.warning_text(record), origin(record)) for record in ps.streams.warning]
    if failed:
        if failure_record is not None:
            raw.failure = (records.error_info(failure_record), origin(failure_record))
        else:
            raw.failure = (ErrorInfo("the pipeline failed without an error record", category="NotSpecified"), Origin())
    return raw


def invoke(pool: RunspacePool, ps: PowerShell, pipeline_input: Sequence[str] | None = None) -> Raw:
    # one batch of records: pypsrp packs them into as few Send requests as their fragments need
    records_in = None if pipeline_input is None else (batch for batch in [list(pipeline_input)])
    try:
        output = ps.invoke(input=records_in)
    except (WinRMError, RequestException, OSError) as exc:
        raise TransportLost(f"{type(exc).__name__}: {exc}") from exc
    return collect(ps, output)  # (pypsrp keeps the finished pipeline until the pool closes: this path is the
    # differential tests' reference now, short-lived; the product's client keeps no such list)


class PsrpRunner:
    """Command mode over an open pypsrp RunspacePool (public API only)."""

    piping = True

    def __init__(self, pool: RunspacePool, facts: ServerFacts) -> None:
        self.pool = pool
        self.facts = facts

    def run(self, pipeline: Pipeline) -> Raw:
        refuse_unrunnable(pipeline, self.facts)
        ps = PowerShell(self.pool)
        for index, chain in enumerate(pipeline.statements):
            if index:
                ps.add_statement()
            for command in chain:
                ps.add_cmdlet(str(command.cmdlet))
                for parameter in command.parameters:
                    if parameter.is_switch:
                        ps.add_parameter(str(parameter.name))
                    else:
                        ps.add_parameter(str(parameter.name), wire_value(parameter.value))
        return invoke(self.pool, ps, pipeline.input)


class ScriptRunner:
    """Script mode: each command as the reviewed script shows it (``add_script``), one command per pipeline."""

    piping = False

    def __init__(self, pool: RunspacePool, facts: ServerFacts) -> None:
        self.pool = pool
        self.facts = facts

    def run_preamble(self, script: str) -> Raw:
        ps = PowerShell(self.pool)
        ps.add_script(script)
        return invoke(self.pool, ps)

    def run(self, pipeline: Pipeline) -> Raw:
        from provisioner.powershell.render import render_command

        if pipeline.input is not None or len(pipeline.statements) != 1:
            raise NotRunnable("script mode runs one command chain per pipeline, without input")
        ps = PowerShell(self.pool)
        ps.add_script(" | ".join(render_command(command) for command in pipeline.statements[0]))
        return invoke(self.pool, ps)


def _table(data: Any) -> dict[str, str]:
    """PSVersionTable out of pypsrp's ApplicationPrivateData (a dict, possibly nested in a ``data`` attribute)."""
    payload = getattr(data, "data", data)
    if not isinstance(payload, Mapping):
        return {}
    table = payload.get("PSVersionTable")
    if not isinstance(table, Mapping):
        return {}
    return {str(name): records.text(value) for name, value in table.items()}


def read_facts(pool: RunspacePool, cmdlets: Iterable[str] = tuple(NEEDED)) -> ServerFacts:
    """The facts of an open pypsrp RunspacePool (public API only), asking what the product's client asks."""
    protocol = records.text(getattr(pool, "protocol_version", "") or "")
    cmdlets = tuple(cmdlets)
    metadata = pool.get_command_metadata(list(cmdlets))
    commands: dict[str, frozenset[str]] = {}
    for entry in metadata:
        name = records.text(getattr(entry, "name", ""))
        parameters = getattr(entry, "parameters", None) or {}
        commands[name] = frozenset(str(key).casefold() for key in parameters)
    # APPLICATION_PRIVATE_DATA may arrive with the first answer after the pool opened: read it after the metadata
    table = _table(getattr(pool, "application_private_data", None))
    return ServerFacts(protocol, table, commands, (), frozenset(name.casefold() for name in cmdlets))
