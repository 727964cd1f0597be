"""The client reads one Receive's output while the next Receive is on its way (``provisioner.transport.psrp.client``).

Against the lab, with envelopes small enough that one pipeline's output takes many Receives: the same output and
the same number of requests as with no Receive sent ahead; never two requests on the connection at once; a failure
of the Receive sent ahead surfaces as that failure (a lost session for the runner) and nothing is sent after it; a
failure while reading leaves no Receive in flight behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from provisioner_lab.run import Lab, running_lab

from provisioner.inputs.config import Connection
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import Command, Parameter
from provisioner.transport.facts import ServerFacts
from provisioner.transport.psrp.client import Client, ProtocolFailure
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.psrp.runner import ClientRunner
from provisioner.transport.runner import Pipeline, TransportLost

RECEIVE = b"/windows/shell/Receive"
SMALL_ENVELOPE = 12 * 1024  #: about 6 KB of output per Receive: a 60-mailbox read takes a dozen


@dataclass
class Wire:
    """Every request the client sends, as the transport sees it: how many at once, on which thread, and a failure
    to inject into the ``fail_receive``-th Receive."""

    in_flight: int = 0
    most_in_flight: int = 0
    receives: int = 0
    threads: list[str] = field(default_factory=list)
    fail_receive: int = 0
    failed: bool = False
    sent_after_failure: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, send: Any) -> Any:
        def tracked(message: bytes, **kwargs: Any) -> bytes:
            with self.lock:
                if self.failed:
                    self.sent_after_failure += 1
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                self.threads.append(threading.current_thread().name)
                if RECEIVE in message:
                    self.receives += 1
                    if self.receives == self.fail_receive:
                        self.failed = True
            try:
                if self.failed and self.receives == self.fail_receive and self.sent_after_failure == 0:
                    raise requests.exceptions.ConnectionError("connection reset (injected)")
                result: bytes = send(message, **kwargs)
                return result
            finally:
                with self.lock:
                    self.in_flight -= 1

        return tracked


def settings(lab: Lab) -> Connection:
    return Connection(server="127.0.0.1", port=lab.port, auth="basic", username=lab.username,
                      configuration_name=lab.server.configuration_name, insecure_lab=True, scheme="http",
                      operation_timeout=5)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(mailboxes=60, profile="exchange2010") as started:
        yield started


@contextmanager
def small_envelopes(lab: Lab, ahead: bool = True) -> Iterator[tuple[Client, Wire]]:
    with open_pool(settings(lab), lab.password) as client:
        client.wsman.update_max_payload_size(SMALL_ENVELOPE)
        wire = Wire()
        client.wsman.transport.send = wire.wrap(client.wsman.transport.send)  # type: ignore[method-assign]
        if not ahead:
            client._may_receive_ahead = lambda state, messages: False  # type: ignore[method-assign]
        yield client, wire


def every_mailbox(client: Client) -> Any:
    return client.powershell(False).add_command("Get-Mailbox").add_parameter("ResultSize", "Unlimited")


def names(output: list[Any]) -> list[str]:
    return [str(item) for item in output]  # a Mailbox object shows its name


def test_same_output_and_requests_as_without_a_receive_ahead(lab: Lab) -> None:
    runs = {}
    for ahead in (True, False):
        with small_envelopes(lab, ahead) as (client, wire):
            before = client.requests
            outcome = client.invoke(every_mailbox(client))
            runs[ahead] = (names(outcome.output), outcome.errors, client.requests - before, wire)
    found, errors, requests_sent, wire = runs[True]
    expected, expected_errors, expected_requests, plain = runs[False]
    assert len(expected) >= 60 and found == expected and errors == expected_errors == []
    assert plain.receives >= 10, "the output must take many Receives for this test to mean anything"
    assert requests_sent == expected_requests and wire.receives == plain.receives
    assert wire.most_in_flight == plain.most_in_flight == 1
    assert wire.threads.count("provisioner-receive") >= plain.receives - 3  # all but the first and the last few
    assert "provisioner-receive" not in plain.threads


def test_a_failed_receive_ahead_is_a_lost_session_and_nothing_is_sent_after_it(lab: Lab) -> None:
    with small_envelopes(lab) as (client, wire):
        runner = ClientRunner(client, ServerFacts(client.protocol_version))
        wire.fail_receive = wire.receives + 5  # the pool's own Receive came first: the 5th of this pipeline
        read = Pipeline.of(Command(Bare("Get-Mailbox"), (Parameter(Bare("ResultSize"), Bare("Unlimited")),)))
        with pytest.raises(TransportLost, match="injected"):
            runner.run(read)
        assert wire.failed and wire.threads[-1] == "provisioner-receive"
        assert wire.sent_after_failure == 0 and wire.in_flight == 0


def test_a_failure_while_reading_leaves_no_receive_in_flight(lab: Lab) -> None:
    with small_envelopes(lab) as (client, wire):
        dispatch = client._dispatch
        seen = []

        def failing(message: Any, pipeline: Any) -> None:
            seen.append(message)
            if len(seen) == 8:
                raise ProtocolFailure("unreadable (injected)")
            dispatch(message, pipeline)

        client._dispatch = failing  # type: ignore[method-assign]
        with pytest.raises(ProtocolFailure, match="injected"):
            client.invoke(every_mailbox(client))
        assert "provisioner-receive" in wire.threads  # a Receive was on its way when reading failed
        assert wire.in_flight == 0 and wire.most_in_flight == 1
