"""Starting a lab: the engine (an in-memory Exchange org) behind the protocol server, on 127.0.0.1.

``running_lab()`` is what tests, benchmarks and the demo use; ``serve()`` is ``provisioner lab``.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner_lab.exchange.engine import EngineOptions, ExchangeEngine
from provisioner_lab.server import DEFAULT_USERS, FaultOptions, LabServer

LAB_USER, LAB_PASSWORD = next(iter(DEFAULT_USERS.items()))
FULL_LANGUAGE_CONFIGURATION = "Microsoft.PowerShell"


@dataclass
class Lab:
    server: LabServer
    engine: ExchangeEngine
    username: str = LAB_USER
    password: str = LAB_PASSWORD

    @property
    def port(self) -> int:
        return int(self.server.port)

    def cli_args(self, auth: str = "ntlm") -> list[str]:
        """Connection options for the provisioner CLI (the password goes in PROVISIONER_PASSWORD)."""
        args = ["--server", "127.0.0.1", "--port", str(self.port), "--auth", auth, "--username", self.username]
        if auth == "basic":
            args.append("--insecure-lab")
        return args

    def config_toml(self, auth: str = "ntlm") -> str:
        """A [connection] table for this lab."""
        lines = [
            "[connection]",
            'server = "127.0.0.1"',
            f"port = {self.port}",
            f'auth = "{auth}"',
            f'username = "{self.username}"',
            f'configuration_name = "{self.server.configuration_name}"',
        ]
        if auth == "basic":
            lines.append("insecure_lab = true")
        return "\n".join(lines) + "\n"


def build_engine(
    *, seed: Path | None = None, mailboxes: int = 0, full_language: bool = False, options: EngineOptions | None = None
) -> ExchangeEngine:
    opts = options or EngineOptions(language_mode="FullLanguage" if full_language else "NoLanguage")
    if mailboxes:
        return ExchangeEngine.generated(mailboxes, opts)
    return ExchangeEngine.from_seed(seed, opts)


@contextmanager
def running_lab(
    *,
    engine: ExchangeEngine | None = None,
    seed: Path | None = None,
    mailboxes: int = 0,
    full_language: bool = False,
    port: int = 0,
    faults: FaultOptions | None = None,
    **server_options: Any,
) -> Iterator[Lab]:
    engine = engine or build_engine(seed=seed, mailboxes=mailboxes, full_language=full_language)
    if full_language:
        server_options.setdefault("configuration_name", FULL_LANGUAGE_CONFIGURATION)
    server = LabServer(engine, port=port, faults=faults, **server_options)
    server.start()
    try:
        yield Lab(server, engine)
    finally:
        server.stop()


def serve(
    *,
    port: int,
    mailboxes: int,
    seed: Path | None,
    full_language: bool,
    latency_ms: int,
    ready_file: Path | None,
    echo: Callable[[str], None],
) -> None:
    """Run a lab in the foreground until SIGINT/SIGTERM; print how to connect to it."""
    stop = threading.Event()
    faults = FaultOptions(latency_ms=float(latency_ms))
    with running_lab(seed=seed, mailboxes=mailboxes, full_language=full_language, port=port, faults=faults) as lab:
        echo(f"lab endpoint listening on http://127.0.0.1:{lab.port}{lab.server.path}")
        echo(f"  configuration {lab.server.configuration_name}, "
             f"{'FullLanguage' if full_language else 'NoLanguage'}, users: {lab.username}")
        echo(f"  connect with: {' '.join(lab.cli_args())}  (PROVISIONER_PASSWORD='{lab.password}')")
        echo("  this is a lab: a fake Exchange in memory, for demos and tests only. Ctrl-C stops it.")
        # The directory (thousands of long-lived objects) is built by now; move it out of the collector's
        # generations so the full collections that per-request garbage triggers do not traverse it every time.
        gc.freeze()
        if ready_file is not None:
            ready_file.write_text(f"{lab.port}\n", encoding="utf-8")
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
        echo("lab endpoint stopped")
