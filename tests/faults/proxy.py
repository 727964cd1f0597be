"""A fault-injecting TCP proxy for HTTP/1.1 (keep-alive, Content-Length bodies), in front of the lab.

It knows nothing of the client: it reads each HTTP request from the client's connection, numbers it (from 1, over
all connections), and per its :class:`Schedule` either forwards it and relays the reply, or injects a fault:

- ``reset-before``: the connection is reset (RST) before the request reaches the server;
- ``reset-after``: the request is forwarded and fully answered by the server, then the client's connection is reset
  without the reply (an applied write whose reply is lost);
- ``stall``: the request is forwarded, the reply held back until the client gives up (past its read timeout);
- ``truncate``: the request is forwarded and half of the reply sent, then the connection closed;
- ``http-500`` / ``http-503``: the proxy answers with that status itself (the server never sees the request);
- ``silent``: from this request on, the proxy accepts connections and reads requests but never answers anything;
- ``busy``: from this request on, every WSMan Receive is answered at once with an OperationTimeout fault (what a
  server does when it has nothing to send), forever: the client must not poll without end. Plain-text (Basic)
  bodies only: an encrypted body cannot be told apart.

Each client connection has its own server connection (NTLM authenticates a TCP connection), closed with it.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

KINDS = ("reset-before", "reset-after", "stall", "truncate", "http-500", "http-503", "silent")
ONGOING = frozenset({"silent", "busy"})  # from their request on, for good
RECEIVE = b"http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
HOLD_SECONDS = 120.0  # a stalled or silent reply is held at most this long (the client gives up well before)


class _Closed(Exception):
    pass


def _read_message(sock: socket.socket, buffer: bytearray) -> bytes:
    """One HTTP message (headers and Content-Length body) from ``sock``; ``buffer`` keeps what follows it."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed
        buffer.extend(chunk)
    head_end = buffer.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buffer[:head_end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or b"0")
    while len(buffer) < head_end + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed
        buffer.extend(chunk)
    message = bytes(buffer[: head_end + length])
    del buffer[: head_end + length]
    return message


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a middlebox or a crashed server would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _timed_out() -> bytes:
    body = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header>'
        b"<a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action></s:Header><s:Body><s:Fault>"
        b"<s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value></s:Subcode></s:Code>"
        b'<s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation within the '
        b"time specified in OperationTimeout.</s:Text></s:Reason><s:Detail>"
        b'<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" '
        b'Machine="proxy"><f:Message>timed out</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>'
    )
    return (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def _status(code: int, reason: str) -> bytes:
    body = f"proxy fault: HTTP {code}".encode()
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)


@dataclass
class Schedule:
    """Which request numbers get which fault (request numbers count every HTTP request, authentication included)."""

    faults: dict[int, str] = field(default_factory=dict)

    @classmethod
    def random(cls, rng: random.Random, count: int, first: int, last: int,
               kinds: Iterable[str] = KINDS) -> Schedule:
        choices = list(kinds)
        numbers = rng.sample(range(first, last + 1), min(count, last - first + 1))
        return cls({number: rng.choice(choices) for number in numbers})

    def __call__(self, number: int) -> str | None:
        return self.faults.get(number)


class FaultProxy:
    """Listens on 127.0.0.1 (a free port), forwards to ``target``; ``injected`` lists (request number, kind)."""

    def __init__(self, target: tuple[str, int], schedule: Callable[[int], str | None] | None = None) -> None:
        self.target = target
        self.schedule = schedule or Schedule()
        self.injected: list[tuple[int, str]] = []
        self.requests = 0
        self.ongoing: str | None = None  # "silent" or "busy" once it started
        self.busy_answers = 0  # Receive requests answered with a timeout fault in "busy" mode
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        _close(self._listener)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        self._thread.join(timeout=5)

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(self._track(client),), daemon=True).start()

    def _next(self) -> tuple[int, str | None]:
        with self._lock:
            self.requests += 1
            number = self.requests
            kind = self.ongoing or self.schedule(number)
            if kind in ONGOING:
                if self.ongoing is None:
                    self.injected.append((number, kind))
                self.ongoing = kind
            elif kind is not None:
                self.injected.append((number, kind))
        return number, kind

    def _hold(self, client: socket.socket) -> None:
        """Answer nothing until the client gives up (or the hold or the proxy ends)."""
        client.settimeout(0.2)
        waited = 0.0
        while not self._stop.is_set() and waited < HOLD_SECONDS:
            try:
                if not client.recv(65536):
                    return
            except TimeoutError:
                waited += 0.2
            except OSError:
                return

    def _serve(self, client: socket.socket) -> None:
        server: socket.socket | None = None
        pending = bytearray()
        try:
            while not self._stop.is_set():
                request = _read_message(client, pending)
                _, kind = self._next()
                if kind == "silent":
                    self._hold(client)
                    return
                if kind == "busy" and RECEIVE in request:
                    with self._lock:
                        self.busy_answers += 1
                    client.sendall(_timed_out())
                    continue
                if kind == "reset-before":
                    _reset(client)
                    return
                if kind in ("http-500", "http-503"):
                    code = int(kind[-3:])
                    client.sendall(_status(code, "Internal Server Error" if code == 500 else "Service Unavailable"))
                    continue
                if server is None:
                    server = self._track(socket.create_connection(self.target, timeout=60))
                server.sendall(request)
                reply = _read_message(server, bytearray())
                if kind == "reset-after":
                    _reset(client)
                    return
                if kind == "stall":
                    self._hold(client)
                    return
                if kind == "truncate":
                    client.sendall(reply[: max(1, len(reply) // 2)])
                    _close(client)
                    return
                client.sendall(reply)
        except (_Closed, OSError):
            return
        finally:
            _close(client)
            if server is not None:
                _close(server)
