"""The exception tree, and the one map from exceptions to exit codes (used only at the CLI edge)."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0  # done / compliant
    ITEMS_FAILED = 1  # some items failed, blocked or unknown; the rest was still done
    USAGE = 2  # usage or input error: nothing was sent
    DRIFT = 3  # audit found drift
    CONNECTION = 4  # connection or authentication failure
    LOCKED = 5  # another run holds the lock
    TOO_MANY_CHANGES = 6  # the plan exceeds --max-changes: nothing was applied
    PLAN_DRIFT = 7  # apply: the live state or the server moved since the saved plan was made; nothing was applied
    DECLINED = 8  # the confirmation prompt was answered no: nothing was applied
    OUTPUT = 9  # the run finished, but a file it was to write (report, HTML, metrics, list, script) could not be


class ProvisionerError(Exception):
    """Base of every error the tool reports to the user as a message (never as a traceback)."""

    exit_code: ExitCode = ExitCode.USAGE


class InputError(ProvisionerError):
    """Bad input (users file, config, options). Raised before anything is sent to Exchange."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConnectionFailure(ProvisionerError):
    """The endpoint could not be reached, refused us, or the session could not be opened. ``transient``: worth
    another try (a reset, a timeout, HTTP 5xx), not a refusal (authentication, a wrong path or configuration)."""

    exit_code = ExitCode.CONNECTION

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False) -> None:
        self.hint = hint
        self.transient = transient
        super().__init__(f"{message} {hint}" if hint else message)


class SessionLostForGood(ConnectionFailure):
    """The session broke and could not be reopened within the retries or the run's deadline. The engine does not
    raise it: it returns every outcome (``unknown`` for what is not known) and records the condition
    (``Engine.lost``); the run reports it as this error's exit code (4) after writing the report."""


class OutputError(ProvisionerError):
    """A file the run was to write could not be written (its folder gone, the disk full): the run itself stands."""

    exit_code = ExitCode.OUTPUT

    @classmethod
    def writing(cls, what: str, path: Path, error: OSError) -> OutputError:
        return cls(f"cannot write {what} {path}: {error.strerror or error}")


class Declined(ProvisionerError):
    """The admin answered no at a confirmation prompt."""

    exit_code = ExitCode.DECLINED
