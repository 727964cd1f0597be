"""One PSRP client on public APIs: psrpcore for the protocol state, pypsrp's WSMan/WinRS for transport,
authentication and message encryption, :mod:`provisioner.transport.psrp.clixml` for pipeline output.

:class:`Client` opens a runspace pool (one runspace: state such as a preamble persists) the way PowerShell's WSMan
client does (a WinRS shell on ``http://schemas.microsoft.com/powershell/<configuration>`` whose ``creationXml``
carries SESSION_CAPABILITY and INIT_RUNSPACEPOOL), runs pipelines (a Command carrying CREATE_PIPELINE, Sends for the
rest and for pipeline input, Receives until the pipeline's state is final) and reads command metadata.

While it reads one Receive's output, the client has the next Receive of the same pipeline already on its way
(:class:`_Ahead`, one request in flight at a time, on a thread of its own): reading ~113-375 KB of CLIXML takes the
client about as long as a round trip, and the server's next answer needs none of it. It is not sent when the data
holds a state change or a host call (the server may have nothing more to send, or waits for the client), nor when
WSMan says the command is done: so it never waits on a server with nothing to say, and the requests are the ones the
loop sends anyway.

Every receive loop is bounded (:class:`Bounds`): a Receive that answers without progress (nothing new, or WSMan's
operation-timeout fault) is paced and given up after ``stall_seconds``; nothing is sent after ``deadline`` (a
``time.monotonic()`` value). Transport failures surface as pypsrp/requests exceptions (the caller maps them);
protocol failures as :class:`ProtocolFailure`.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psrpcore
from psrpcore.types import (
    CommandTypes,
    PSInvocationState,
    PSRPMessageType,
    RemoteStreamOptions,
    RunspacePoolState,
)
from pypsrp.exceptions import WSManFaultError
from pypsrp.shell import CommandState, WinRS
from pypsrp.wsman import OptionSet, WSMan

from provisioner.transport.facts import BATCH_PROTOCOL, version_tuple
from provisioner.transport.psrp import clixml
from provisioner.transport.psrp.wire import PIPELINE_OUTPUT, Defragmenter, InputWriter, Message, WireError

#: WS-Management's default MaxEnvelopeSize, and what a protocol 2.2+ server (PowerShell 3.0 on) accepts.
DEFAULT_ENVELOPE, LARGE_ENVELOPE = 153600, 512000
#: WSMan's fault for a Receive that waited its OperationTimeout without output: ask again.
OPERATION_TIMEOUT_FAULT = 2150858793
_SMALLEST_FRAGMENT = 22  #: psrpcore's data_to_send needs room for a fragment header and one byte
_FINAL = frozenset({PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped,
                    PSInvocationState.Disconnected})
#: Messages after which no Receive is sent ahead: a state change (the server may have nothing more to send) or a
#: host call (the server waits for the client).
_TURNING = frozenset(kind.value for kind in (
    PSRPMessageType.PipelineState, PSRPMessageType.RunspacePoolState, PSRPMessageType.PipelineHostCall,
    PSRPMessageType.RunspacePoolHostCall))


class ProtocolFailure(Exception):
    """The server broke the protocol or the pool (state Broken/Closed, an unexpected host call, a stall)."""


@dataclass
class Bounds:
    """How long a receive loop may go without progress, and the end after which nothing is sent."""

    stall_seconds: float = 70.0
    deadline: float | None = None  # time.monotonic() value
    first_pause: float = 0.05
    max_pause: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def check(self, what: str) -> None:
        if self.deadline is not None and self.clock() >= self.deadline:
            raise ProtocolFailure(f"{what}: the run's deadline passed")

    @classmethod
    def for_timeouts(cls, operation_timeout: int, seconds_left: float | None = None) -> Bounds:
        """Six operation timeouts (plus a margin) without progress; ``seconds_left`` until nothing is sent."""
        deadline = None if seconds_left is None else time.monotonic() + seconds_left
        return cls(stall_seconds=6.0 * operation_timeout + 10.0, deadline=deadline)


class _Ahead:
    """One Receive in flight on a daemon thread (never joined at exit) while the caller reads the previous one."""

    def __init__(self, receive: Callable[[], tuple[str, bytes]]) -> None:
        self._finished = threading.Event()
        self._value: tuple[str, bytes] = ("", b"")
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(receive,), name="provisioner-receive", daemon=True).start()

    def _run(self, receive: Callable[[], tuple[str, bytes]]) -> None:
        try:
            self._value = receive()
        except BaseException as exc:  # handed to the caller, in its thread
            self._error = exc
        finally:
            self._finished.set()

    def result(self) -> tuple[str, bytes]:
        """The Receive's (command state, stdout); what it raised is raised here."""
        self._finished.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def settle(self) -> None:
        """Wait for it to end, whatever it brought: the connection is free again (the caller is failing anyway)."""
        self._finished.wait()


