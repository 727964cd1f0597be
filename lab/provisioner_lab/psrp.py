"""PSRP over psrpcore: one :class:`Shell` per runspace pool, its pipelines, and the per-target output queues.

psrpcore keeps one outgoing buffer per runspace pool; after every operation :meth:`Shell._drain` cuts it into
fragment chunks and files each chunk under its target (the pool, or a pipeline by CommandId) so a Receive for one
pipeline never returns another's data. A pipeline runs when its CREATE_PIPELINE message is complete (and, if it takes
input, after END_OF_PIPELINE_INPUT) in a thread of its own, as WinRM answers the Command at once and the client
polls with Receive; the engine is called without holding the shell lock.

The pool speaks as the server :class:`~provisioner_lab.profiles.ServerProfile` says: its SESSION_CAPABILITY carries
the profile's protocol version (and PSVersion 2.0, as every PowerShell server sends), APPLICATION_PRIVATE_DATA
its ``PSVersionTable``; below protocol 2.2 only a pipeline's first statement (``Cmds``) is read, its
``ExtraCmds`` are ignored as a Windows PowerShell 2.0 server ignores them. GET_COMMAND_METADATA is answered from
the engine's :class:`~provisioner_lab.api.MetadataEngine` side when it has one (else with no commands).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import psrpcore
from psrpcore._payload import PSRPMessage, create_message
from psrpcore.types import PSInvocationState, PSRPMessageType, PSVersion, SessionCapability, serialize

from provisioner_lab import clixml, convert, metadata
from provisioner_lab.api import (
    ALL_COMMAND_TYPES,
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

#: Largest fragment chunk queued for a Receive; must fit the smallest MaxEnvelopeSize (153600) after base64.
CHUNK_SIZE = 32768


def call_id(event: Any) -> int:
    """The ``ci`` of a pool-level request. pypsrp 0.9.1 spells it ``CI`` in SET_MAX/MIN_RUNSPACES; PowerShell
    reads property names case-insensitively, so both are accepted."""
    obj = event._ps_object
    for name in ("ci", "CI", "Ci"):
        try:
            return int(getattr(obj, name))
        except AttributeError:
            continue
    raise psrpcore.PSRPCoreError("pool request without a call id")


@dataclass
class FastCreatePipelineEvent:
    """A CREATE_PIPELINE read by :mod:`provisioner_lab.clixml` instead of psrpcore's generic deserialiser."""

    pipeline_id: uuid.UUID
    parsed: clixml.CreatePipeline


@dataclass(frozen=True)
class RawClixml:
    """An output object already rendered to CLIXML by :class:`provisioner_lab.clixml.Writer`."""

    data: bytes


