"""The HTTP layer of the lab endpoint: threaded HTTP/1.1 keep-alive server, per-connection auth, message encryption.

Each TCP connection gets its own handler (and so its own NTLM/SPNEGO security context, as WinRM binds the context
to the connection). Nagle is disabled and every response is written with one ``send`` call: the client waits for a
complete response before sending the next request, so a split write would cost a delayed-ACK stall per request.

The handler does not know WS-Management; it hands the (decrypted) SOAP body to a :class:`Backend` and sends back
what that returns.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Protocol
from urllib.parse import urlsplit

from provisioner_lab.auth import AuthFailed, LabUsers, SecurityContext, parse_authorization

log = logging.getLogger(__name__)

SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"


@dataclass
class Reply:
    """What the backend answers to one SOAP request."""

    status: int = 200
    body: bytes = b""
    content_type: str = SOAP_CONTENT_TYPE
    drop: bool = False  # close the connection without any response (fault injection)


@dataclass
class Call:
    """One authenticated SOAP request handed to the backend."""

    body: bytes
    user: str | None
    client_ip: str
    encrypted: bool
    raw: bytes  # the request body as it was on the wire (encrypted or not)


class Backend(Protocol):
    path: str
    auth_methods: frozenset[str]
    users: LabUsers

    def handle(self, call: Call) -> Reply: ...

    def note_http(self, *, status: int, bytes_in: int, bytes_out: int) -> None: ...


class LabHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded TCP server that remembers its open connections so :meth:`close_connections` can end them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    server: LabHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.security: SecurityContext | None = None
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # --- plumbing -------------------------------------------------------------------------------------------------

    def _write(self, status: int, body: bytes, headers: list[tuple[str, str]], content_type: str | None) -> None:
        reason = self.responses.get(status, ("", ""))[0]
        lines = [f"HTTP/1.1 {status} {reason}", "Server: Microsoft-HTTPAPI/2.0"]
        if content_type and body:
            lines.append(f"Content-Type: {content_type}")
        lines.extend(f"{name}: {value}" for name, value in headers)
        lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        # count first: the client may act on the answer (and a test read the counters) before this thread resumes
        self.server.backend.note_http(status=status, bytes_in=0, bytes_out=len(data))
        self.wfile.write(data)

    def _challenge(self, detail: str = "", token: bytes | None = None) -> None:
        methods = self.server.backend.auth_methods
        headers = []
        if "negotiate" in methods:
            headers.append(("WWW-Authenticate", f"Negotiate {_b64(token)}" if token else "Negotiate"))
        if "ntlm" in methods:
            headers.append(("WWW-Authenticate", "NTLM"))
        if "basic" in methods:
            headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        if detail:
            log.info("lab auth rejected: %s", detail)
        self._write(401, b"", headers, None)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
            self.close_connection = True  # cannot find the next request on this connection
        return self.rfile.read(length) if length > 0 else b""

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- methods --------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._read_body()
        self._write(405, b"", [("Allow", "POST")], None)

    def do_POST(self) -> None:
        backend = self.server.backend
        body = self._read_body()
        backend.note_http(status=0, bytes_in=len(body), bytes_out=0)
        path = urlsplit(self.path).path
        if path.rstrip("/").lower() != backend.path.rstrip("/").lower():
            self._write(404, _NOT_FOUND, [], "text/html; charset=us-ascii")
            return

        auth = self._authenticate()
        if auth is None:
            return
        user, extra_headers = auth

        content_type = self.headers.get("Content-Type", "")
        encrypted = content_type.lower().startswith(("multipart/encrypted", "multipart/x-multi-encrypted"))
        if encrypted:
            if self.security is None or not self.security.complete:
                self._challenge("encrypted message without a security context")
                return
            try:
                soap = self.security.unwrap(body, content_type)
            except AuthFailed as exc:
                self.security = None
                self._challenge(str(exc))
                return
        else:
            soap = body

        if not soap:  # authentication-only request (pypsrp sends an empty POST to set up encryption)
            self._write(200, b"", extra_headers, None)
            return

        reply = backend.handle(
            Call(body=soap, user=user, client_ip=self.client_address[0], encrypted=encrypted, raw=body)
        )
        if reply.drop:
            self._drop()
            return
        out_body, out_type = reply.body, reply.content_type
        if encrypted and self.security is not None and out_body and reply.content_type == SOAP_CONTENT_TYPE:
            out_type, out_body = self.security.wrap(out_body)
        self._write(reply.status, out_body, extra_headers, out_type)

    def _authenticate(self) -> tuple[str | None, list[tuple[str, str]]] | None:
        """Return (user, headers for the response), or None after answering 401."""
        backend = self.server.backend
        methods = backend.auth_methods
        header = self.headers.get("Authorization")
        if header:
            parsed = parse_authorization(header)
            if parsed is None:
                self._challenge("unparseable Authorization header")
                return None
            scheme, credential = parsed
            if scheme == "basic":
                if "basic" not in methods:
                    self._challenge("Basic is disabled")
                    return None
                try:
                    return backend.users.check_basic(credential), []
                except AuthFailed as exc:
                    self._challenge(str(exc))
                    return None
            if scheme in ("negotiate", "ntlm") and methods & {"negotiate", "ntlm"}:
                if self.security is None or self.security.complete:
                    self.security = SecurityContext(backend.users, header.split(None, 1)[0])
                try:
                    out = self.security.step(credential)
                except AuthFailed as exc:
                    self.security = None
                    self._challenge(str(exc), exc.token)
                    return None
                token_header = [("WWW-Authenticate", f"{self.security.scheme} {_b64(out)}")] if out else []
                if not self.security.complete:
                    self._write(401, b"", token_header, None)
                    return None
                return self.security.user, token_header
            self._challenge(f"unsupported scheme {scheme}")
            return None
        if self.security is not None and self.security.complete:
            return self.security.user, []
        self._challenge()
        return None



# What HTTP.sys answers for an unknown URL (not well-formed XML, so pypsrp reports the HTTP status, not a fault).
_NOT_FOUND = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    b'<HTML><HEAD><TITLE>Not Found</TITLE>\r\n<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii">'
    b"</HEAD>\r\n<BODY><h2>Not Found</h2>\r\n<hr><p>HTTP Error 404. The requested resource is not found.</p>\r\n"
    b"</BODY></HTML>\r\n"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
