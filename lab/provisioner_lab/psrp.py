"""PSRP over psrpcore: one :class:`Shell` per runspace pool, its pipelines, and the per-target output queues.

psrpcore keeps the protocol state of the pool and its pipelines (capability exchange, pool and pipeline states,
the generic serialiser), through its public API only. The wire is the lab's (:mod:`provisioner_lab.framing`):
the client's fragments are joined into messages here; a CREATE_PIPELINE the lab's own reader
(:func:`provisioner_lab.clixml.parse_create_pipeline`) understands, a PIPELINE_INPUT record that is one string
(:func:`provisioner_lab.clixml.parse_pipeline_input`) and the pool's runspace requests
(SET_MAX/MIN_RUNSPACES, GET_AVAILABLE_RUNSPACES, RESET_RUNSPACE_STATE) are handled without psrpcore, every other
message goes to psrpcore's ``receive_data`` as one fragment. Outgoing, output the lab rendered to CLIXML itself
(:class:`provisioner_lab.clixml.Writer`, error records of a known shape) is framed here, and after every operation
:meth:`Shell._drain` takes what psrpcore queued (``data_to_send``), so both reach the client in the order they were
written, numbered by the pool's one ObjectId counter and filed under their target (the pool, or a pipeline by
CommandId) so a Receive for one pipeline never returns another's data. A pipeline runs when its CREATE_PIPELINE
message is complete (and, if it takes input, after END_OF_PIPELINE_INPUT) in a thread of its own, as WinRM answers
the Command at once and the client polls with Receive; the engine is called without holding the shell lock.

The pool speaks as the server :class:`~provisioner_lab.profiles.ServerProfile` says: its SESSION_CAPABILITY carries
the profile's protocol version (and PSVersion 2.0, as every PowerShell server sends), APPLICATION_PRIVATE_DATA
its ``PSVersionTable``; below protocol 2.2 only a pipeline's first statement is read, its ``ExtraCmds`` are
ignored as a Windows PowerShell 2.0 server ignores them. GET_COMMAND_METADATA is answered from the engine's
:class:`~provisioner_lab.api.MetadataEngine` side when it has one (else with no commands).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import psrpcore
from psrpcore.types import (
    PipelineState,
    PSInvocationState,
    PSRPMessageType,
    PSVersion,
    RunspaceAvailability,
    SessionCapability,
    deserialize,
    serialize,
)

from provisioner_lab import clixml, convert, framing, metadata
from provisioner_lab.api import (
    ALL_COMMAND_TYPES,
    CommandInfo,
    Engine,
    LabError,
    MetadataEngine,
    MetadataQuery,
    MetadataResult,
    PipelineResult,
    Statement,
)
from provisioner_lab.profiles import DEFAULT_PROFILE, ServerProfile

log = logging.getLogger(__name__)

#: Largest fragment queued for a Receive; must fit the smallest MaxEnvelopeSize (153600) after base64.
CHUNK_SIZE = 32768

_CREATE_PIPELINE = PSRPMessageType.CreatePipeline.value
_PIPELINE_INPUT = PSRPMessageType.PipelineInput.value
#: The pool's runspace requests, answered by the lab with a RUNSPACE_AVAILABILITY (MS-PSRP 2.2.2.6-2.2.2.8, 2.2.2.31).
_POOL_REQUESTS = frozenset(kind.value for kind in (
    PSRPMessageType.SetMaxRunspaces,
    PSRPMessageType.SetMinRunspaces,
    PSRPMessageType.GetAvailableRunspaces,
    PSRPMessageType.ResetRunspaceState,
))


@functools.lru_cache(maxsize=256)
def command_key(pipeline_id: uuid.UUID) -> str:
    """The shell's key of a pipeline: its id as WinRS's CommandId, upper case (a message per input record asks)."""
    return str(pipeline_id).upper()


def call_id(request: Any) -> int:
    """The ``ci`` of a pool-level request. pypsrp 0.9.1 spells it ``CI`` in SET_MAX/MIN_RUNSPACES; PowerShell
    reads property names case-insensitively, so both are accepted."""
    for name in ("ci", "CI", "Ci"):
        try:
            return int(getattr(request, name))
        except AttributeError:
            continue
    raise psrpcore.PSRPCoreError("pool request without a call id")


def new_pool(profile: ServerProfile = DEFAULT_PROFILE) -> psrpcore.ServerRunspacePool:
    """psrpcore's server pool speaking as ``profile``'s PowerShell: its SESSION_CAPABILITY answer (``our_capability``)
    and APPLICATION_PRIVATE_DATA (the ``PSVersionTable``)."""
    pool = psrpcore.ServerRunspacePool(
        application_private_data=metadata.application_private_data(profile.psversion_table())
    )
    pool.our_capability = SessionCapability(
        PSVersion=PSVersion(profile.session_ps_version),
        protocolversion=PSVersion(profile.protocol_version),
        SerializationVersion=PSVersion(profile.serialization_version),
    )
    return pool


def serializer(pool: psrpcore.ServerRunspacePool, cipher: psrpcore.PSRemotingCrypto) -> Callable[[Any], bytes]:
    """A message's CLIXML as ``pool.prepare_message`` writes it (psrpcore's serialiser with the pool's capabilities;
    ``cipher`` only matters for secure strings, which the lab never sends)."""

    def to_bytes(message: Any) -> bytes:
        element = serialize(
            message, cipher, our_capability=pool.our_capability, their_capability=pool.their_capability
        )
        return bytes(ElementTree.tostring(element, encoding="utf-8", method="xml"))

    return to_bytes


def _capability_key(capability: Any) -> tuple[str, ...]:
    if capability is None:
        return ()
    return (str(capability.PSVersion), str(capability.protocolversion), str(capability.SerializationVersion))


#: GET_COMMAND_METADATA's CommandMetadata objects as the pool serialises them, per command and both sides'
#: capabilities (all the serialiser reads besides the object): a CommandInfo is immutable, so an entry never goes
#: stale. psrpcore takes ~10 ms per cmdlet; a session asks once, and every session the same.
_COMMAND_CLIXML: dict[tuple[CommandInfo, tuple[str, ...], tuple[str, ...]], bytes] = {}
_COMMAND_CLIXML_LIMIT = 4096


def command_output(info: CommandInfo, pool: psrpcore.ServerRunspacePool, to_bytes: Callable[[Any], bytes]) -> bytes:
    """One CommandMetadata output object as ``pool.prepare_message`` writes it (``to_bytes``: :func:`serializer`
    of the pool), from the cache when it was written before."""
    key = (info, _capability_key(pool.our_capability), _capability_key(pool.their_capability))
    data = _COMMAND_CLIXML.get(key)
    if data is None:
        data = to_bytes(metadata.command_object(info))
        if len(_COMMAND_CLIXML) >= _COMMAND_CLIXML_LIMIT:
            _COMMAND_CLIXML.clear()
        _COMMAND_CLIXML[key] = data
    return data


class ShellClosed(Exception):
    """The shell was deleted (or the server stopped) while a request waited on it."""


@dataclass
class _Command:
    command_id: str
    pipeline: Any  # psrpcore.ServerPipeline
    statements: list[Statement] | None = None  # set once CREATE_PIPELINE is complete
    query: MetadataQuery | None = None  # set instead for a GET_COMMAND_METADATA
    no_input: bool = True
    input: list[Any] = field(default_factory=list)
    input_done: bool = False
    started: bool = False
    finished: bool = False
    chunks: deque[bytes] = field(default_factory=deque)

    def runnable(self) -> bool:
        if self.started:
            return False
        return self.query is not None or (self.statements is not None and (self.no_input or self.input_done))


@dataclass
class ReceiveResult:
    data: bytes
    done: bool


class Shell:
    """A runspace pool (WinRS shell) and its pipelines."""

    def __init__(
        self,
        shell_id: str,
        engine: Engine,
        *,
        user: str | None,
        resource_uri: str,
        client_ip: str,
        inline_wait: float = 0.25,
        profile: ServerProfile = DEFAULT_PROFILE,
    ) -> None:
        self.shell_id = shell_id
        self.profile = profile
        self.inline_wait = inline_wait
        self.user = user
        self.resource_uri = resource_uri
        self.client_ip = client_ip
        self._engine = engine
        self._cond = threading.Condition()
        self._pool = new_pool(profile)
        self._cipher = psrpcore.PSRemotingCrypto()  # the lab's own; psrpcore keeps the pool's to itself
        self._to_bytes = serializer(self._pool, self._cipher)
        self._errors = convert.ErrorTemplates(self._to_bytes)
        self._inbox = framing.Defragmenter()  # the client's fragments
        self._from_psrpcore = framing.Defragmenter()  # what psrpcore queued, in its own fragments
        self._outbox = framing.Outbox(CHUNK_SIZE)
        self.max_runspaces = 0  # from INIT_RUNSPACEPOOL and SET_MAX_RUNSPACES
        self._pool_chunks: deque[bytes] = deque()
        self._commands: dict[str, _Command] = {}
        self.closed = False
        self.last_used = time.monotonic()  # updated by the server on every request for this shell

    # --- input ----------------------------------------------------------------------------------------------------

    def receive_creation(self, data: bytes) -> None:
        """Process the ``creationXml`` fragments (SESSION_CAPABILITY + INIT_RUNSPACEPOOL) of transfer/Create."""
        self._feed(data)

    def create_command(self, command_id: str, data: bytes) -> None:
        """shell/Command: register the pipeline and process its first CREATE_PIPELINE fragment(s)."""
        with self._cond:
            self._check_open()
            pipeline_id = uuid.UUID(command_id)
            pipeline = psrpcore.ServerPipeline(self._pool, pipeline_id)
            self._commands[command_id] = _Command(command_id, pipeline)
        self._feed(data)

    def send(self, data: bytes, command_id: str | None) -> None:
        """shell/Send: further fragments for the pool or a pipeline."""
        if command_id is not None and command_id not in self._commands:
            raise KeyError(command_id)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Process the fragments of a Create, Command or Send (the messages name their pipeline themselves)."""
        ready: list[_Command] = []
        with self._cond:
            self._check_open()
            for message in self._inbox.feed(data):
                cmd = self._take(message)
                if cmd is not None and cmd.runnable():
                    cmd.started = True
                    ready.append(cmd)
            self._drain()
            self._cond.notify_all()
        for cmd in ready:
            # The pipeline runs in a thread of its own, so a slow engine cannot hold up the Command/Send answer
            # (the client then polls with Receive, as against WinRM). A quick one is waited for, though: answering
            # while the pipeline thread holds the GIL would stall the answer for a whole switch interval (5 ms).
            name = f"lab-pipeline-{cmd.command_id}"
            threading.Thread(target=self._execute, args=(cmd,), name=name, daemon=True).start()
            deadline = time.monotonic() + self.inline_wait
            with self._cond:
                while not (cmd.finished or self.closed):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)

    def _take(self, message: framing.Message) -> _Command | None:
        """One whole client message: read by the lab (a CREATE_PIPELINE its reader understands, a string record of
        PIPELINE_INPUT, a pool request) or passed to psrpcore; the command it concerns, if any."""
        kind = message.message_type
        if kind == _PIPELINE_INPUT and message.pipeline_id is not None:
            try:
                record = clixml.parse_pipeline_input(message.data)
            except clixml.Unsupported:
                pass  # psrpcore's generic path below
            else:
                return self._input(message.pipeline_id, record)
        elif kind == _CREATE_PIPELINE and message.pipeline_id is not None:
            cmd = self._commands.get(command_key(message.pipeline_id))
            if cmd is not None:
                try:
                    parsed = clixml.parse_create_pipeline(message.data, extra_cmds=self.profile.reads_extra_cmds)
                except (clixml.Unsupported, ValueError):
                    pass  # psrpcore's generic path below
                else:
                    cmd.statements = parsed.statements
                    cmd.no_input = parsed.no_input
                    return cmd
        elif kind in _POOL_REQUESTS:
            self._answer_pool_request(message)
            return None
        self._pool.receive_data(
            psrpcore.PSRPPayload(message.as_fragment(), psrpcore.StreamType.default, message.pipeline_id)
        )
        cmd = None
        while (event := self._pool.next_event()) is not None:
            cmd = self._handle_event(event) or cmd
        return cmd

    def _input(self, pipeline_id: uuid.UUID, record: Any) -> _Command | None:
        """One record of pipeline input, in the order the client sent it (read by the lab or by psrpcore)."""
        cmd = self._commands.get(command_key(pipeline_id))
        if cmd is not None:
            cmd.input.append(record)
        return cmd

    def _answer_pool_request(self, message: framing.Message) -> None:
        """SET_MAX/MIN_RUNSPACES, RESET_RUNSPACE_STATE: granted; GET_AVAILABLE_RUNSPACES: the pool's maximum (one
        at least), as the pipelines run one after another."""
        response: bool | int = True
        try:
            request: Any = deserialize(ElementTree.fromstring(message.data), self._cipher)
            ci = call_id(request)
            if message.message_type == PSRPMessageType.GetAvailableRunspaces.value:
                response = max(self.max_runspaces, 1)
            elif message.message_type == PSRPMessageType.SetMaxRunspaces.value:
                self.max_runspaces = int(request.MaxRunspaces)
        except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as exc:
            raise psrpcore.PSRPCoreError(f"unreadable pool request: {exc}") from exc
        self._pool.prepare_message(RunspaceAvailability(SetMinMaxRunspacesResponse=response, ci=ci))

    def _handle_event(self, event: psrpcore.PSRPEvent[Any, Any]) -> _Command | None:
        if isinstance(event, psrpcore.InitRunspacePoolEvent):
            self.max_runspaces = int(event.max_runspaces)
            return None
        if isinstance(event, psrpcore.CreatePipelineEvent):
            cmd = self._commands.get(command_key(event.pipeline_id))
            if cmd is not None:
                pipeline = event.pipeline  # a property that rebuilds the object on every access
                statements = convert.statements_from_pipeline(pipeline)
                # Below protocol 2.2 only the first statement: ExtraCmds[0] is Cmds as every client sends it.
                cmd.statements = statements if self.profile.reads_extra_cmds else statements[:1]
                cmd.no_input = bool(pipeline.no_input)
            return cmd
        if isinstance(event, psrpcore.GetCommandMetadataEvent):
            cmd = self._commands.get(command_key(event.pipeline_id))
            if cmd is not None:
                cmd.query = _query(event.pipeline)
            return cmd
        if isinstance(event, psrpcore.PipelineInputEvent):
            return self._input(event.pipeline_id, convert.to_plain(event.data))
        if isinstance(event, psrpcore.EndOfPipelineInputEvent):
            cmd = self._commands.get(command_key(event.pipeline_id))
            if cmd is not None:
                cmd.input_done = True
            return cmd
        return None

    # --- execution ------------------------------------------------------------------------------------------------

    def _execute(self, cmd: _Command) -> None:
        if cmd.query is not None:
            self._execute_metadata(cmd, cmd.query)
            return
        started = time.perf_counter()
        try:
            result = self._engine.run(list(cmd.statements or []), cmd.input, user=self.user)
        except Exception as exc:  # an engine bug must not hang the client: fail the pipeline instead
            log.exception("lab engine raised")
            result = PipelineResult(
                failure=LabError(
                    message=f"{type(exc).__name__}: {exc}",
                    exception_type="System.Management.Automation.RuntimeException",
                    category="NotSpecified",
                    reason="RuntimeException",
                    fq_error_id="LabEngineException",
                )
            )
        log.debug("pipeline %s ran in %.1f ms", cmd.command_id, (time.perf_counter() - started) * 1000)
        with self._cond:
            if self.closed or cmd.command_id not in self._commands:
                return
            self._write_result(cmd, result)
            self._drain()
            self._cond.notify_all()

    def _execute_metadata(self, cmd: _Command, query: MetadataQuery) -> None:
        """GET_COMMAND_METADATA: the count object, then one CommandMetadata per command (MS-PSRP 3.1.4.5)."""
        engine = self._engine
        try:
            found = (engine.command_metadata(query, user=self.user) if isinstance(engine, MetadataEngine)
                     else MetadataResult())
            output: list[Any] = [metadata.count_object(len(found.commands))]
            output += [command_output(info, self._pool, self._to_bytes) for info in found.commands]
            result = PipelineResult(errors=list(found.errors))
        except Exception as exc:  # as in _execute: fail the pipeline rather than hang the client
            log.exception("lab command metadata raised")
            output = []
            result = PipelineResult(failure=LabError(
                message=f"{type(exc).__name__}: {exc}",
                exception_type="System.Management.Automation.RuntimeException",
                category="NotSpecified",
                reason="RuntimeException",
                fq_error_id="LabEngineException",
            ))
        with self._cond:
            if self.closed or cmd.command_id not in self._commands:
                return
            self._write_result(cmd, result, ps_output=output)
            self._drain()
            self._cond.notify_all()

    def _write_result(self, cmd: _Command, result: PipelineResult, ps_output: list[Any] | None = None) -> None:
        pipeline = cmd.pipeline
        pipeline.state = PSInvocationState.Running  # no Running PIPELINE_STATE message; PowerShell sends none
        for obj in ps_output or ():  # psrpcore objects, or their CLIXML already written (command_output)
            if isinstance(obj, bytes):
                self._send_rendered(cmd, PSRPMessageType.PipelineOutput, obj)
            else:
                pipeline.write_output(obj)
        writer = clixml.Writer()
        for item in result.output:
            try:
                data = clixml.render_output(writer, item)
            except clixml.Unsupported:
                pipeline.write_output(convert.to_ps(item))
            else:
                self._send_rendered(cmd, PSRPMessageType.PipelineOutput, data)
        for text in result.verbose:
            pipeline.write_verbose(text)
        for text in result.warnings:
            pipeline.write_warning(text)
        for error in result.errors:
            rendered = self._errors.clixml(error)
            if rendered is None:
                pipeline.prepare_message(convert.error_record(error), message_type=PSRPMessageType.ErrorRecord)
            else:
                self._send_rendered(cmd, PSRPMessageType.ErrorRecord, rendered)
        if result.failure is not None:
            state = PipelineState(PipelineState=int(PSInvocationState.Failed))
            state.ExceptionAsErrorRecord = convert.error_record(result.failure)
            pipeline.prepare_message(state)
            pipeline.state = PSInvocationState.Failed
        else:
            pipeline.complete()
        pipeline.close()
        cmd.finished = True

    # --- output ---------------------------------------------------------------------------------------------------

    def _send_rendered(self, cmd: _Command, message_type: PSRPMessageType, data: bytes) -> None:
        """Queue a message the lab rendered itself for ``cmd``'s pipeline, after what psrpcore queued before it."""
        self._drain()
        raw = framing.message(framing.DESTINATION_CLIENT, message_type.value, self._pool.runspace_pool_id,
                              cmd.pipeline.pipeline_id, data)
        cmd.chunks.extend(self._outbox.fragments(raw))

    def _drain(self) -> None:
        """Move what psrpcore queued into the lab's queues, each message reframed with the pool's next ObjectId."""
        while (payload := self._pool.data_to_send()) is not None:
            for message in self._from_psrpcore.feed(payload.data):
                if message.pipeline_id is None:
                    self._pool_chunks.extend(self._outbox.fragments(message.raw))
                    continue
                cmd = self._commands.get(command_key(message.pipeline_id))
                if cmd is not None:
                    cmd.chunks.extend(self._outbox.fragments(message.raw))

    def receive(self, command_id: str | None, max_bytes: int, timeout: float, stop: threading.Event) -> ReceiveResult:
        """Wait up to ``timeout`` for output; raise TimeoutError if none, KeyError for an unknown command."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._check_open()
                if command_id is None:
                    queue = self._pool_chunks
                    finished = False
                else:
                    cmd = self._commands.get(command_id)
                    if cmd is None:
                        raise KeyError(command_id)
                    queue = cmd.chunks
                    finished = cmd.finished
                if queue or finished:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.is_set():
                    raise TimeoutError
                self._cond.wait(min(remaining, 0.5))
            parts: list[bytes] = []
            size = 0
            while queue and (not parts or size + len(queue[0]) <= max_bytes):
                chunk = queue.popleft()
                parts.append(chunk)
                size += len(chunk)
            done = finished and not queue
            if done and command_id is not None:
                self._commands.pop(command_id, None)
        return ReceiveResult(b"".join(parts), done)

    def signal(self, command_id: str | None, code: str) -> None:
        """ctrl_c/terminate: pipelines run to completion synchronously, so this just forgets the command."""
        with self._cond:
            if command_id is None:
                return
            cmd = self._commands.pop(command_id.upper(), None)
            if cmd is not None and cmd.pipeline.state == PSInvocationState.Running:
                cmd.pipeline.stop()
                cmd.pipeline.close()
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            if self.closed:
                return
            self.closed = True
            for cmd in self._commands.values():
                try:
                    if cmd.pipeline.state == PSInvocationState.Running:
                        cmd.pipeline.stop()
                    cmd.pipeline.close()
                except psrpcore.PSRPCoreError:
                    pass
            self._commands.clear()
            with contextlib.suppress(psrpcore.PSRPCoreError):
                self._pool.close()
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self.closed:
            raise ShellClosed(self.shell_id)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _query(request: Any) -> MetadataQuery:
    """A MetadataQuery from psrpcore's GetMetadata (MS-PSRP 2.2.2.14: a null Name means ``*``)."""
    names = tuple(str(name) for name in (request.name or []) if name is not None) or ("*",)
    types = ALL_COMMAND_TYPES if request.command_type is None else int(request.command_type)
    namespaces = None if request.namespace is None else tuple(str(ns) for ns in request.namespace)
    return MetadataQuery(names, types, namespaces)

