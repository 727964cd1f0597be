"""The seam below the engine: a :class:`Runner` runs one :class:`Pipeline` and hands back what came out (:class:`Raw`).

A pipeline is one or more statements, each a chain of commands piped into each other, plus optional pipeline
input (the identities of a piped shape). The product runs them with the tool's own client
(:mod:`provisioner.transport.psrp.runner`: ``ClientRunner`` in command mode, ``ClientScriptRunner`` in script mode);
this module keeps what every runner shares (:class:`Raw`, :class:`Origin`, :func:`origin`, :func:`wire_value`, the
rule of what is never sent). pypsrp's own runners, the reference the client is proven against, live with the tests
(``tests/pypsrp_reference.py``).

Non-terminating errors (Exchange's "couldn't be found") are kept apart from the terminating failure in
:class:`Raw`, each with its :class:`Origin` (command, bound -Identity/-User, TargetObject) so the engine can
attribute them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
