"""The lab endpoint: a loopback WinRM/PSRP server in front of an :class:`~provisioner_lab.api.Engine`.

Usage::

    with LabServer(engine, users={"svc-sync": "Passw0rd!"}) as lab:
        wsman = WSMan("127.0.0.1", port=lab.port, path="PowerShell", ssl=False, auth="ntlm",
                      username="svc-sync", password="Passw0rd!")
        with RunspacePool(wsman, configuration_name="Microsoft.Exchange") as pool:
            ...

``serve_forever()`` runs the same server in the foreground (for a CLI process).
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from psrpcore import PSRPCoreError

from provisioner_lab import wsman
from provisioner_lab.api import Engine
from provisioner_lab.auth import KerberosAcceptor, LabUsers
from provisioner_lab.http import Call, LabHTTPServer, Reply
from provisioner_lab.profiles import ServerProfile, get_profile
from provisioner_lab.psrp import Shell, ShellClosed

log = logging.getLogger(__name__)

ACTIONS = ("Create", "Command", "Send", "Receive", "Signal", "Delete", "Get")
DEFAULT_USERS = {"lab-admin": "Lab-Passw0rd!"}


@dataclass
class FaultOptions:
    """Fault injection; everything is off by default.

    Request numbers count WS-Management requests from 1, starting when the options were set (constructor or
    :meth:`LabServer.set_faults`); authentication-only HTTP requests are not counted. With ``actions`` set, only
    requests of those actions (e.g. ``{"Command"}``) are eligible for errors and drops, and the numbers count
    eligible requests only. Fractions draw from ``random.Random(seed)`` in request order, so a single-threaded
    client sees the same faults on every run. Latency applies to every WS-Management request whatever ``actions``.
    """

    latency_ms: float = 0.0  #: added before answering every WS-Management request
    error_requests: frozenset[int] = frozenset()  #: answer these requests with HTTP 500
    error_rate: float = 0.0  #: ... and this fraction of the others
    drop_requests: frozenset[int] = frozenset()  #: close the connection without answering these
    drop_rate: float = 0.0
    actions: frozenset[str] | None = None
    seed: int = 0


class Counters:
    """Thread-safe request counters: one per WS-Management action plus ``total``, HTTP and fault figures."""

    KEYS = (*ACTIONS, "Other", "total", "http_requests", "http_401", "encrypted", "errors_injected", "dropped",
            "faults", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.KEYS, 0)

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._values.get(key, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values = dict.fromkeys(self.KEYS, 0)

    def __repr__(self) -> str:
        return f"Counters({self.snapshot()!r})"


class LabServer:
    """A WinRM/PSRP endpoint on loopback that serves an Exchange engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/PowerShell",
        configuration_name: str = "Microsoft.Exchange",
        users: dict[str, str] | None = None,
        auth: Iterable[str] = ("basic", "ntlm", "negotiate"),
        faults: FaultOptions | None = None,
        capture_wire: bool = False,
        pipeline_wait: float = 0.25,
        idle_timeout: float = 7200.0,
        kerberos: KerberosAcceptor | None = None,
        profile: str | ServerProfile | None = None,
    ) -> None:
        self.engine = engine
        #: The server release the endpoint speaks as (protocol version, PSVersionTable); by default the engine's.
        self.profile = get_profile(profile if profile is not None else getattr(engine, "profile", None))
        self.host = host
        self._requested_port = port
        self.path = path if path.startswith("/") else "/" + path
        self.configuration_name = configuration_name
        self.resource_uri = f"http://schemas.microsoft.com/powershell/{configuration_name}"
        self.auth_methods = frozenset(a.lower() for a in auth)
        unknown = self.auth_methods - {"basic", "ntlm", "negotiate"}
        if unknown:
            raise ValueError(f"unsupported auth methods: {sorted(unknown)}")
        #: With ``kerberos`` (a service keytab), Negotiate also accepts Kerberos; users then maps principals to names.
        self.users = LabUsers(DEFAULT_USERS if users is None else users, kerberos)
        self.faults = faults or FaultOptions()
        self.counters = Counters()
        #: Request bodies exactly as received (before decryption), when ``capture_wire`` is on (last 10000).
        self.wire: deque[bytes] = deque(maxlen=10000)
        self.capture_wire = capture_wire
        #: How long a Command/Send answer waits for the pipeline it started to finish (then Receive polls).
        self.pipeline_wait = pipeline_wait
        #: Pools idle this long are closed when another pool is created (WinRM's IdleTimeOut default is 7200 s).
        self.idle_timeout = idle_timeout

        self._shells: dict[str, Shell] = {}
        self._shells_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._eligible = 0
        self._stopping = threading.Event()
        self._httpd: LabHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _bind(self) -> LabHTTPServer:
        if self._httpd is None:
            self._stopping.clear()
            self.users.ensure_store()
            self._httpd = LabHTTPServer((self.host, self._requested_port), self)
        return self._httpd

    def start(self) -> LabServer:
        """Listen and serve in a background thread; returns once the socket is listening."""
        if self._thread is not None:
            return self
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="lab-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from another thread) or KeyboardInterrupt."""
        httpd = self._bind()
        try:
            httpd.serve_forever(poll_interval=0.2)
        finally:
            self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open pools and connections, remove the NTLM store. Bounded by ``timeout`` per join;
        ``start()`` may be called again afterwards."""
        self._stopping.set()
        httpd = self._httpd
        if httpd is None:
            self.users.close()
            return
        stopper = threading.Thread(target=httpd.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout)
        self._close_all()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._httpd = None
        self.users.close()

    def close(self) -> None:
        """Same as :meth:`stop` (kept for symmetry with other closable resources)."""
        self.stop()

    def close_pools(self) -> int:
        """Close every open runspace pool server-side (as a restarted endpoint would); returns how many."""
        with self._shells_lock:
            count = len(self._shells)
        self._close_all()
        return count

    def _close_all(self) -> None:
        with self._shells_lock:
            shells = list(self._shells.values())
            self._shells.clear()
        for shell in shells:
            shell.close()

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the lab server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def open_shells(self) -> int:
        with self._shells_lock:
            return len(self._shells)

    # --- Backend protocol (called by the HTTP layer) --------------------------------------------------------------

    def note_http(self, *, status: int, bytes_in: int, bytes_out: int) -> None:
        if status == 0:
            self.counters.add("http_requests")
        if status == 401:
            self.counters.add("http_401")
        if bytes_in:
            self.counters.add("bytes_in", bytes_in)
        if bytes_out:
            self.counters.add("bytes_out", bytes_out)

    def handle(self, call: Call) -> Reply:
        if self.capture_wire:
            self.wire.append(call.raw)
        if call.encrypted:
            self.counters.add("encrypted")
        try:
            req = wsman.parse_request(call.body)
        except wsman.WSManFault as fault:
            self.counters.add("faults")
            return Reply(500, wsman.fault_envelope(fault, None))
        self.counters.add(req.name)
        self.counters.add("total")

        injected = self._inject(req.name)
        if injected is not None:
            return injected
        try:
            return Reply(200, self._dispatch(req, call))
        except wsman.WSManFault as fault:
            if fault.code != 2150858793:
                log.info("lab fault for %s: %s", req.name, fault.reason)
            self.counters.add("faults")
            return Reply(500, wsman.fault_envelope(fault, req.message_id))
        except Exception as exc:  # a lab bug: answer like a WinRM internal error instead of dropping the connection
            log.exception("lab server error on %s", req.name)
            self.counters.add("faults")
            internal = wsman.WSManFault(2147500037, "w:InternalError", f"Lab server internal error: {exc!r}")
            return Reply(500, wsman.fault_envelope(internal, req.message_id))

    def _inject(self, action: str) -> Reply | None:
        faults = self.faults
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000.0)
        if faults.actions is not None and action not in faults.actions:
            return None
        if not (faults.error_requests or faults.error_rate or faults.drop_requests or faults.drop_rate):
            return None
        with self._fault_lock:
            self._eligible += 1
            number = self._eligible
            error_draw = self._rng.random() if faults.error_rate else 1.0
            drop_draw = self._rng.random() if faults.drop_rate else 1.0
        if number in faults.drop_requests or drop_draw < faults.drop_rate:
            self.counters.add("dropped")
            return Reply(drop=True)
        if number in faults.error_requests or error_draw < faults.error_rate:
            self.counters.add("errors_injected")
            return Reply(500, b"Injected lab fault: HTTP 500", content_type="text/plain")
        return None

    def set_faults(self, faults: FaultOptions) -> None:
        """Replace the fault options (and restart the deterministic sequence)."""
        with self._fault_lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._eligible = 0

    # --- WS-Management dispatch -----------------------------------------------------------------------------------

    def _dispatch(self, req: wsman.Request, call: Call) -> bytes:
        action = req.action
        if action == wsman.ACTION_GET:
            if req.resource_uri.lower() not in (wsman.SHELL_RESOURCE_URI.lower(), self.resource_uri.lower()):
                raise wsman.fault_invalid_resource_uri(_config_of(req.resource_uri), self.host)
            shell = self._shell(req)
            return wsman.get_shell_response(req, shell.shell_id, shell.resource_uri, shell.user or "", shell.client_ip)
        if action not in wsman.ACTION_NAMES:
            raise wsman.fault_action_not_supported(action)
        if req.resource_uri.lower() != self.resource_uri.lower():
            raise wsman.fault_invalid_resource_uri(_config_of(req.resource_uri), self.host)
        if action == wsman.ACTION_CREATE:
            return self._create(req, call)
        shell = self._shell(req)
        try:
            if action == wsman.ACTION_COMMAND:
                return self._command(req, shell)
            if action == wsman.ACTION_SEND:
                return self._send(req, shell)
            if action == wsman.ACTION_RECEIVE:
                return self._receive(req, shell)
            if action == wsman.ACTION_SIGNAL:
                return self._signal(req, shell)
            # Delete
            with self._shells_lock:
                self._shells.pop(shell.shell_id, None)
            shell.close()
            return wsman.delete_response(req)
        except ShellClosed as exc:
            raise wsman.fault_shell_not_found(shell.shell_id) from exc
        except PSRPCoreError as exc:
            raise wsman.fault_invalid(f"PSRP error: {exc}") from exc

    def _shell(self, req: wsman.Request) -> Shell:
        shell_id = req.shell_id or ""
        with self._shells_lock:
            shell = self._shells.get(shell_id)
        if shell is None:
            raise wsman.fault_shell_not_found(shell_id)
        shell.last_used = time.monotonic()
        return shell

    def _expire_idle(self) -> None:
        """Close pools nobody used for ``idle_timeout`` seconds (clients that vanished without Delete)."""
        limit = time.monotonic() - self.idle_timeout
        with self._shells_lock:
            idle = [s for s in self._shells.values() if s.last_used < limit]
            for shell in idle:
                self._shells.pop(shell.shell_id, None)
        for shell in idle:
            log.info("closing idle runspace pool %s", shell.shell_id)
            shell.close()

    def _create(self, req: wsman.Request, call: Call) -> bytes:
        self._expire_idle()
        body = req.body
        if body is None or body.tag != f"{{{wsman.NS_RSP}}}Shell":
            raise wsman.fault_invalid("transfer/Create needs an rsp:Shell body.")
        shell_id = (body.attrib.get("ShellId") or str(uuid.uuid4())).upper()
        creation = body.find(f"{{{wsman.NS_PWSH}}}creationXml")
        if creation is None or not creation.text:
            raise wsman.fault_invalid("A PowerShell shell needs creationXml.")
        shell = Shell(
            shell_id,
            self.engine,
            user=call.user,
            resource_uri=req.resource_uri,
            client_ip=call.client_ip,
            inline_wait=self.pipeline_wait,
            profile=self.profile,
        )
        try:
            shell.receive_creation(_decode(creation.text))
        except PSRPCoreError as exc:
            raise wsman.fault_invalid(f"PSRP error: {exc}") from exc
        with self._shells_lock:
            if self._stopping.is_set():
                raise wsman.fault_invalid("The lab server is stopping.")
            self._shells[shell_id] = shell
        return wsman.create_response(req, shell_id, self.url, call.user or "", call.client_ip)

    def _command(self, req: wsman.Request, shell: Shell) -> bytes:
        body = req.body
        if body is None:
            raise wsman.fault_invalid("shell/Command needs an rsp:CommandLine body.")
        command_id = body.attrib.get("CommandId") or str(uuid.uuid4()).upper()
        args = body.find(f"{{{wsman.NS_RSP}}}Arguments")
        data = _decode(args.text) if args is not None and args.text else b""
        shell.create_command(command_id.upper(), data)
        return wsman.command_response(req, command_id)

    def _send(self, req: wsman.Request, shell: Shell) -> bytes:
        body = req.body
        if body is None:
            raise wsman.fault_invalid("shell/Send needs an rsp:Send body.")
        for stream in body.iterfind(f"{{{wsman.NS_RSP}}}Stream"):
            command_id = stream.attrib.get("CommandId")
            try:
                shell.send(_decode(stream.text or ""), command_id.upper() if command_id else None)
            except KeyError as exc:
                raise wsman.fault_invalid(f"The command {command_id} does not exist in this shell.") from exc
        return wsman.send_response(req)

    def _receive(self, req: wsman.Request, shell: Shell) -> bytes:
        body = req.body
        desired = body.find(f"{{{wsman.NS_RSP}}}DesiredStream") if body is not None else None
        command_id = desired.attrib.get("CommandId") if desired is not None else None
        try:
            result = shell.receive(
                command_id.upper() if command_id else None,
                wsman.max_stream_bytes(req.max_envelope_size),
                req.operation_timeout,
                self._stopping,
            )
        except TimeoutError as exc:
            raise wsman.fault_timed_out() from exc
        except KeyError as exc:
            raise wsman.fault_invalid(f"The command {command_id} does not exist in this shell.") from exc
        return wsman.receive_response(req, command_id, base64.b64encode(result.data), result.done)

    def _signal(self, req: wsman.Request, shell: Shell) -> bytes:
        body = req.body
        command_id = body.attrib.get("CommandId") if body is not None else None
        code_el = body.find(f"{{{wsman.NS_RSP}}}Code") if body is not None else None
        shell.signal(command_id, (code_el.text or "") if code_el is not None else "")
        return wsman.signal_response(req)


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError) as exc:
        raise wsman.fault_invalid("Invalid base64 stream data.") from exc


def _config_of(resource_uri: str) -> str:
    return resource_uri.rstrip("/").rsplit("/", 1)[-1] or resource_uri


def build_lab(engine: Engine, **options: Any) -> LabServer:
    """Create and start a lab server for ``engine`` (keyword options as for :class:`LabServer`)."""
    return LabServer(engine, **options).start()


__all__ = ["ACTIONS", "Counters", "FaultOptions", "LabServer", "build_lab"]
