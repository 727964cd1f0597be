"""A run's session with its server: the runner and the server facts read once when it opened, reopened when it
breaks, forked for parallel reads; :func:`open_session` picks the backend (PowerShell remoting or Exchange Online)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, suppress
from dataclasses import replace
from typing import Any

from provisioner.errors import ConnectionFailure
from provisioner.inputs.config import Connection
from provisioner.transport import guard
from provisioner.transport.facts import NEEDED, ServerFacts
from provisioner.transport.guard import Deadline
from provisioner.transport.runner import FixedSession, Pipeline, Raw, Runner, TransportLost

#: ``[connection] fast_wire`` is still accepted (scheduled jobs keep running) but changes nothing.
FAST_WIRE_NOTE = ("connection.fast_wire is deprecated and ignored: the tool's own PSRP client and CLIXML reader are "
                  "always used; remove the setting")
PoolFactory = Callable[[Connection, str | None, Deadline], AbstractContextManager[Any]]

#: Pauses between attempts to open a session (a reset, a timeout or HTTP 5xx at open), jittered; bounded by the
#: run's deadline too. Refusals (authentication, a wrong path or configuration) are not retried.
OPEN_RETRY_DELAYS = (0.5, 2.0, 5.0)


class BrokenRunner:
    """The runner of a session that could not be reopened: every run is a lost transport (the facts stay)."""

    piping = True

    def __init__(self, facts: ServerFacts, reason: str) -> None:
        self.facts, self.reason = facts, reason

    def run(self, pipeline: Pipeline) -> Raw:
        raise TransportLost(self.reason)


class Session:
    """An open session: its runner and the server facts read once when it opened; reopened when it breaks.
    Opening is retried (bounded, :data:`OPEN_RETRY_DELAYS`) when the failure is transient."""

    def __init__(self, connection: Connection, password: str | None, pool_factory: PoolFactory,
                 cmdlets: Sequence[str] = tuple(NEEDED), deadline: Deadline | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.connection, self.password, self.pool_factory = connection, password, pool_factory
        self.cmdlets = tuple(cmdlets)  # whose metadata the session reads: what the run may send (less to read)
        self.deadline = deadline or Deadline(connection.run_deadline_seconds)
        self.sleep = sleep
        self._stack = ExitStack()
        self.runner: Runner = self._open()

    @property
    def facts(self) -> ServerFacts:
        return self.runner.facts

    def _open(self) -> Runner:
        delays = iter(OPEN_RETRY_DELAYS)
        rng = random.Random()
        while True:
            try:
                return self._open_once()
            except ConnectionFailure as exc:
                failure = exc
            delay = next(delays, None)
            if not failure.transient or delay is None or self.deadline.passed:
                raise failure
            self.sleep(min(delay * rng.uniform(0.5, 1.0), max(0.0, self.deadline.remaining())))

    def _open_once(self) -> Runner:
        stack = ExitStack()
        try:
            runner = self._start(stack)
        except BaseException as exc:
            with suppress(Exception):
                stack.close()
            if isinstance(exc, ConnectionFailure | KeyboardInterrupt | SystemExit):
                raise
            if isinstance(exc, guard.DeadlineReached):
                raise ConnectionFailure(f"opening a session: {exc}") from None
            if isinstance(exc, TransportLost | guard.Stalled):
                raise ConnectionFailure(f"the session broke while opening: {exc}", transient=True) from None
            raise
        self._stack = stack
        return runner

    def _start(self, stack: ExitStack) -> Runner:
        from provisioner.transport.psrp.runner import ClientRunner, ClientScriptRunner, read_facts

        pool = stack.enter_context(self.pool_factory(self.connection, self.password, self.deadline))
        if self.connection.mode == "script":
            runner = ClientScriptRunner(pool, ServerFacts(pool.protocol_version))
            if self.connection.preamble:
                raw = runner.run_preamble(self.connection.preamble)
                error = raw.first_error
                if error is not None:
                    raise ConnectionFailure(f"the preamble failed: {error.message}")
            return runner
        facts = read_facts(pool, self.cmdlets)
        if self.connection.fast_wire:
            facts = replace(facts, notes=(*facts.notes, FAST_WIRE_NOTE))
        return ClientRunner(pool, facts)

    def fork(self) -> Session:
        """One more session on the same server and account (parallel reads), under the same deadline."""
        return Session(self.connection, self.password, self.pool_factory, self.cmdlets, self.deadline, self.sleep)

    def reopen(self) -> Runner:
        """A new session for a broken one; when that cannot be had, the runner stays broken (ConnectionFailure)."""
        with suppress(Exception):  # the old pool is broken; closing it is best effort (and bounded)
            self._stack.close()
        self._stack = ExitStack()
        facts = self.runner.facts
        try:
            self.runner = self._open()
        except ConnectionFailure as exc:
            self.runner = BrokenRunner(facts, f"the session could not be reopened: {exc}")
            raise
        return self.runner

    def close(self) -> None:
        with suppress(Exception):  # closing is best effort: a broken transport must not hide the run's outcomes
            self._stack.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


SessionLike = Session | FixedSession


def open_session(connection: Connection, password: str | None, pool_factory: PoolFactory,
                 cmdlets: Sequence[str] = tuple(NEEDED)) -> SessionLike:
    """The session of ``connection``'s backend: PowerShell remoting (pypsrp; it reads the metadata of ``cmdlets``),
    or Exchange Online's REST endpoint (its facts are a fixed table)."""
    if connection.backend == "exo":
        from provisioner.transport.exo.session import ExoSession

        return ExoSession(connection)
    return Session(connection, password, pool_factory, cmdlets)
