"""The fake Exchange Online REST endpoint (and the token issuer) on 127.0.0.1 over TLS.

``POST /adminapi/beta/<tenant>/InvokeCommand`` with ``{"CmdletInput": {"CmdletName", "Parameters"}}`` runs the
cmdlet on the lab's :class:`~provisioner_lab.exchange.engine.ExchangeEngine` (the same cmdlets, binder and
directory as the PSRP lab, as the app's account), and answers as the service does:

- success: 200 ``{"@odata.context", "adminapi.warnings@odata.type", "@adminapi.warnings": [...], "value": [...]}``
  with the output objects as JSON (nested objects as their ToString, enums as their names); more objects than
  ``Prefer: odata.maxpagesize`` (default 1000): ``@odata.nextLink`` with a ``$skiptoken``, continued by POSTing it;
- an error: 404 (ManagementObjectNotFoundException) or 400 (anything else) with ``{"error": {"code", "message":
  "Error executing cmdlet", "details": [{"code": "Context", "target", "message": "<id>|<Exception.Type>|<text>"}],
  "innererror": {...}}}``; a cmdlet the app's role does not include: 403 with an empty body;
- ``POST /adminapi/beta/<tenant>/$batch`` with ``{"requests": [{"id", "method", "url", "headers", "body"}]}`` (at most
  10): ``{"responses": [{"id", "status", "headers", "body"}]}``, in an order that differs from the request's;
- auth: a Bearer token from :mod:`.issuer` for this tenant, with ``roles`` containing Exchange.ManageAsApp; an
  ``X-AnchorMailbox`` header is required;
- faults (:class:`ExoFaults`): every n-th cmdlet call (a single request or a $batch item) answers 429 with
  ``Retry-After`` or 503; every n-th $batch request 503 as a whole.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from provisioner_lab.api import Argument, Invocation, LabEnum, LabError, LabObject, PipelineResult, Statement
from provisioner_lab.exchange.engine import ExchangeEngine
from provisioner_lab.exchange.errors import COMMAND_NOT_FOUND, NOT_FOUND
from provisioner_lab.exo.issuer import MANAGE_AS_APP, Issuer, TokenError
from provisioner_lab.exo.pki import TlsFiles

SYSTEM_ANCHOR = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"
BATCH_LIMIT = 10
_INVOKE = re.compile(r"^/adminapi/(?:beta|v1\.0)/(?P<tenant>[^/]+)/InvokeCommand$")
_BATCH = re.compile(r"^/adminapi/(?:beta|v1\.0)/(?P<tenant>[^/]+)/\$batch$")
_DISCOVERY = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")


@dataclass
class ExoFaults:
    """Fault injection, off by default. Calls (single InvokeCommand requests and $batch items, pages included)
    are numbered from 1 in arrival order; ``limit`` caps how many faults are injected in all."""

    throttle_every: int = 0  # every n-th call: 429 Too Many Requests with Retry-After
    unavailable_every: int = 0  # every n-th call: 503 Service Unavailable
    batch_unavailable_every: int = 0  # every n-th $batch request: 503 for the whole batch
    retry_after: float = 1.0  # seconds, as the Retry-After header says them
    limit: int | None = None


@dataclass
class Requests:
    """Thread-safe request counters (``snapshot()`` for a copy)."""

    counts: Counter[str] = field(default_factory=Counter)
    request_ids: list[str] = field(default_factory=list)
    anchors: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self.counts[name] += 1

    def add_anchor(self, anchor: str) -> None:
        """One request for the mailbox named by its ``X-AnchorMailbox`` header."""
        with self._lock:
            self.anchors[anchor] += 1

    def add_request_id(self, request_id: str) -> None:
        """A request's ``client-request-id``, in arrival order."""
        with self._lock:
            self.request_ids.append(request_id)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.request_ids.clear()
            self.anchors.clear()


