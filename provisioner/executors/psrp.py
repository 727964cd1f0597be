"""Running steps over a pypsrp RunspacePool, in command mode or script mode, with an exact outcome per item.

The two modes differ only in how a step becomes a pipeline:

- command mode (the ``Microsoft.Exchange`` endpoint, NoLanguage): ``add_cmdlet`` + ``add_parameter`` per
  parameter, values as real strings/booleans/arrays; no text is ever parsed on the server;
- script mode (a full-language endpoint): ``add_script`` with the step rendered by the same template as the
  reviewed script, after a preamble run once in the same runspace.

pypsrp 0.9.1 sets ``had_errors`` only when a pipeline fails; Exchange's "couldn't be found" and similar errors
are non-terminating and appear only in ``streams.error``. Every invocation is therefore judged on
``had_errors`` *and* the error stream, and since each pipeline carries exactly one (mailbox, trustee) step,
every error is attributed exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pypsrp.exceptions import WinRMError
from pypsrp.powershell import PowerShell, RunspacePool
from requests.exceptions import RequestException

from provisioner import steps as step_builders
from provisioner.executors import records
from provisioner.model import ErrorInfo, Identity, Observation, Outcome, Result, Trustee
from provisioner.planner import PairKey, key
from provisioner.pwsh import Bare
from provisioner.render import render_step
from provisioner.steps import Step, StepOptions, Value

Encoder = Callable[[PowerShell, Step], None]
Progress = Callable[[int], None]


def _wire(value: Value) -> Any:
    if isinstance(value, tuple):
        return [str(token) for token in value]
    if isinstance(value, Bare):
        return str(value)
    return value


def encode_command(ps: PowerShell, step: Step) -> None:
    """Command mode: a structured command, parameters as values (never parsed as code on the server)."""
    ps.add_cmdlet(str(step.cmdlet))
    for parameter in step.parameters:
        if parameter.is_switch:
            ps.add_parameter(str(parameter.name))
        else:
            ps.add_parameter(str(parameter.name), _wire(parameter.value))


def encode_script(ps: PowerShell, step: Step) -> None:
    """Script mode: the step's line exactly as the reviewed script shows it."""
    ps.add_script(render_step(step))


@dataclass
class Invocation:
    output: list[Any] = field(default_factory=list)
    errors: list[ErrorInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed: bool = False

    @property
    def first_error(self) -> ErrorInfo | None:
        return self.errors[0] if self.errors else None


class TransportLost(Exception):
    """The session broke mid-run; the caller reports every unfinished item as unknown."""


def run_pipeline(ps: PowerShell) -> Invocation:
    """Invoke ``ps`` and collect its output, error records and warnings; a broken transport is TransportLost."""
    try:
        output = ps.invoke()
    except (WinRMError, RequestException, OSError) as exc:
        raise TransportLost(f"{type(exc).__name__}: {exc}") from exc
    result = Invocation(output=list(output or []), failed=bool(ps.had_errors))
    result.errors = [records.error_info(record) for record in ps.streams.error]
    result.warnings = [records.warning_text(record) for record in ps.streams.warning]
    if result.failed and not result.errors:
        result.errors.append(ErrorInfo("the pipeline failed without an error record", category="NotSpecified"))
    return result


class PsrpExecutor:
    """Observes and applies steps over an open RunspacePool."""

    def __init__(self, pool: RunspacePool, encoder: Encoder, options: StepOptions) -> None:
        self.pool = pool
        self.encoder = encoder
        self.options = options

    def invoke(self, step: Step) -> Invocation:
        ps = PowerShell(self.pool)
        self.encoder(ps, step)
        return run_pipeline(ps)

    def run_preamble(self, script: str) -> Invocation:
        ps = PowerShell(self.pool)
        ps.add_script(script)
        return run_pipeline(ps)

    def observe(
        self, mailboxes: Iterable[Identity], trustees: Iterable[Trustee], progress: Progress | None = None
    ) -> dict[PairKey, Observation]:
        """Get-MailboxPermission -Identity M -User T for every pair; an unreadable pair is UNKNOWN, not absent."""
        observed: dict[PairKey, Observation] = {}
        trustee_list = list(trustees)
        for mailbox in mailboxes:
            for trustee in trustee_list:
                observed[key(mailbox, trustee)] = self._observe_one(mailbox, trustee)
                if progress:
                    progress(1)
        return observed

    def _observe_one(self, mailbox: Identity, trustee: Trustee) -> Observation:
        result = self.invoke(step_builders.read(mailbox, trustee, self.options))
        error = result.first_error
        if error is not None:
            return Observation.unreadable(error)
        entries = []
        for obj in result.output:
            entry = records.permission_entry(obj)
            if entry is None:
                types = ", ".join(records.type_names(obj)) or type(obj).__name__
                unexpected = ErrorInfo(f"unexpected output object ({types})", category="InvalidResult")
                return Observation.unreadable(unexpected)
            entries.append(entry)
        return Observation.from_entries(entries)

    def apply(self, changes: Iterable[Step], progress: Progress | None = None) -> Iterator[Outcome]:
        """One outcome per step: its pipeline's own errors decide, warnings are kept with the outcome."""
        for step in changes:
            result = self.invoke(step)
            done = Result.REMOVED if str(step.cmdlet) == "Remove-MailboxPermission" else Result.GRANTED
            error = result.first_error
            if error is not None:
                yield Outcome(step.mailbox, step.trustee, Result.FAILED, error.message, error, tuple(result.warnings))
            else:
                yield Outcome(step.mailbox, step.trustee, done, "", None, tuple(result.warnings))
            if progress:
                progress(1)
