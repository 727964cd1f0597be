"""Opening a PowerShell remoting session (pypsrp WSMan + the tool's own client): auth, TLS, credentials, diagnosis.

The password comes from the ``PROVISIONER_PASSWORD`` environment variable, the OS keyring
(``connection.keyring_service``) or an interactive prompt, never from the command line or the config file.
Transport failures become :class:`ConnectionFailure` with one clear sentence (exit 4); the password is never part
of any message.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import requests
from pypsrp.exceptions import AuthenticationError, WinRMError, WinRMTransportError, WSManFaultError
from pypsrp.wsman import WSMan

from provisioner.errors import ConnectionFailure, InputError
from provisioner.inputs.config import Connection
from provisioner.transport import guard
from provisioner.transport.psrp import kerberos

if TYPE_CHECKING:
    from provisioner.transport.psrp.client import Client

PASSWORD_ENV = "PROVISIONER_PASSWORD"
OPERATION_TIMED_OUT = 2150858793  # WSMan fault w:TimedOut
PASSWORD_AUTHS = frozenset({"negotiate", "ntlm", "basic", "credssp"})
log = logging.getLogger(__name__)


def resolve_password(connection: Connection, prompt: Callable[[str], str] | None = None) -> str | None:
    """The password for ``connection.username``: the environment first, then an interactive prompt.

    Certificate auth needs none; Kerberos uses the ticket cache (after kinit) or the keytab unless a username is
    configured and the environment holds a password.
    """
    if connection.backend == "exo":
        return None  # app-only with a certificate: no password
    password = os.environ.get(PASSWORD_ENV)
    if connection.auth == "certificate" or (connection.auth == "kerberos" and not (connection.username and password)):
        return None
    if connection.keytab is not None:
        return None
    if password is not None:
        return password
    if connection.keyring_service:
        stored = _from_keyring(connection.keyring_service, connection.username or "")
        if stored is not None:
            return stored
    if prompt is None and sys.stdin.isatty():
        prompt = getpass.getpass
    if prompt is None:
        raise InputError(f"{connection.auth} authentication needs a password: set {PASSWORD_ENV} or run interactively")
    return prompt(f"Password for {connection.username}: ")


def _from_keyring(service: str, username: str) -> str | None:
    """``keyring.get_password(service, username)``; keyring is an optional dependency (``provisioner[keyring]``)."""
    try:
        import keyring  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise InputError(
            "connection.keyring_service is set but the 'keyring' package is not installed "
            "(pip install 'provisioner[keyring]')"
        ) from None
    failure = stored = None
    try:
        stored = keyring.get_password(service, username)
    except Exception as exc:  # keyring.errors.KeyringError and backend errors: no common base to rely on
        failure = type(exc).__name__  # only the type: a backend's message (or its context) could hold the secret
    if failure is not None:
        raise InputError(f"cannot read the OS keyring (service '{service}'): {failure}")
    if stored is None:
        log.debug("no password for %s in the OS keyring (service %s)", username, service)
    return stored


def check_connection_settings(connection: Connection) -> None:
    """Refuse settings that would be unsafe or cannot work, before connecting."""
    if connection.backend == "exo":
        from provisioner.transport.exo.session import check_settings

        check_settings(connection)
        return
    if not connection.server:
        raise InputError("no server configured: set connection.server in the config file or pass --server")
    if connection.auth == "basic" and connection.scheme == "http" and not connection.insecure_lab:
        raise InputError(
            "Basic authentication over plain http would send the password unencrypted; "
            "use https, or Kerberos/NTLM (encrypted over http). Only the lab endpoint may allow it (--insecure-lab)."
        )
    if connection.auth in PASSWORD_AUTHS and not connection.username:
        raise InputError(f"{connection.auth} authentication needs a username (connection.username or --username)")
    kerberos_problem = kerberos.settings_problem(connection)
    if kerberos_problem is not None:
        raise InputError(kerberos_problem)
    if connection.auth == "certificate" and not (connection.certificate_pem and connection.certificate_key_pem):
        raise InputError("certificate authentication needs connection.certificate_pem and certificate_key_pem")
    if connection.mode == "script" and connection.configuration_name == "Microsoft.Exchange":
        raise InputError(
            "script mode needs a full-language endpoint (e.g. a management host's Microsoft.PowerShell); "
            "the Microsoft.Exchange endpoint runs in NoLanguage mode and refuses script text"
        )


def build_wsman(connection: Connection, password: str | None) -> WSMan:
    kerberos.apply_client_environment(connection)  # a keytab: KRB5_CLIENT_KTNAME and a private ticket cache
    kwargs: dict[str, Any] = {}
    if connection.auth in ("kerberos", "negotiate"):
        kwargs["negotiate_service"] = connection.spn_service
        if connection.spn_hostname:
            kwargs["negotiate_hostname_override"] = connection.spn_hostname
        kwargs["negotiate_delegate"] = False
    if connection.auth == "certificate":
        kwargs["certificate_pem"] = connection.certificate_pem
        kwargs["certificate_key_pem"] = connection.certificate_key_pem
    encryption = "auto"
    if connection.auth == "basic" and connection.scheme == "http":
        encryption = "never"  # only reachable with insecure_lab, see check_connection_settings
    cert_validation: bool | str = connection.cert_validation
    if connection.cert_validation and connection.ca_bundle:
        cert_validation = connection.ca_bundle
    return WSMan(
        connection.server or "",
        port=connection.effective_port,
        path=connection.path,
        ssl=connection.scheme == "https",
        auth=connection.auth,
        username=connection.principal or connection.username,
        password=password,
        cert_validation=cert_validation,  # type: ignore[arg-type]  # pypsrp passes it to requests' verify: a CA path works
        connection_timeout=connection.connection_timeout,
        read_timeout=guard.read_timeout(connection.operation_timeout),
        operation_timeout=connection.operation_timeout,
        encryption=encryption,
        no_proxy=True,
        **kwargs,
    )


def describe_failure(exc: BaseException, connection: Connection) -> ConnectionFailure:
    """One sentence for a transport or authentication failure, without any secret."""
    diagnosis = kerberos.diagnose(exc, connection)  # by GSS/krb5 codes: no ticket, expired, SPN, skew, ...
    if diagnosis is not None:
        return diagnosis
    where = f"{connection.scheme}://{connection.server}:{connection.effective_port}/{connection.path}"
    if isinstance(exc, guard.DeadlineReached):
        return ConnectionFailure(f"{where}: {exc}.")
    if isinstance(exc, guard.Stalled):
        return ConnectionFailure(f"{where} did not answer: {exc}.", transient=True,
                                 hint="Check the network or raise the timeouts.")
    if isinstance(exc, AuthenticationError) or (isinstance(exc, WinRMTransportError) and exc.code == 401):
        return ConnectionFailure(
            f"authentication to {where} failed ({connection.auth}, user {connection.username or 'from ticket'}).",
            hint="Check the username and password, or the Kerberos ticket (klist).",
        )
    if isinstance(exc, WinRMTransportError):
        hint = "Check connection.path (Exchange uses 'PowerShell')." if exc.code == 404 else None
        return ConnectionFailure(f"{where} answered HTTP {exc.code}.", hint=hint, transient=exc.code >= 500)
    if isinstance(exc, WSManFaultError):
        reason = " ".join(str(exc.reason or "").split())
        hint = None
        if "resource uri" in reason.lower() or exc.code in (2150858811, 2152992674):
            hint = f"Check connection.configuration_name ('{connection.configuration_name}')."
        timed_out = exc.code == OPERATION_TIMED_OUT  # the server had nothing to send in time: worth another try
        return ConnectionFailure(f"{where} refused the session: {reason} (WSMan fault {exc.code}).", hint=hint,
                                 transient=timed_out)
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectionFailure(
            f"TLS certificate of {where} could not be verified.",
            hint="Set connection.ca_bundle to your CA's certificate.",
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if isinstance(_root(exc), socket.gaierror) or "Name or service not known" in text:
            return ConnectionFailure(f"cannot resolve {connection.server}.", hint="Check connection.server (DNS).")
        if "refused" in text.lower():
            return ConnectionFailure(f"connection to {where} was refused.", hint="Is the server and port right?",
                                     transient=True)
        return ConnectionFailure(f"cannot connect to {where}: {_first_line(text)}", transient=True)
    if isinstance(exc, requests.exceptions.Timeout):
        return ConnectionFailure(f"{where} did not answer in time.", hint="Check the network or raise the timeouts.",
                                 transient=True)
    text = _first_line(str(exc))
    return ConnectionFailure(f"cannot open a session on {where}: {type(exc).__name__}: {text}",
                             transient=guard.is_transport_failure(exc))


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"


@contextmanager
def open_pool(connection: Connection, password: str | None,
              deadline: guard.Deadline | None = None) -> Iterator[Client]:
    """An open runspace pool (:class:`provisioner.transport.psrp.client.Client`, one runspace: state such as a preamble
    persists), closed on exit. Every request is bounded by the timeouts and ``deadline``
    (:mod:`provisioner.transport.guard`: timeouts clamped to the time left, no silent re-send on a read timeout)."""
    from provisioner.transport.psrp.client import Bounds, Client

    check_connection_settings(connection)
    log.debug("opening a session on %s://%s:%s/%s (%s, user %s, configuration %s)", connection.scheme,
              connection.server, connection.effective_port, connection.path, connection.auth,
              connection.username or "from ticket", connection.configuration_name)
    bounds = guard.TransportGuard(deadline or guard.Deadline(), connection.connection_timeout,
                                  guard.read_timeout(connection.operation_timeout), connection.operation_timeout)
    try:
        wsman = build_wsman(connection, password)
        guard.guard_transport(wsman, bounds)
        left = deadline.remaining() if deadline is not None and deadline.seconds is not None else None
        pool = Client(wsman, connection.configuration_name, Bounds.for_timeouts(connection.operation_timeout, left))
        pool.open()
    except ConnectionFailure:
        raise
    except (WinRMError, requests.exceptions.RequestException, OSError, ValueError) as exc:
        raise describe_failure(exc, connection) from None
    except Exception as exc:  # spnego/gssapi errors have no common base class
        raise describe_failure(exc, connection) from None
    try:
        yield pool
    finally:
        with contextlib.suppress(Exception), bounds.operation("closing the session", requests=5):
            pool.close()  # best effort, bounded: the session expires on the server anyway
