"""Starting an Exchange Online lab: engine (in-memory org), token issuer and REST endpoint on 127.0.0.1 over TLS.

``running_exo_lab()`` is what tests and benchmarks use; ``serve_exo()`` is ``provisioner lab --exo``::

    with running_exo_lab(mailboxes=100, faults=ExoFaults(throttle_every=7)) as lab:
        config = lab.config_toml()          # [connection] backend = "exo" and the [exo] table
        lab.requests.snapshot()             # what the client sent
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner_lab.exchange.engine import EngineOptions, ExchangeEngine
from provisioner_lab.exo.issuer import AppRegistration, Issuer
from provisioner_lab.exo.pki import make_app_certificate, make_tls
from provisioner_lab.exo.rest import ExoFaults, ExoServer, ExoService, Requests

TENANT_ID = "6babcaad-604b-40ac-a9d7-9fd97c0b779f"
TENANT_DOMAIN = "contoso.onmicrosoft.com"
APP_ID = "3f1a9c62-1d1e-4a7b-9a35-5b0e0c8f4d21"


@dataclass
class ExoLab:
    server: ExoServer
    service: ExoService
    engine: ExchangeEngine
    folder: Path
    ca_bundle: Path
    certificate: Path  # the app's PEM (private key + certificate), as the product is configured with it
    app_id: str = APP_ID
    tenant_id: str = TENANT_ID
    tenant_domain: str = TENANT_DOMAIN

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def requests(self) -> Requests:
        return self.service.requests

    @property
    def issuer(self) -> Issuer:
        return self.service.issuer

    @property
    def app(self) -> AppRegistration:
        return self.issuer.apps[self.app_id]

    def set_faults(self, faults: ExoFaults) -> None:
        self.service.set_faults(faults)

    def config_toml(self, *, batch: bool = True, tenant: str | None = None, page_size: int | None = None,
                    retry_base_seconds: float | None = None) -> str:
        """``[connection]`` and ``[exo]`` tables for this lab (absolute paths: any config folder works)."""
        lines = [
            "[connection]",
            'backend = "exo"',
            "[exo]",
            f'tenant = "{tenant or self.tenant_domain}"',
            f'app_id = "{self.app_id}"',
            f'certificate = "{self.certificate}"',
            f'host = "{self.base_url}"',
            f'login_host = "{self.base_url}"',
            f'ca_bundle = "{self.ca_bundle}"',
            f"batch = {str(batch).lower()}",
        ]
        if page_size is not None:
            lines.append(f"page_size = {page_size}")
        if retry_base_seconds is not None:
            lines.append(f"retry_base_seconds = {retry_base_seconds}")
        return "\n".join(lines) + "\n"


@contextmanager
def running_exo_lab(
    *,
    engine: ExchangeEngine | None = None,
    mailboxes: int = 0,
    faults: ExoFaults | None = None,
    port: int = 0,
    latency_ms: float = 0.0,
    options: EngineOptions | None = None,
    consented: bool = True,
    exchange_role: bool = True,
    cmdlets: frozenset[str] | None = None,
) -> Iterator[ExoLab]:
    """A started EXO lab (stopped on exit): its own throwaway CA, TLS certificate and app certificate in a temp
    folder, one app registration (``APP_ID``) with that certificate."""
    if engine is None:
        opts = options or EngineOptions()
        engine = ExchangeEngine.generated(mailboxes, opts) if mailboxes else ExchangeEngine.from_seed(None, opts)
    with tempfile.TemporaryDirectory(prefix="provisioner-exo-lab-") as name:
        folder = Path(name)
        tls = make_tls(folder)
        app_cert = make_app_certificate()
        certificate = folder / "app.pem"
        certificate.write_text(app_cert.pem, encoding="ascii")
        certificate.chmod(0o600)
        issuer = Issuer("", TENANT_ID, TENANT_DOMAIN)
        issuer.apps[APP_ID] = AppRegistration(APP_ID, app_cert, consented, exchange_role, cmdlets)
        service = ExoService(engine, issuer, faults)
        server = ExoServer(service, tls, port=port, latency_ms=latency_ms)
        issuer.base_url = f"https://127.0.0.1:{server.port}"
        server.start()
        try:
            yield ExoLab(server, service, engine, folder, tls.ca, certificate)
        finally:
            server.stop()


def serve_exo(*, port: int, mailboxes: int, echo: Callable[[str], None], ready_file: Path | None = None,
              faults: ExoFaults | None = None, latency_ms: float = 0.0, **_: Any) -> None:
    """Run an EXO lab in the foreground until SIGINT/SIGTERM; print how to configure provisioner for it."""
    import signal

    stop = threading.Event()
    with running_exo_lab(mailboxes=mailboxes, port=port, faults=faults, latency_ms=latency_ms) as lab:
        config = lab.folder / "provisioner-exo.toml"
        config.write_text(lab.config_toml(), encoding="utf-8")
        echo(f"Exchange Online lab listening on {lab.base_url} (REST endpoint and token issuer)")
        echo(f"  tenant {lab.tenant_domain} ({lab.tenant_id}), app {lab.app_id}, certificate {lab.certificate}")
        echo(f"  configuration for provisioner: {config}  (use --config {config})")
        echo("  this is a lab: a fake Exchange Online in memory, for demos and tests only. Ctrl-C stops it.")
        if ready_file is not None:
            ready_file.write_text(f"{lab.port}\n{config}\n", encoding="utf-8")
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
        echo("Exchange Online lab stopped")


def new_app_id() -> str:
    return str(uuid.uuid4())
