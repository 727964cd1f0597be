"""Starting a lab: the engine (an in-memory Exchange org) behind the protocol server, on 127.0.0.1.

``running_lab()`` is what tests, benchmarks and the demo use; ``serve()`` is ``provisioner lab``. Both take a server
profile (``exchange2010``, ``exchange2010sp1``, ``exchange2013``, ``exchange2019``: :mod:`provisioner_lab.profiles`),
and ``running_lab``/``build_engine`` a cost model and RBAC trims::

    with running_lab(profile="exchange2010", cost=CostModel.exchange_like(),
                     rbac={"lab-admin": {"Add-MailboxPermission": {"AutoMapping"}}}) as lab:
        ...
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from provisioner_lab.exchange.cost import CostModel
from provisioner_lab.exchange.engine import EngineOptions, ExchangeEngine
from provisioner_lab.exchange.rbac import RbacOption
from provisioner_lab.profiles import ServerProfile, get_profile
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
    *,
    seed: Path | None = None,
    mailboxes: int = 0,
    full_language: bool = False,
    options: EngineOptions | None = None,
    profile: str | ServerProfile | None = None,
    cost: CostModel | None = None,
    rbac: RbacOption | None = None,
) -> ExchangeEngine:
    """An engine over the demo seed (or ``seed``, or ``mailboxes`` generated ones). ``profile``, ``cost`` and
    ``rbac`` override the same fields of ``options`` when given."""
    opts = options or EngineOptions(language_mode="FullLanguage" if full_language else "NoLanguage")
    overrides: dict[str, Any] = {}
    if profile is not None:
        overrides["profile"] = get_profile(profile)
    if cost is not None:
        overrides["cost"] = cost
    if rbac is not None:
        overrides["rbac"] = rbac
    if overrides:
        opts = replace(opts, **overrides)
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
    profile: str | ServerProfile | None = None,
    cost: CostModel | None = None,
    rbac: RbacOption | None = None,
    **server_options: Any,
) -> Iterator[Lab]:
    """A started lab server on 127.0.0.1 (stopped on exit). Without ``engine`` one is built with
    :func:`build_engine`; with it, ``profile``/``cost``/``rbac`` must be left out (they belong to the engine)."""
    if engine is None:
        engine = build_engine(seed=seed, mailboxes=mailboxes, full_language=full_language, profile=profile,
                              cost=cost, rbac=rbac)
    elif profile is not None or cost is not None or rbac is not None:
        raise ValueError("running_lab(engine=...) takes the profile, cost and rbac of that engine's options")
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
    profile: str | ServerProfile | None = None,
    cost: bool = False,
) -> None:
    """Run a lab in the foreground until SIGINT/SIGTERM; print how to connect to it. ``cost`` turns on the
    Exchange-like cost model (:meth:`CostModel.exchange_like`)."""
    stop = threading.Event()
    faults = FaultOptions(latency_ms=float(latency_ms))
    server_profile = get_profile(profile)
    model = CostModel.exchange_like() if cost else None
    with running_lab(seed=seed, mailboxes=mailboxes, full_language=full_language, port=port, faults=faults,
                     profile=server_profile, cost=model) as lab:
        echo(f"lab endpoint listening on http://127.0.0.1:{lab.port}{lab.server.path}")
        echo(f"  profile {server_profile.name}: {server_profile.description}, PSRP protocol "
             f"{server_profile.protocol_version}")
        echo(f"  configuration {lab.server.configuration_name}, "
             f"{'FullLanguage' if full_language else 'NoLanguage'}, users: {lab.username}")
        if model is not None:
            echo(f"  cost model on: {model.per_pipeline_ms:g} ms a pipeline, {model.per_invocation_ms:g} ms an "
                 f"invocation, {model.per_record_ms:g} ms a record, {model.per_write_ms:g} ms a write")
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
