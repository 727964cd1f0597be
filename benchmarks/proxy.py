"""A counting TCP forwarder for HTTP/1.1: every client connection gets its own upstream connection (so NTLM,
which authenticates a connection, and keep-alive work unchanged) and the bytes pass through untouched; the
client-to-server stream is parsed only to count the requests in it.

Requests are framed by Content-Length (what pypsrp and requests send); a chunked request body would make the
count wrong, so it is counted in ``chunked`` and the benchmark reports it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

BUFFER = 256 * 1024


@dataclass
class Tally:
    """Requests seen so far; ``with_body`` excludes the empty-bodied requests of an authentication handshake."""

    requests: int = 0
    with_body: int = 0
    chunked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, body_length: int, chunked: bool) -> None:
        with self.lock:
            self.requests += 1
            self.with_body += body_length > 0
            self.chunked += chunked


class RequestParser:
    """Splits a client-to-server byte stream into HTTP requests (head, then Content-Length body bytes)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.head = bytearray()
        self.body_left = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.body_left:
                taken = min(self.body_left, len(view))
                self.body_left -= taken
                view = view[taken:]
                continue
            self.head += view
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            rest = bytes(self.head[end + 4:])
            self.start_request(bytes(self.head[:end]))
            self.head.clear()
            view = memoryview(rest)

    def start_request(self, head: bytes) -> None:
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        self.body_left = length
        self.tally.add(length, chunked)


def pump(source: socket.socket, target: socket.socket, parser: RequestParser | None) -> None:
    """Copy ``source`` to ``target`` until end of stream, then half-close ``target``."""
    with suppress(OSError):
        while data := source.recv(BUFFER):
            if parser is not None:
                parser.feed(data)
            target.sendall(data)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def serve_connection(client: socket.socket, upstream_port: int, tally: Tally) -> None:
    with client, socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=pump, args=(upstream, client, None), daemon=True)
        back.start()
        pump(client, upstream, RequestParser(tally))
        back.join()


def accept_loop(listener: socket.socket, upstream_port: int, tally: Tally) -> None:
    with suppress(OSError):  # the listener was closed: stop
        while True:
            client, _ = listener.accept()
            threading.Thread(target=serve_connection, args=(client, upstream_port, tally), daemon=True).start()


@contextmanager
def counting_proxy(upstream_port: int) -> Iterator[tuple[int, Tally]]:
    """A forwarder on 127.0.0.1 (any free port) to ``upstream_port``: yields its port and its tally."""
    tally = Tally()
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=accept_loop, args=(listener, upstream_port, tally), daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], tally
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        listener.close()
        thread.join(timeout=5)
