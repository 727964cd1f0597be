"""Every wait bounded: the run's deadline, a per-operation budget, and what a dependency's failure means.

Three bounds hold for every request a PowerShell remoting session sends (:func:`guard_transport` wraps the public
``send`` of pypsrp's WSMan transport, so pypsrp's own loops are bounded too: opening the pool, reading command
metadata, the receive loop of a pipeline):

- the whole run's :class:`Deadline` (``[connection] run_deadline_seconds`` / ``--deadline``): nothing is sent after
  it, and no socket waits past it (connect and read timeouts are clamped to the time left);
- the per-request timeouts (``connection_timeout`` to connect, ``operation_timeout`` plus a margin to read); a read
  that times out is *not* silently re-sent with a new authentication context (pypsrp would, five times): it is a
  lost session, which the engine reopens and settles by a read;
- a per-operation budget (:class:`Budget`): an operation whose server answers without progress (empty receives,
  operation-timeout faults) is paced with a growing backoff and given up after a bounded time and request count,
  so a stalled reply never becomes a busy loop.

:func:`is_transport_failure` names what a dependency may raise when the transport or the session's security layer
breaks (pypsrp, requests/urllib3, spnego's NTLM/Kerberos integrity and sequence errors, TLS, truncated or garbled
XML): the runner turns those into :class:`~provisioner.transport.runner.TransportLost`.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: At most this share of the deadline (and at most SETTLE_MAX_SECONDS) is kept to settle the last batch by a read.
SETTLE_SHARE, SETTLE_MAX_SECONDS = 0.1, 60.0


class DeadlineReached(TimeoutError):
    """The run's deadline passed: nothing more is sent on any session of this run. A TimeoutError (an OSError):
    whatever maps a broken transport to a lost session maps this too."""


class Stalled(TimeoutError):
    """An operation made no progress within its budget (time or requests): the session is lost."""


@dataclass
class Deadline:
    """The run's end: nothing is sent after ``end`` (monotonic clock); no new batch starts after ``last_batch``."""

    seconds: float | None = None
    clock: Callable[[], float] = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()

    @property
    def end(self) -> float:
        return math.inf if self.seconds is None else self.start + self.seconds

    def remaining(self) -> float:
        return self.end - self.clock()

    @property
    def passed(self) -> bool:
        return self.remaining() <= 0

    @property
    def batches_closed(self) -> bool:
        """No new batch starts: what is left of the deadline is kept to settle the batch in flight by a read."""
        if self.seconds is None:
            return False
        reserve = min(SETTLE_MAX_SECONDS, self.seconds * SETTLE_SHARE)
        return self.remaining() <= reserve

    def describe(self) -> str:
        return f"the run's deadline ({self.seconds:g} s, [connection] run_deadline_seconds / --deadline) passed"

    def check(self) -> None:
        if self.passed:
            raise DeadlineReached(self.describe())


def read_timeout(operation_timeout: int) -> int:
    """The HTTP read timeout for a WSMan operation timeout: the server may hold a Receive that long, plus a margin
    (2 s for a 1 s operation timeout, 10 s from 10 s up)."""
    return operation_timeout + max(2, min(10, operation_timeout))


def stall_seconds(operation_timeout: int) -> float:
    """How long an operation may go without progress (its server answering but nothing new arriving)."""
    return float(6 * operation_timeout + 10)


@dataclass
class Budget:
    """One operation's bound: ``seconds`` without progress and ``requests`` in all; pacing after ``free`` requests
    without progress (backoff doubling from ``first_pause`` up to ``max_pause`` seconds)."""

    what: str
    seconds: float
    requests: int = 100_000
    free: int = 3
    first_pause: float = 0.05
    max_pause: float = 2.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    sent: int = 0
    idle: int = 0  # requests since the last progress
    last_progress: float = field(init=False)

    def __post_init__(self) -> None:
        self.last_progress = self.clock()

    def progressed(self) -> None:
        self.idle = 0
        self.last_progress = self.clock()

    def before_request(self, deadline: Deadline) -> None:
        """Raise when the budget is spent; sleep first when requests go by without progress (never past the end)."""
        self.sent += 1
        self.idle += 1
        if self.sent > self.requests:
            raise Stalled(f"{self.what}: no result after {self.requests} requests")
        if self.clock() - self.last_progress > self.seconds:
            raise Stalled(f"{self.what}: no progress for {self.seconds:g} s")
        if self.idle > self.free:
            pause = min(self.max_pause, self.first_pause * 2.0 ** (self.idle - self.free - 1))
            pause = min(pause, max(0.0, deadline.remaining()))
            if pause > 0:
                self.sleep(pause)
        deadline.check()