class _LabRunspacePool(psrpcore.ServerRunspacePool):
    """psrpcore's server pool with fast paths (CREATE_PIPELINE in, pre-rendered output out); also tolerant of
    pypsrp's ``CI`` spelling, and speaking as ``profile``'s PowerShell (protocol version, PSVersionTable, no
    ExtraCmds below 2.2). The overrides use psrpcore 0.3.1 internals (the version is pinned)."""

    def __init__(self, profile: ServerProfile = DEFAULT_PROFILE) -> None:
        super().__init__(application_private_data=metadata.application_private_data(profile.psversion_table()))
        self.profile = profile
        # psrpcore sends our_capability as the answer to the client's SESSION_CAPABILITY
        self.our_capability = SessionCapability(
            PSVersion=PSVersion(profile.session_ps_version),
            protocolversion=PSVersion(profile.protocol_version),
            SerializationVersion=PSVersion(profile.serialization_version),
        )

    def prepare_message(
        self,
        message: Any,
        message_type: Any = None,
        pipeline_id: uuid.UUID | None = None,
        stream_type: psrpcore.StreamType = psrpcore.StreamType.default,
    ) -> None:
        if not isinstance(message, RawClixml):
            super().prepare_message(message, message_type, pipeline_id, stream_type)
            return
        kind = message_type or PSRPMessageType.PipelineOutput
        b_msg = create_message(self._is_client, kind, message.data, self.runspace_pool_id, pipeline_id)
        self._send_buffer.append(
            PSRPMessage(kind, bytearray(b_msg), self.runspace_pool_id, pipeline_id, self._fragment_counter, stream_type)
        )

    def message_bytes(self, message: Any) -> bytes:
        """A message's CLIXML as :meth:`prepare_message` serialises it (psrpcore's generic path)."""
        element = serialize(
            message, self._cipher, our_capability=self.our_capability, their_capability=self.their_capability
        )
        return bytes(ElementTree.tostring(element, encoding="utf-8", method="xml"))

    def _process_message(self, message: Any) -> Any:
        if message.message_type == PSRPMessageType.CreatePipeline and message.pipeline_id in self.pipeline_table:
            try:
                parsed = clixml.parse_create_pipeline(bytes(message.data), extra_cmds=self.profile.reads_extra_cmds)
            except (clixml.Unsupported, ValueError):
                pass  # psrpcore's generic path below
            else:
                return FastCreatePipelineEvent(message.pipeline_id, parsed)
        return super()._process_message(message)

    def _process_SetMaxRunspaces(self, event: Any) -> None:
        ci = call_id(event)
        self._ci_events[ci] = event
        self._ci_handlers[ci] = lambda _e: setattr(self, "_max_runspaces", int(event._ps_object.MaxRunspaces))

    def _process_SetMinRunspaces(self, event: Any) -> None:
        ci = call_id(event)
        self._ci_events[ci] = event
        self._ci_handlers[ci] = lambda _e: setattr(self, "_min_runspaces", int(event._ps_object.MinRunspaces))


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
        self._pool = _LabRunspacePool(profile)
        self._errors = convert.ErrorTemplates(self._pool.message_bytes)
        self._pool_chunks: deque[bytes] = deque()
        self._commands: dict[str, _Command] = {}
        self.closed = False
        self.last_used = time.monotonic()  # updated by the server on every request for this shell

    # --- input ----------------------------------------------------------------------------------------------------

    def receive_creation(self, data: bytes) -> None:
        """Process the ``creationXml`` fragments (SESSION_CAPABILITY + INIT_RUNSPACEPOOL) of transfer/Create."""
        self._feed(data, None)

    def create_command(self, command_id: str, data: bytes) -> None:
        """shell/Command: register the pipeline and process its first CREATE_PIPELINE fragment(s)."""
        with self._cond:
            self._check_open()
            pipeline_id = uuid.UUID(command_id)
            pipeline = psrpcore.ServerPipeline(self._pool, pipeline_id)
            self._commands[command_id] = _Command(command_id, pipeline)
        self._feed(data, command_id)

    def send(self, data: bytes, command_id: str | None) -> None:
        """shell/Send: further fragments for the pool or a pipeline."""
        if command_id is not None and command_id not in self._commands:
            raise KeyError(command_id)
        self._feed(data, command_id)

    def _feed(self, data: bytes, command_id: str | None) -> None:
        ready: list[_Command] = []
        with self._cond:
            self._check_open()
            pipeline_id = uuid.UUID(command_id) if command_id else None
            self._pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, pipeline_id))
            while True:
                event = self._pool.next_event()
                if event is None:
                    break
                cmd = self._handle_event(event)
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

    def _handle_event(self, event: Any) -> _Command | None:
        pool = self._pool
        if isinstance(event, FastCreatePipelineEvent):
            cmd = self._commands.get(str(event.pipeline_id).upper())
            if cmd is not None:
                cmd.statements = event.parsed.statements
                cmd.no_input = event.parsed.no_input
            return cmd
        if isinstance(event, psrpcore.CreatePipelineEvent):
            cmd = self._commands.get(str(event.pipeline_id).upper())
            if cmd is not None:
                pipeline = event.pipeline  # a property that rebuilds the object on every access
                if self.profile.reads_extra_cmds:
                    cmd.statements = convert.statements_from_pipeline(pipeline)
                else:
                    cmd.statements = convert.first_statement(event._ps_object)
                cmd.no_input = bool(pipeline.no_input)
            return cmd
        if isinstance(event, psrpcore.GetCommandMetadataEvent):
            cmd = self._commands.get(str(event.pipeline_id).upper())
            if cmd is not None:
                cmd.query = _query(event.pipeline)
            return cmd
        if isinstance(event, psrpcore.PipelineInputEvent):
            cmd = self._commands.get(str(event.pipeline_id).upper())
            if cmd is not None:
                cmd.input.append(convert.to_plain(event.data))
            return cmd
        if isinstance(event, psrpcore.EndOfPipelineInputEvent):
            cmd = self._commands.get(str(event.pipeline_id).upper())
            if cmd is not None:
                cmd.input_done = True
            return cmd
        if isinstance(event, psrpcore.GetAvailableRunspacesEvent):
            pool.runspace_availability_response(call_id(event), max(pool.max_runspaces, 1))
        elif isinstance(
            event, (psrpcore.SetMaxRunspacesEvent, psrpcore.SetMinRunspacesEvent, psrpcore.ResetRunspaceStateEvent)
        ):
            pool.runspace_availability_response(call_id(event), True)
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
            output += [metadata.command_object(info) for info in found.commands]
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
        for obj in ps_output or ():
            pipeline.write_output(obj)
        writer = clixml.Writer()
        for item in result.output:
            try:
                pipeline.write_output(RawClixml(clixml.render_output(writer, item)))
            except clixml.Unsupported:
                pipeline.write_output(convert.to_ps(item))
        for text in result.verbose:
            pipeline.write_verbose(text)
        for text in result.warnings:
            pipeline.write_warning(text)
        for error in result.errors:
            data = self._errors.clixml(error)
            record: Any = convert.error_record(error) if data is None else RawClixml(data)
            pipeline.prepare_message(record, message_type=PSRPMessageType.ErrorRecord)
        if result.failure is not None:
            pipeline._change_state(PSInvocationState.Failed, convert.error_record(result.failure))
        else:
            pipeline.complete()
        pipeline.close()
        cmd.finished = True

    # --- output ---------------------------------------------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            payload = self._pool.data_to_send(CHUNK_SIZE)
            if payload is None:
                return
            if payload.pipeline_id is None:
                self._pool_chunks.append(payload.data)
                continue
            cmd = self._commands.get(str(payload.pipeline_id).upper())
            if cmd is not None:
                cmd.chunks.append(payload.data)

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

