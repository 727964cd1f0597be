"""The run log operators collect: one start line and one summary line per run, as text or JSON, to stderr, a file
(``--log-file``) or the local syslog/journald socket (``--log-syslog``).

A run begins when its configuration is read (:func:`begin`: the command, the config file and why) and ends when the
process exits (:func:`end`: the exit code, the duration, the counts the run recorded with :func:`record`, and the
error that stopped it, if any). Both lines are INFO, the default level; ``-v`` adds the transport's debug logs to
stderr as before, never to these destinations. Nothing secret is ever logged (no password, no token, no name list).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner.version import __version__

LOGGER_NAME = "provisioner.run"
FORMATS = ("text", "json")
SYSLOG_SOCKET = "/dev/log"  # syslog's and journald's local datagram socket on Linux


class LogSetupError(Exception):
    """A log destination cannot be used: ``option`` names the option, the message says why."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        value = ",".join(f"{key}:{count}" for key, count in sorted(value.items())) or "-"
    text = str(value)
    if not text or any(char.isspace() or char in '"=\\' for char in text) or not text.isprintable():
        return json.dumps(text, ensure_ascii=True)
    return text


class TextFormatter(logging.Formatter):
    """``2026-12-05T10:50:00.123Z provisioner INFO start run=… action=grant config=/etc/…`` (one line; values with
    spaces, quotes or non-printable characters are JSON-quoted, so a line is always one line)."""

    def __init__(self, *, stamp: bool = True) -> None:
        super().__init__()
        self.stamp = stamp

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        head = f"{_timestamp(record)} provisioner " if self.stamp else ""
        return f"{head}{record.levelname} {record.getMessage()} {pairs}".rstrip()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``event``, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        document = {"time": _timestamp(record), "level": record.levelname, "logger": "provisioner",
                    "event": record.getMessage(), **fields}
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class RunLog:
    """The process's run: its id, when it began, what it did. One per process (:data:`RUN`), reset by
    :meth:`configure` at every command line parsed (in-process test runners parse many)."""

    run: str = ""
    command: list[str] = field(default_factory=list)  # the subcommand's words: ["plan", "grant"]
    action: str | None = None
    config: str | None = None
    config_origin: str | None = None
    began: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    journal_run: str | None = None
    attention: int | None = None
    error: str | None = None
    start_logged: bool = False
    handlers: list[logging.Handler] = field(default_factory=list)

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(LOGGER_NAME)

    def configure(self, log_format: str = "text", log_file: Path | None = None, syslog: bool = False,
                  syslog_socket: str = SYSLOG_SOCKET) -> None:
        """Where the lines go: the file and/or syslog when given, stderr otherwise."""
        self.close()
        self.run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
        self.action = self.config = self.config_origin = self.began = self.journal_run = self.error = None
        self.attention = None
        self.counts = {}
        self.command = []
        if log_format not in FORMATS:
            raise LogSetupError("--log-format", f"'{log_format}' is not one of {', '.join(FORMATS)}")
        formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
        if log_file is not None:
            try:  # created owner-only, as reports and journals are (an error line may name a mailbox)
                os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
                handler: logging.Handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
            except OSError as exc:
                raise LogSetupError("--log-file", f"cannot open {log_file}: {exc.strerror or exc}") from None
            handler.setFormatter(formatter)
            self.handlers.append(handler)
        if syslog:
            self.handlers.append(_syslog_handler(syslog_socket, log_format))
        if not self.handlers:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(formatter)
            self.handlers.append(stream)
        logger = self.logger
        logger.setLevel(logging.INFO)
        logger.propagate = False  # -v's stderr handler on "provisioner" must not print these twice
        for handler in self.handlers:
            logger.addHandler(handler)

    def close(self) -> None:
        for handler in self.handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self.handlers = []

    def begin(self, config: Path | None, origin: str | None, *, log: bool = True) -> None:
        """The run begins (once; a command that reads its configuration twice begins once). The start line is
        logged now, or with ``log=False`` just before the summary line (so that an error stays first on stderr)."""
        if self.began is not None:
            return
        self.began = time.monotonic()
        self.action, self.config_origin = " ".join(self.command) or "provisioner", origin
        self.config = str(config) if config is not None else None
        self.start_logged = False
        if log:
            self._log_start()

    def _log_start(self) -> None:
        self.start_logged = True
        self._log("start", action=self.action, version=__version__, config=self.config,
                  config_origin=self.config_origin, pid=os.getpid(), user=_user())

    def record(self, counts: Mapping[str, int], journal_run: str | None, attention: int | None = None) -> None:
        """The run's counts per result, its journal run id and how many items need attention, for the summary."""
        self.counts = dict(counts)
        self.journal_run = journal_run
        self.attention = attention

    def failed(self, message: str) -> None:
        """The error that stopped the run: its first line (a plan's diff or a list stays on stderr)."""
        self.error = message.splitlines()[0] if message else message

    def end(self, exit_code: int) -> None:
        """The summary line (only for a run that began)."""
        if self.began is None:
            return
        if not self.start_logged:
            self._log_start()
        duration = round(time.monotonic() - self.began, 3)
        self.began = None
        fields: dict[str, Any] = {"action": self.action, "exit_code": exit_code, "duration_seconds": duration,
                                  "items": sum(self.counts.values()), "counts": self.counts,
                                  "attention": self.attention, "journal_run": self.journal_run}
        if self.error is not None:
            fields["error"] = self.error
        self._log("summary", **fields)

    def _log(self, event: str, **fields: Any) -> None:
        if self.handlers:
            self.logger.info(event, extra={"fields": {"run": self.run, **fields}})


def _user() -> str | None:
    try:
        import getpass

        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return None


def _syslog_handler(address: str, log_format: str) -> logging.Handler:
    """Syslog/journald over the local datagram socket (facility user; the ident is ``provisioner[pid]:``)."""
    if sys.platform == "win32":
        raise LogSetupError("--log-syslog", "there is no syslog on Windows: use --log-file (Task Scheduler) instead")
    try:  # SysLogHandler defers a failed connect to the first line: find out now, before anything is sent
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
        handler = logging.handlers.SysLogHandler(address=address, facility=logging.handlers.SysLogHandler.LOG_USER,
                                                 socktype=socket.SOCK_DGRAM)
    except OSError as exc:
        raise LogSetupError("--log-syslog", f"cannot reach syslog at {address}: {exc.strerror or exc}") from None
    handler.ident = f"provisioner[{os.getpid()}]: "
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(stamp=False))
    return handler


RUN = RunLog()
