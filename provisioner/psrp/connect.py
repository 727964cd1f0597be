"""Opening a session with the tool's own client: the same settings, checks and failure sentences as
:func:`provisioner.session.open_pool` (the WSMan connection is built by :func:`provisioner.session.build_wsman`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from provisioner.config import Connection
from provisioner.errors import ConnectionFailure
from provisioner.psrp.client import Bounds, Client
from provisioner.session import build_wsman, check_connection_settings, describe_failure


def bounds_for(connection: Connection, deadline: float | None = None) -> Bounds:
    """A receive loop may go six operation timeouts (plus a margin) without progress; ``deadline`` is monotonic."""
    return Bounds(stall_seconds=6.0 * connection.operation_timeout + 10.0, deadline=deadline)


@contextmanager
def open_client(connection: Connection, password: str | None, deadline: float | None = None) -> Iterator[Client]:
    """An open :class:`Client` (one runspace), closed on exit."""
    check_connection_settings(connection)
    try:
        client = Client(build_wsman(connection, password), connection.configuration_name,
                        bounds_for(connection, deadline))
        client.open()
    except ConnectionFailure:
        raise
    except Exception as exc:  # pypsrp, requests, spnego/gssapi and psrpcore errors have no common base class
        raise describe_failure(exc, connection) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):  # best effort: the session expires on the server anyway
            client.close()


def monotonic_deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds
