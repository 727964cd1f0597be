"""Opening the Exchange Online backend: settings checked, the first token taken (exit 4 when it cannot be had)."""

from __future__ import annotations

from provisioner.errors import InputError
from provisioner.inputs.config import Connection
from provisioner.transport.backoff import Backoff
from provisioner.transport.exo.auth import TokenProvider, http_session, load_certificate
from provisioner.transport.exo.http import ExoClient
from provisioner.transport.exo.runner import ExoRunner
from provisioner.transport.guard import Deadline
from provisioner.transport.runner import FixedSession


def check_settings(connection: Connection) -> None:
    """Refuse settings the exo backend cannot use, before anything is sent."""
    settings = connection.exo
    missing = [name for name in ("tenant", "app_id", "certificate") if not getattr(settings, name)]
    if missing:
        raise InputError(f"the exo backend needs [exo] {', '.join(missing)} (see the documentation, 'Exchange Online')")
    if connection.domain_controller:
        raise InputError("Exchange Online has no -DomainController: remove connection.domain_controller "
                         "(replication delay is handled by the verify step)")
    if connection.mode != "command":
        raise InputError("the exo backend sends structured cmdlet calls: remove connection.mode = 'script' (the "
                         "reviewed script still shows the V3 module's Connect-ExchangeOnline)")
    load_certificate(settings.certificate or "")  # readable, key and certificate present: exit 2 otherwise


def open_client(connection: Connection) -> ExoClient:
    check_settings(connection)
    settings = connection.exo
    http = http_session(settings)
    tokens = TokenProvider(settings, http)
    # [exo] retry_attempts counts the tries, the first included
    backoff = Backoff(retries=settings.retry_attempts - 1, max_wait=float(settings.retry_max_seconds),
                      base=float(settings.retry_base_seconds), cap=30.0)
    return ExoClient(tokens, http, batch=settings.batch, page_size=settings.page_size, timeout=settings.timeout,
                     backoff=backoff)


class ExoSession(FixedSession):
    """The one REST "session" of a run: a client with its token cache. Reopening keeps it (tokens refresh
    themselves); reads run on it one batch after the other (no forks)."""

    def __init__(self, connection: Connection) -> None:
        self.client = open_client(connection)
        # every request is bounded by [exo] timeout and its retries by [exo] retry_*; the run's deadline stops
        # new batches (the engine)
        super().__init__(ExoRunner(self.client), Deadline(connection.run_deadline_seconds))

    def close(self) -> None:
        self.client.http.close()