def to_json(value: Any, top: bool = False) -> Any:
    """A lab object as the REST endpoint shows it: top-level objects as property maps, nested ones as text."""
    if isinstance(value, LabObject):
        if top:
            return {name: to_json(item) for name, item in value.properties.items()}
        return value.to_string
    if isinstance(value, LabEnum):
        return value.text
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def _error_code(record: LabError) -> str:
    tail = record.fq_error_id.rsplit("] ", 1)[-1]
    code = tail.split(",", 1)[0]
    if re.fullmatch(r"[0-9A-F]{8}", code):
        return f"Ex{code[-6:]}"
    return f"Ex{uuid.uuid5(uuid.NAMESPACE_OID, record.reason).hex[:6].upper()}"


def error_body(record: LabError, target: str) -> tuple[int, dict[str, Any] | None]:
    if record.exception_type == COMMAND_NOT_FOUND:
        return 403, None  # the app's role has no such cmdlet: an empty 403
    status = 404 if record.exception_type == NOT_FOUND else 400
    message = f"{_error_code(record)}|{record.exception_type}|{' '.join(record.message.split())}"
    return status, {"error": {
        "code": "NotFound" if status == 404 else "BadRequest",
        "message": "Error executing cmdlet",
        "details": [{"code": "Context", "target": target, "message": message}],
        "innererror": {"message": "Error executing cmdlet",
                       "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                       "stacktrace": "", "internalexception": {"message": message, "type": record.exception_type}},
        "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": [],
    }}


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class ExoService:
    """The REST logic, independent of HTTP (the handler below and tests call it)."""

    def __init__(self, engine: ExchangeEngine, issuer: Issuer, faults: ExoFaults | None = None) -> None:
        self.engine, self.issuer = engine, issuer
        self.faults = faults or ExoFaults()
        self.requests = Requests()
        self._calls = 0
        self._batches = 0
        self._injected = 0
        self._pages: dict[str, tuple[list[Any], list[str]]] = {}
        self._lock = threading.Lock()

    def set_faults(self, faults: ExoFaults) -> None:
        with self._lock:
            self.faults, self._calls, self._batches, self._injected = faults, 0, 0, 0

    # ------------------------------------------------------------------ faults
    def _fault(self) -> Answer | None:
        with self._lock:
            self._calls += 1
            number, faults = self._calls, self.faults
            if faults.limit is not None and self._injected >= faults.limit:
                return None
            if faults.throttle_every and number % faults.throttle_every == 0:
                self._injected += 1
                retry = faults.retry_after
                self.requests.add("status_429")
                return Answer(429, {"error": {"code": "TooManyRequests", "message": "Too many requests. Retry "
                                              f"after {retry:g} seconds."}},
                              {"Retry-After": f"{retry:g}"})
            if faults.unavailable_every and number % faults.unavailable_every == 0:
                self._injected += 1
                self.requests.add("status_503")
                return Answer(503, None)
        return None

    def _batch_fault(self) -> Answer | None:
        with self._lock:
            self._batches += 1
            faults = self.faults
            if faults.limit is not None and self._injected >= faults.limit:
                return None
            if faults.batch_unavailable_every and self._batches % faults.batch_unavailable_every == 0:
                self._injected += 1
                self.requests.add("status_503", "batch_503")
                return Answer(503, None)
        return None

    # ------------------------------------------------------------------ auth
    def authorize(self, tenant: str, headers: Mapping[str, str]) -> tuple[Answer | None, str]:
        value = headers.get("Authorization", "")
        claims = self.issuer.verify(value[7:]) if value.startswith("Bearer ") else None
        if claims is None or not self.issuer.tenant_of(tenant) or claims.get("tid") != self.issuer.tenant_id:
            self.requests.add("status_401")
            return Answer(401, None, {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}), ""
        if MANAGE_AS_APP not in (claims.get("roles") or []):
            self.requests.add("status_401")
            return Answer(401, None, {"WWW-Authenticate": 'Bearer error="insufficient_claims"'}), ""
        anchor = headers.get("X-AnchorMailbox", "")
        if not anchor:
            missing = {"error": {"code": "BadRequest", "message": "The X-AnchorMailbox header is required"}}
            return Answer(400, missing), ""
        self.requests.add_anchor(anchor)
        return None, str(claims.get("appid", ""))

    # ------------------------------------------------------------------ InvokeCommand
    def invoke(self, tenant: str, query: str, headers: Mapping[str, str], body: Any, *, item: bool = False) -> Answer:
        denied, app_id = self.authorize(tenant, headers)
        if denied is not None:
            return denied
        self.requests.add("batch_items" if item else "invoke")
        fault = self._fault()
        if fault is not None:
            return fault
        page_size = _page_size(headers.get("Prefer", ""))
        token = parse_qs(query).get("$skiptoken", [None])[0]
        if token is not None:
            self.requests.add("pages")
            with self._lock:
                stored = self._pages.pop(token, None)
            if stored is None:
                return Answer(400, {"error": {"code": "BadRequest", "message": "The skip token is not valid"}})
            values, warnings = stored
            return self._page(tenant, values, warnings, page_size)
        cmdlet_input = body.get("CmdletInput") if isinstance(body, Mapping) else None
        if not isinstance(cmdlet_input, Mapping) or not isinstance(cmdlet_input.get("CmdletName"), str):
            return Answer(400, {"error": {"code": "BadRequest", "message": "CmdletInput.CmdletName is required"}})
        name = cmdlet_input["CmdletName"]
        parameters = cmdlet_input.get("Parameters") or {}
        if not isinstance(parameters, Mapping):
            return Answer(400, {"error": {"code": "BadRequest", "message": "CmdletInput.Parameters must be an object"}})
        app = self.issuer.apps.get(app_id)
        if app is None or not app.exchange_role or (app.cmdlets is not None and name not in app.cmdlets):
            self.requests.add("status_403")
            return Answer(403, None)
        statement = Statement((Invocation(name, tuple(Argument(str(k), v) for k, v in parameters.items())),))
        result: PipelineResult = self.engine.run([statement], [], user=f"app:{app_id}")
        record = result.failure or (result.errors[0] if result.errors else None)
        if record is not None:
            target = "" if record.target_object is None else str(record.target_object)
            status, error = error_body(record, target)
            if error is not None:
                error["error"]["@adminapi.warnings"] = list(result.warnings)
            self.requests.add(f"status_{status}")
            return Answer(status, error)
        values = [to_json(obj, top=True) for obj in result.output]
        return self._page(tenant, values, list(result.warnings), page_size)

    def _page(self, tenant: str, values: list[Any], warnings: list[str], page_size: int) -> Answer:
        body: dict[str, Any] = {
            "@odata.context": f"{self.issuer.base_url}/adminapi/beta/{tenant}/$metadata#Collection"
                              "(Exchange.GenericHashTable)",
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": warnings,
            "value": values[:page_size],
        }
        if len(values) > page_size:
            token = secrets.token_urlsafe(12)
            with self._lock:
                self._pages[token] = (values[page_size:], [])
            body["@odata.nextLink"] = f"{self.issuer.base_url}/adminapi/beta/{tenant}/InvokeCommand?$skiptoken={token}"
        return Answer(200, body)

    # ------------------------------------------------------------------ $batch
    def batch(self, tenant: str, headers: Mapping[str, str], body: Any) -> Answer:
        denied, _ = self.authorize(tenant, headers)
        if denied is not None:
            return denied
        self.requests.add("batch")
        fault = self._batch_fault()
        if fault is not None:
            return fault
        requests_in = body.get("requests") if isinstance(body, Mapping) else None
        if not isinstance(requests_in, list) or not requests_in:
            return Answer(400, {"error": {"code": "BadRequest", "message": "requests is required"}})
        if len(requests_in) > BATCH_LIMIT:
            return Answer(400, {"error": {"code": "BadRequest", "message":
                                          f"A batch may hold at most {BATCH_LIMIT} requests"}})
        responses: list[dict[str, Any]] = []
        for request in requests_in:
            if not isinstance(request, Mapping) or "id" not in request:
                return Answer(400, {"error": {"code": "BadRequest", "message": "every request needs an id"}})
            item_headers = {**headers, **{str(k): str(v) for k, v in (request.get("headers") or {}).items()}}
            parts = urlsplit(str(request.get("url", "")))
            match = _INVOKE.match(parts.path)
            if str(request.get("method", "")).upper() != "POST" or match is None:
                answer = Answer(400, {"error": {"code": "BadRequest", "message": "only POST InvokeCommand"}})
            else:
                answer = self.invoke(match["tenant"], parts.query, item_headers, request.get("body"), item=True)
            responses.append({"id": request["id"], "status": answer.status,
                              "headers": {"Content-Type": "application/json", **answer.headers},
                              "body": answer.body if answer.body is not None else {}})
        responses.reverse()  # the service does not promise request order: clients match by id
        return Answer(200, {"responses": responses})

    # ------------------------------------------------------------------ issuer
    def discovery(self, tenant: str) -> Answer:
        self.requests.add("discovery")
        if not self.issuer.tenant_of(tenant):
            return Answer(400, {"error": "invalid_tenant", "error_description":
                                f"AADSTS90002: Tenant '{tenant}' not found."})
        return Answer(200, self.issuer.discovery(tenant))

    def token(self, tenant: str, form: Mapping[str, str]) -> Answer:
        self.requests.add("token")
        if not self.issuer.tenant_of(tenant):
            return Answer(400, {"error": "invalid_request", "error_description":
                                f"AADSTS90002: Tenant '{tenant}' not found.", "error_codes": [90002]})
        try:
            return Answer(200, self.issuer.token(tenant, form))
        except TokenError as exc:
            self.requests.add("token_refused")
            return Answer(exc.status, exc.body())


def _page_size(prefer: str) -> int:
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    return max(1, min(1000, int(match.group(1)))) if match else 1000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without this, delayed ACKs cost 40 ms each
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, answer: Answer) -> None:
        data = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        request_id = self.headers.get("client-request-id")
        if request_id:
            self.send_header("client-request-id", request_id)
        self.send_header("request-id", str(uuid.uuid4()))
        if data:
            self.send_header("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        service = self.server.service
        service.requests.add("http")
        parts = urlsplit(self.path)
        match = _DISCOVERY.match(parts.path)
        self._send(service.discovery(match["tenant"]) if match else Answer(404, {"error": "not found"}))

    def do_POST(self) -> None:
        service = self.server.service
        service.requests.add("http")
        raw = self._body()
        parts = urlsplit(self.path)
        request_id = self.headers.get("client-request-id")
        if request_id:
            service.requests.add_request_id(request_id)
        if latency := self.server.latency:
            time.sleep(latency)
        if match := _TOKEN.match(parts.path):
            form = {key: values[0] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}
            self._send(service.token(match["tenant"], form))
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(Answer(400, {"error": {"code": "BadRequest", "message": "the body is not JSON"}}))
            return
        headers = {name: value for name, value in self.headers.items()}
        if match := _INVOKE.match(parts.path):
            self._send(service.invoke(match["tenant"], parts.query, headers, body))
        elif match := _BATCH.match(parts.path):
            self._send(service.batch(match["tenant"], headers, body))
        else:
            self._send(Answer(404, {"error": {"code": "NotFound", "message": f"no route {parts.path}"}}))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: ExoService, latency: float) -> None:
        super().__init__(address, _Handler)
        self.service, self.latency = service, latency


class ExoServer:
    """The HTTPS server (REST endpoint and token issuer on one port) in a background thread."""

    def __init__(self, service: ExoService, tls: TlsFiles, *, host: str = "127.0.0.1", port: int = 0,
                 latency_ms: float = 0.0) -> None:
        self.service = service
        self._server = _Server((host, port), service, latency_ms / 1000.0)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert), str(tls.key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="exo-lab", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
