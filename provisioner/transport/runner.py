"""The seam below the engine: a :class:`Runner` runs one :class:`Pipeline` and hands back what came out (:class:`Raw`).

A pipeline is one or more statements, each a chain of commands piped into each other, plus optional pipeline
input (the identities of a piped shape). The product runs them with the tool's own client
(:mod:`provisioner.transport.psrp.runner`: ``ClientRunner`` in command mode, ``ClientScriptRunner`` in script mode);
this
module keeps what both clients share (:class:`Raw`, :class:`Origin`, :func:`origin`, :func:`wire_value`) and
pypsrp's own runners, the reference the client is proven against (``tests/test_psrp_client.py``):

- :class:`PsrpRunner`, command mode (the ``Microsoft.Exchange`` endpoint, NoLanguage): ``add_cmdlet`` /
  ``add_parameter`` / ``add_statement`` and ``invoke(input=...)`` of pypsrp's public API; values travel as
  parameters, never as text. It refuses a multi-statement pipeline on a server that would run only the first
  statement (protocol < 2.2, see :mod:`provisioner.transport.facts`);
- :class:`ScriptRunner`, script mode (a full-language endpoint): the command rendered by the same template as the
  reviewed script, after a preamble; one command per pipeline, no input.

Non-terminating errors (Exchange's "couldn't be found") are kept apart from the terminating failure in
:class:`Raw`, each with its :class:`Origin` (command, bound -Identity/-User, TargetObject) so the engine can
attribute them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import WinRMError
from pypsrp.powershell import PowerShell, RunspacePool
from requests.exceptions import RequestException

from provisioner.domain.model import ErrorInfo
from provisioner.errors import ExitCode, ProvisionerError
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import Command, Value
from provisioner.transport import records
from provisioner.transport.facts import ServerFacts
from provisioner.transport.guard import Deadline


class TransportLost(ProvisionerError):
    """The session broke mid-run; the caller reopens it or reports every unfinished item as unknown. Should one
    ever reach the command line's edge, it is a message and exit 4, never a traceback."""

    exit_code = ExitCode.CONNECTION


class NotRunnable(Exception):
    """A pipeline shape this runner's server would not run as written (a bug in the caller: never sent)."""


def refuse_unrunnable(pipeline: Pipeline, facts: ServerFacts) -> None:
    """The one rule of what is never sent: several statements to a server that runs only the first (protocol 2.1),
    and a piped pipeline without input (Get-Mailbox without input lists every mailbox)."""
    if len(pipeline.statements) > 1 and not facts.runs_statements:
        raise NotRunnable(f"a {len(pipeline.statements)}-statement pipeline on protocol "
                          f"{facts.protocol_version}: the server would run only the first statement")
    if pipeline.input is not None and not pipeline.input:
        raise NotRunnable("a piped pipeline without input")


@dataclass(frozen=True)
class Pipeline:
    """Statements in order (each a chain ``A | B``), and the input records piped into the first statement."""

    statements: tuple[tuple[Command, ...], ...]
    input: tuple[str, ...] | None = None

    @classmethod
    def of(cls, *chain: Command, input: Sequence[str] | None = None) -> Pipeline:
        return cls((tuple(chain),), tuple(input) if input is not None else None)


@dataclass(frozen=True)
class Origin:
    """What a record says about where it came from: command, bound -Identity/-User (None: not bound), target."""

    command: str = ""
    identity: str | None = None
    user: str | None = None
    target: str = ""


@dataclass
class Raw:
    """One pipeline's result: output objects, non-terminating errors and warnings with their origin, and the
    terminating failure (None: the pipeline completed)."""

    output: list[Any] = field(default_factory=list)
    errors: list[tuple[ErrorInfo, Origin]] = field(default_factory=list)
    warnings: list[tuple[str, Origin]] = field(default_factory=list)
    failure: tuple[ErrorInfo, Origin] | None = None

    @property
    def first_error(self) -> ErrorInfo | None:
        if self.errors:
            return self.errors[0][0]
        return self.failure[0] if self.failure else None


class Runner(Protocol):
    """Runs pipelines on one session. ``facts``: what the server is; ``piping``: pipeline input works (command
    mode); a runner that cannot pipe gets single-command pipelines only."""

    facts: ServerFacts
    piping: bool

    def run(self, pipeline: Pipeline) -> Raw: ...


def _bound(record: Any) -> Mapping[str, Any]:
    bound = getattr(record, "invocation_bound_parameters", None)
    return bound if isinstance(bound, Mapping) else {}


def origin(record: Any) -> Origin:
    """The origin of a pypsrp ErrorRecord or InformationalRecord (warnings carry InvocationInfo too)."""
    command = records.text(getattr(record, "activity", None) or getattr(record, "invocation_name", None))
    if not command:
        command = records.text(getattr(record, "command_name", None))
    bound = {str(name).casefold(): value for name, value in _bound(record).items()}
    identity = records.text(bound["identity"]) if bound.get("identity") is not None else None
    user = records.text(bound["user"]) if bound.get("user") is not None else None
    return Origin(command.strip(), identity, user, records.text(getattr(record, "target_object", None)))


def wire_value(value: Value) -> Any:
    if isinstance(value, tuple):
        return [str(token) for token in value]
    if isinstance(value, Bare):
        return str(value)
    return value


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


class FixedSession:
    """A session over a given runner (tests, and a second backend); ``reopen`` gives the same runner back."""

    def __init__(self, runner: Runner, deadline: Deadline | None = None) -> None:
        self.runner = runner
        self.deadline = deadline or Deadline()

    @property
    def facts(self) -> ServerFacts:
        return self.runner.facts

    def reopen(self) -> Runner:
        return self.runner

    def fork(self) -> FixedSession | None:
        return None  # one runner only: reads run one after the other

    def close(self) -> None:
        return None

    def __enter__(self) -> FixedSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