class TransportGuard:
    """The bounds of one WSMan transport: the run's deadline, the request timeouts and the current operation's
    budget (per thread: a forked session has its own transport anyway)."""

    def __init__(self, deadline: Deadline, connect_timeout: float, read: float, operation_timeout: int) -> None:
        self.deadline, self.connect_timeout, self.read = deadline, connect_timeout, read
        self.operation_timeout = operation_timeout
        self.requests = 0
        self._local = threading.local()

    @property
    def budget(self) -> Budget | None:
        current: Budget | None = getattr(self._local, "budget", None)
        return current

    @contextmanager
    def operation(self, what: str, requests: int = 100_000) -> Iterator[Budget]:
        """Bound what runs inside: at most ``requests`` requests, and :func:`stall_seconds` without progress."""
        budget = Budget(what, stall_seconds(self.operation_timeout), requests)
        previous, self._local.budget = self.budget, budget
        try:
            yield budget
        finally:
            self._local.budget = previous

    def timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts of the next request, never past the deadline."""
        self.deadline.check()
        left = max(0.01, self.deadline.remaining())
        return min(self.connect_timeout, left), min(self.read, left)

    def before_request(self) -> tuple[float, float]:
        self.requests += 1
        budget = self.budget
        if budget is not None:
            budget.before_request(self.deadline)
        return self.timeouts()


_GUARDS: weakref.WeakKeyDictionary[Any, TransportGuard] = weakref.WeakKeyDictionary()


def register(pool: Any, guard: TransportGuard) -> None:
    """Remember ``guard`` as the bounds of ``pool`` (a RunspacePool over a guarded transport)."""
    _GUARDS[pool] = guard


def guard_of(pool: Any) -> TransportGuard | None:
    try:
        return _GUARDS.get(pool)
    except TypeError:  # not weakly referenceable: a test double
        return None


def guard_transport(wsman: Any, guard: TransportGuard) -> None:
    """Route every request of ``wsman`` (a pypsrp WSMan) through ``guard``: its public ``transport.send`` is wrapped
    on this instance. A read timeout is never re-sent by pypsrp (``retries_on_read_timeout`` 0): it ends the
    session, and the engine decides what became of the request by a read on a new one."""
    transport = wsman.transport
    send = transport.send

    def guarded(message: bytes, *, retries_on_read_timeout: int = 0, timeout: Any = None) -> bytes:
        connect, read = guard.before_request()
        if isinstance(timeout, int | float) and timeout > 0:
            read = min(read, float(timeout))
        result: bytes = send(message, retries_on_read_timeout=0, timeout=(connect, read))
        return result

    transport.send = guarded


def is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (raised inside a dependency's call) means the transport or the session's security layer broke:
    pypsrp's errors, requests/urllib3 errors, socket and TLS errors, spnego (NTLM/Kerberos integrity, sequence,
    MIC) errors, GSSAPI errors, truncated or garbled XML, and this module's own bounds."""
    if isinstance(exc, DeadlineReached | Stalled | OSError | ET.ParseError | EOFError):
        return True
    module = type(exc).__module__.split(".")[0]
    if module in ("pypsrp", "requests", "urllib3", "spnego", "gssapi", "krb5", "ntlm_auth", "requests_credssp"):
        return True
    # a garbled reply can surface from pypsrp's parsing as a plain Python error; with a dependency frame on top
    return isinstance(exc, ValueError | KeyError | IndexError | AttributeError | TypeError | UnicodeError) and \
        _raised_in_dependency(exc)


_DEPENDENCIES = ("/pypsrp/", "/requests/", "/urllib3/", "/spnego/", "/xml/etree/", "/base64.py", "/ssl.py",
                 "/http/client.py")


def _raised_in_dependency(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and any(part in last.replace("\\", "/") for part in _DEPENDENCIES)