@dataclass
class Outcome:
    """What one pipeline produced: output objects (read by the tool's reader), psrpcore's error and warning records,
    and the record of a terminating failure (``failed``: the pipeline's final state was Failed)."""

    output: list[Any] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    warnings: list[Any] = field(default_factory=list)
    failed: bool = False
    failure: Any = None
    state: PSInvocationState = PSInvocationState.NotStarted


class Client:
    """A runspace pool over one pypsrp WSMan connection (public APIs of both libraries only)."""

    def __init__(self, wsman: WSMan, configuration_name: str = "Microsoft.Exchange",
                 bounds: Bounds | None = None) -> None:
        self.wsman = wsman
        self.bounds = bounds or Bounds()
        self.pool = psrpcore.ClientRunspacePool(runspace_pool_id=uuid.uuid4())
        self.shell = WinRS(wsman, resource_uri=f"http://schemas.microsoft.com/powershell/{configuration_name}",
                           id=str(self.pool.runspace_pool_id).upper(), input_streams="stdin pr",
                           output_streams="stdout")
        self.defragmenter = Defragmenter()
        self.input_writer = InputWriter()
        self.requests = 0

    # --- the pool ---------------------------------------------------------------------------------------------

    def open(self) -> None:
        self.pool.open()
        payload = self.pool.data_to_send(self.wsman.max_payload_size)
        if payload is None or self.pool.data_to_send(self.wsman.max_payload_size) is not None:
            raise ProtocolFailure("the pool's opening messages do not fit one creationXml")
        creation = ET.Element("creationXml", xmlns="http://schemas.microsoft.com/powershell")
        creation.text = base64.b64encode(payload.data).decode("ascii")
        options = OptionSet()
        options.add_option("protocolversion", str(self.pool.our_capability.protocolversion), {"MustComply": "true"})
        self.bounds.check("opening the session")
        self.requests += 1
        self.shell.open(options, creation)
        self._receive_until(lambda: self.pool.state != RunspacePoolState.Opening, None, "opening the session")
        if self.pool.state != RunspacePoolState.Opened:
            raise ProtocolFailure(f"the server did not open the runspace pool (state {self.pool.state.name})")
        if version_tuple(self.protocol_version) >= BATCH_PROTOCOL and self.wsman.max_envelope_size == DEFAULT_ENVELOPE:
            # PowerShell 3.0 and later accept 500 KiB envelopes (as pypsrp and PowerShell's client assume): fewer
            # Sends for pipeline input, fewer Receives for output
            self.wsman.update_max_payload_size(LARGE_ENVELOPE)

    def close(self) -> None:
        if self.shell.opened:
            self.requests += 1
            self.shell.close()

    @property
    def protocol_version(self) -> str:
        """The server's PSRP protocol version (its SESSION_CAPABILITY), e.g. "2.1"."""
        capability = self.pool.their_capability
        return "" if capability is None else str(capability.protocolversion)

    @property
    def application_private_data(self) -> dict[str, Any]:
        return dict(self.pool.application_private_data or {})

    # --- pipelines --------------------------------------------------------------------------------------------

    def powershell(self, has_input: bool) -> psrpcore.ClientPowerShell:
        """A new pipeline as pypsrp's PowerShell starts one: invocation info on every stream record, the shell's
        error pipe not merged into output."""
        return psrpcore.ClientPowerShell(self.pool, no_input=not has_input,
                                         remote_stream_options=RemoteStreamOptions.AddInvocationInfo,
                                         redirect_shell_error_to_out=False, pipeline_id=uuid.uuid4())

    def invoke(self, pipeline: psrpcore.ClientPowerShell | psrpcore.ClientGetCommandMetadata,
               pipeline_input: Sequence[Any] | None = None) -> Outcome:
        """Start ``pipeline``, send its input, and receive until its state is final."""
        command_id = str(pipeline.pipeline_id).upper()
        outcome = Outcome()
        pipeline.start()
        first = self.pool.data_to_send(self.wsman.max_payload_size)
        if first is None:
            raise ProtocolFailure("psrpcore queued no CREATE_PIPELINE")
        self.bounds.check("starting a pipeline")
        self.requests += 1
        self.shell.command("", [base64.b64encode(first.data).decode("ascii")], command_id=command_id)
        if pipeline_input is not None:
            self._send_input(pipeline, pipeline_input, command_id)
        self._send_pending(command_id)
        self._receive_until(lambda: pipeline.state in _FINAL, (pipeline, outcome), "a pipeline")
        pipeline.close()  # psrpcore forgets it (a pipeline cut short goes with its lost session)
        outcome.state = pipeline.state
        return outcome

    def command_metadata(self, names: Sequence[str]) -> list[Any]:
        """GET_COMMAND_METADATA (MS-PSRP 2.2.2.14): one object per command (``Name``, ``Parameters``, ...), read by
        the tool's reader; the leading count object is dropped."""
        pipeline = psrpcore.ClientGetCommandMetadata(self.pool, list(names), command_type=CommandTypes.All,
                                                     pipeline_id=uuid.uuid4())
        outcome = self.invoke(pipeline)
        if outcome.failed:
            raise ProtocolFailure(f"GET_COMMAND_METADATA failed: {outcome.failure}")
        return outcome.output[1:]

    # --- the transport loop -----------------------------------------------------------------------------------

    def _send_input(self, pipeline: psrpcore.ClientPowerShell | psrpcore.ClientGetCommandMetadata,
                    pipeline_input: Sequence[Any], command_id: str) -> None:
        """The records and END_OF_PIPELINE_INPUT: string records written by :class:`InputWriter` (psrpcore's EOF
        rides in the last Send when it fits), anything else through psrpcore's ``send``."""
        size = self.wsman.max_payload_size
        payloads: list[bytearray] = []
        if isinstance(pipeline, psrpcore.ClientPowerShell) and all(isinstance(item, str) for item in pipeline_input):
            try:
                payloads = self.input_writer.payloads(pipeline_input, self.pool.runspace_pool_id,
                                                      pipeline.pipeline_id, size)
            except WireError:
                payloads = []
        if not payloads:
            for item in pipeline_input:
                pipeline.send(item)
        pipeline.send_eof()
        if payloads and size - len(payloads[-1]) >= _SMALLEST_FRAGMENT:
            eof = self.pool.data_to_send(size - len(payloads[-1]))
            if eof is not None:
                payloads[-1] += eof.data
        for payload in payloads:
            self.bounds.check("sending")
            self.requests += 1
            self.shell.send("stdin", bytes(payload), command_id=command_id)

    def _send_pending(self, command_id: str | None) -> None:
        while (payload := self.pool.data_to_send(self.wsman.max_payload_size)) is not None:
            self.bounds.check("sending")
            self.requests += 1
            self.shell.send("stdin", payload.data, command_id=command_id)

    def _receive_until(self, done: Callable[[], bool], pipeline: tuple[Any, Outcome] | None, what: str) -> None:
        command_id = None if pipeline is None else str(pipeline[0].pipeline_id).upper()
        last_progress = self.bounds.clock()
        idle = 0
        ahead: _Ahead | None = None
        try:
            while ahead is not None or not done():  # what a Receive in flight brings is read, whatever came before
                if ahead is not None:
                    state, data = ahead.result()
                    ahead = None
                    self._send_pending(command_id)
                else:
                    self.bounds.check(what)
                    if self.bounds.clock() - last_progress > self.bounds.stall_seconds:
                        raise ProtocolFailure(f"{what}: no progress for {self.bounds.stall_seconds:g} s")
                    if idle > 1:
                        self.bounds.sleep(min(self.bounds.max_pause, self.bounds.first_pause * 2 ** (idle - 2)))
                    self.requests += 1
                    state, data = self._receive(command_id)
                if not data:
                    idle += 1
                    continue
                idle = 0
                last_progress = self.bounds.clock()
                messages = list(self.defragmenter.feed(data))
                if command_id is not None and self._may_receive_ahead(state, messages):
                    self.requests += 1
                    ahead = _Ahead(lambda: self._receive(command_id))
                for message in messages:
                    self._dispatch(message, pipeline)
                if ahead is None:
                    self._send_pending(command_id)
        finally:
            if ahead is not None:  # failing: the next request on the connection waits for this one to end
                ahead.settle()

    def _receive(self, command_id: str | None) -> tuple[str, bytes]:
        """One Receive: WSMan's command state and the stdout bytes (none for an operation-timeout fault)."""
        try:
            state, _, streams = self.shell.receive("stdout", command_id=command_id)
        except WSManFaultError as exc:
            if exc.code != OPERATION_TIMEOUT_FAULT:
                raise
            return CommandState.RUNNING, b""
        return state, streams.get("stdout", b"")

    def _may_receive_ahead(self, state: str, messages: Sequence[Message]) -> bool:
        """More output is due (no state change or host call in this data, the command not done) and there is
        time to ask for it."""
        if state == CommandState.DONE or any(message.message_type in _TURNING for message in messages):
            return False
        return self.bounds.deadline is None or self.bounds.clock() < self.bounds.deadline

    def _dispatch(self, message: Message, pipeline: tuple[Any, Outcome] | None) -> None:
        if message.message_type == PIPELINE_OUTPUT and pipeline is not None:
            data = message.data
            pipeline[1].output.append(clixml.read(data) if data else None)
            return
        self.pool.receive_data(psrpcore.PSRPPayload(message.as_fragment(), psrpcore.StreamType.default,
                                                    message.pipeline_id))
        while (event := self._next_event(message)) is not None:
            self._event(event, pipeline)

    def _next_event(self, message: Message) -> Any:
        try:
            return self.pool.next_event()
        except Exception as exc:  # psrpcore raises what its parsers raise (ValueError, KeyError, ParseError, ...)
            raise ProtocolFailure(f"psrpcore could not read message 0x{message.message_type:08X}: "
                                  f"{type(exc).__name__}: {exc}") from exc

    def _event(self, event: Any, pipeline: tuple[Any, Outcome] | None) -> None:
        if isinstance(event, psrpcore.RunspacePoolStateEvent) and event.state in (
                RunspacePoolState.Broken, RunspacePoolState.Closed):
            raise ProtocolFailure(f"the server's runspace pool is {event.state.name}")
        if isinstance(event, psrpcore.PipelineHostCallEvent | psrpcore.RunspacePoolHostCallEvent):
            if event.ci != -100:  # a host method that expects an answer: this client has no host
                raise ProtocolFailure(f"the server called the host ({event.method_identifier.name})")
            return
        if pipeline is None or event.pipeline_id != pipeline[0].pipeline_id:
            return
        outcome = pipeline[1]
        if isinstance(event, psrpcore.ErrorRecordEvent):
            outcome.errors.append(event.record)
        elif isinstance(event, psrpcore.WarningRecordEvent):
            outcome.warnings.append(event.record)
        elif isinstance(event, psrpcore.PipelineStateEvent) and event.state == PSInvocationState.Failed:
            outcome.failed = True
            outcome.failure = event.reason
        elif isinstance(event, psrpcore.PipelineOutputEvent):
            outcome.output.append(event.data)  # not reached: output is read before psrpcore sees it
