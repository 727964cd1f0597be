"""The Exchange Online REST client: ``InvokeCommand``, paging, ``$batch``, retries and error mapping.

Each cmdlet call is ``POST <exo>/adminapi/beta/<tenant GUID>/InvokeCommand`` with
``{"CmdletInput": {"CmdletName": ..., "Parameters": {...}}}``. Headers, where they matter: ``Authorization``
(Bearer), ``X-AnchorMailbox`` (``APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@<tenant GUID>`` for
app-only), a fresh ``client-request-id`` per request, ``Prefer: odata.maxpagesize=N``.

- Paging: a reply with ``@odata.nextLink`` is continued by POSTing the same body to that link.
- ``$batch``: at most 10 requests per ``POST <exo>/adminapi/beta/<tenant GUID>/$batch``; replies are matched to
  requests by ``id`` (never by position), each item's own status and body decide its result, and an item that is
  missing from the reply or throttled is sent again; one still without an answer at the end is a transient error
  (a write is never reported done from it).
- Retries, bounded in attempts and waiting time: 429 after ``Retry-After``; 502/503/504 and connection errors with
  exponential backoff and jitter (``Retry-After`` when given); an error whose exception type is a transient one
  (``...TransientException``, ``ServerBusyException``) likewise; one token refresh on 401.
- Errors: the reason is in ``error.details[].message`` as ``code|Exception.Type|text`` (or a JSON string there);
  it is mapped by exception type, never by English text; an empty 403 means this app has no such cmdlet (its
  Exchange role is missing or does not include it). Warnings come from ``@adminapi.warnings``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from provisioner.domain.model import ErrorInfo
from provisioner.errors import ProvisionerError
from provisioner.transport.backoff import Backoff
from provisioner.transport.exo.auth import TokenProvider
from provisioner.transport.exo.errors import invalid_result, is_transient_type, map_error, throttled
from provisioner.transport.runner import TransportLost

log = logging.getLogger(__name__)

SYSTEM_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
BATCH_LIMIT = 10
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_PAGES = 10_000  # 10 million objects at 1,000 a page: far beyond any organisation, short of forever


@dataclass(frozen=True)
class Call:
    cmdlet: str
    parameters: Mapping[str, Any]

    def body(self) -> dict[str, Any]:
        return {"CmdletInput": {"CmdletName": self.cmdlet, "Parameters": dict(self.parameters)}}


@dataclass
class Reply:
    """One call's result: output objects (JSON), warnings, and the error (None: the cmdlet succeeded)."""

    values: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: ErrorInfo | None = None
    status: int = 200


DEFAULT_BACKOFF = Backoff(retries=5, max_wait=120.0, base=0.5, cap=30.0)
"""Six tries in all, two minutes of waiting at most, steps from 0.5 s to 30 s (or the server's Retry-After)."""


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not headers:
        return None
    value = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _json(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _warnings(body: Any) -> list[str]:
    found = body.get("@adminapi.warnings") if isinstance(body, Mapping) else None
    if isinstance(found, str):
        return [found]
    return [" ".join(str(text).split()) for text in found] if isinstance(found, list) else []


def _has_values(body: Any) -> bool:
    return isinstance(body, Mapping) and isinstance(body.get("value"), list)


def _status(item: Mapping[str, Any]) -> int:
    """A $batch item's status; 0 (no status) when it is missing or not a number."""
    try:
        return int(item.get("status", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _values(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, Mapping):
        return []
    value = body.get("value")
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


# ---------------------------------------------------------------------------------------------- client
class ExoClient:
    """Calls cmdlets on Exchange Online's REST endpoint for one tenant."""

    def __init__(
        self,
        tokens: TokenProvider,
        http: requests.Session | None = None,
        *,
        batch: bool = True,
        page_size: int = 1000,
        timeout: float = 60.0,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.tokens, self.http = tokens, http or tokens.http
        self.batch, self.page_size, self.timeout = batch, page_size, timeout
        self.backoff = backoff or DEFAULT_BACKOFF
        self.sleep, self.rng = sleep, rng or random.Random()
        self.endpoints = tokens.endpoints
        self.tenant_id = tokens.tenant_id()
        self.counters: Counter[str] = Counter()

    @property
    def anchor(self) -> str:
        return f"APP:{SYSTEM_MAILBOX}@{self.tenant_id}"

    def _headers(self, token: str, *, json_body: bool = True) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "X-AnchorMailbox": self.anchor,
            "client-request-id": str(uuid.uuid4()),
            "Prefer": f"odata.maxpagesize={self.page_size}",
            "Accept": "application/json",
        }
        if json_body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return headers

    @staticmethod
    def _token(get: Callable[[], str]) -> str:
        """A token during a run: any failure to get one (authority unreachable, a reply msal cannot read) loses the
        session, so the engine reopens it (bounded) and no item of the run is left without an outcome."""
        try:
            return get()
        except (ProvisionerError, ValueError, requests.exceptions.RequestException) as exc:
            raise TransportLost(f"no token from the authority during the run: {exc}") from None

    def _post(self, url: str, body: Mapping[str, Any], kind: str) -> requests.Response:
        """One POST with the token; 401 refreshes it once; connection errors are retried (bounded), then the
        session counts as lost. Status-level retries are the caller's (they differ for $batch items)."""
        refreshed = False
        waited = 0.0
        attempt = 0
        while True:
            token = self._token(self.tokens.token)
            self.counters[kind] += 1
            try:
                response = self.http.post(url, data=json.dumps(body), headers=self._headers(token),
                                          timeout=self.timeout)
            except requests.exceptions.RequestException as exc:
                delay = self.backoff.delay(attempt, self.rng)
                if not self.backoff.allows(attempt, waited, delay):
                    raise TransportLost(f"Exchange Online unreachable: {type(exc).__name__}") from None
                attempt, waited = attempt + 1, waited + delay
                self.counters["retries"] += 1
                self.sleep(delay)
                continue
            if response.status_code == 401 and not refreshed:
                refreshed = True
                self.counters["token_refreshes"] += 1
                self._token(self.tokens.refresh)
                continue
            if response.status_code == 401:
                raise TransportLost("Exchange Online refused the token twice (HTTP 401 after a refresh)")
            return response

    # ------------------------------------------------------------------ single calls
    def invoke(self, call: Call) -> Reply:
        """One cmdlet call (every page of its output)."""
        return self._invoke_url(self.endpoints.invoke_url(self.tenant_id), call)

    def _invoke_url(self, url: str, call: Call) -> Reply:
        status, payload, transient = self._answer(url, call, "invoke")
        if transient is not None:
            return Reply(error=transient, status=status)
        return self._pages(self._reply(status, payload, call), payload, call)

    def _answer(self, url: str, call: Call, kind: str) -> tuple[int, Any, ErrorInfo | None]:
        """``(status, payload, error)`` of one call of ``call``'s body to ``url``: an answer worth retrying
        (throttled, unavailable, no result) is sent again after its backoff, bounded; ``error`` is set when it
        stayed so."""
        waited = 0.0
        attempt = 0
        body = call.body()
        while True:
            response = self._post(url, body, kind)
            status, payload = response.status_code, _json(response)
            transient = self._transient(status, payload, call)
            if transient is None:
                return status, payload, None
            delay = self.backoff.delay(attempt, self.rng, retry_after(response.headers))
            if not self.backoff.allows(attempt, waited, delay):
                return status, payload, transient
            attempt, waited = attempt + 1, waited + delay
            self.counters["retries"] += 1
            self.counters[f"http_{status}"] += 1
            log.debug("%s: HTTP %s, retrying in %.1fs", call.cmdlet, status, delay)
            self.sleep(delay)

    def _transient(self, status: int, payload: Any, call: Call) -> ErrorInfo | None:
        """The error to report if this answer stays the same after every retry; None: not worth retrying."""
        if 200 <= status < 300 and call.cmdlet.casefold().startswith("get-") and not _has_values(payload):
            return invalid_result(call.cmdlet, status)  # e.g. a proxy's HTML page: never read as "no entries"
        if status == 429:
            return throttled(call.cmdlet, "HTTP 429 Too Many Requests")
        if status in RETRY_STATUSES:
            return throttled(call.cmdlet, f"HTTP {status}")
        if status >= 400:
            error = map_error(status, payload, call.cmdlet)
            if is_transient_type(error.reason) or is_transient_type(error.fq_error_id):
                return error
        return None

    def _reply(self, status: int, payload: Any, call: Call) -> Reply:
        if status >= 400:
            return Reply(error=map_error(status, payload, call.cmdlet), status=status,
                         warnings=_warnings(payload))
        return Reply(values=_values(payload), warnings=_warnings(payload), status=status)

    def _pages(self, reply: Reply, payload: Any, call: Call) -> Reply:
        """Follow ``@odata.nextLink`` (same body) until the last page; an error on a later page fails the call."""
        link = payload.get("@odata.nextLink") if isinstance(payload, Mapping) and reply.error is None else None
        followed: set[str] = set()
        while isinstance(link, str) and link:
            refusal = self._refuse_link(link, followed)
            if refusal is not None:
                return Reply(error=ErrorInfo(f"{call.cmdlet}: {refusal}", reason="InvalidResult",
                                             category="InvalidResult", fq_error_id=f"NextLink,{call.cmdlet}"),
                             status=reply.status, warnings=reply.warnings)
            followed.add(link)
            self.counters["pages"] += 1
            page = self._invoke_url_once_page(link, call)
            if page.error is not None:
                return Reply(error=page.error, status=page.status, warnings=reply.warnings + page.warnings)
            reply.values.extend(page.values)
            reply.warnings.extend(page.warnings)
            link = page.next_link
        return reply

    def _refuse_link(self, link: str, followed: set[str]) -> str | None:
        """Why ``link`` is not followed (None: follow it). The token goes only to the configured REST endpoint."""
        if link in followed:
            return "the server sent the same @odata.nextLink twice; the output is incomplete"
        if len(followed) >= MAX_PAGES:
            return f"more than {MAX_PAGES} pages; the output is incomplete"
        ours, theirs = urllib.parse.urlsplit(self.endpoints.exo), urllib.parse.urlsplit(link)
        if (theirs.scheme, theirs.netloc.lower()) != (ours.scheme, ours.netloc.lower()):
            return f"@odata.nextLink points to another host ({theirs.netloc or link!r}); not followed with the token"
        return None

    def _invoke_url_once_page(self, url: str, call: Call) -> _Page:
        status, payload, transient = self._answer(url, call, "page")
        if transient is not None:
            return _Page([], [], transient, status, None)
        reply = self._reply(status, payload, call)
        link = payload.get("@odata.nextLink") if isinstance(payload, Mapping) else None
        return _Page(reply.values, reply.warnings, reply.error, status, link if isinstance(link, str) else None)

    # ------------------------------------------------------------------ many calls
    def invoke_many(self, calls: Sequence[Call]) -> list[Reply]:
        """Independent calls, each with its own reply (in the order given); as $batch requests when enabled."""
        if not self.batch or len(calls) < 2:
            return [self.invoke(call) for call in calls]
        replies: list[Reply] = []
        for start in range(0, len(calls), BATCH_LIMIT):
            replies.extend(self._batch(list(calls[start : start + BATCH_LIMIT])))
        return replies

    def _batch(self, calls: list[Call]) -> list[Reply]:
        url = self.endpoints.batch_url(self.tenant_id)
        item_url = self.endpoints.invoke_url(self.tenant_id)
        results: dict[int, Reply] = {}
        last_problem: dict[int, ErrorInfo] = {}
        pending = list(range(len(calls)))
        waited = 0.0
        attempt = 0
        refreshed = False
        while pending:
            request_ids = {f"{uuid.uuid4().hex[:8]}-{index}": index for index in pending}
            body = {"requests": [
                {"id": request_id, "method": "POST", "url": item_url,
                 "headers": {"Content-Type": "application/json", "X-AnchorMailbox": self.anchor},
                 "body": calls[index].body()}
                for request_id, index in request_ids.items()
            ]}
            response = self._post(url, body, "batch")
            payload = _json(response)
            hint: float | None = retry_after(response.headers)
            again: list[int] = []
            unauthorized = False
            if response.status_code >= 400 or not isinstance(payload, Mapping):
                # the whole $batch was refused: throttled or unavailable are retried, anything else fails them all
                status = response.status_code
                for index in pending:
                    transient = self._transient(status, payload, calls[index])
                    if transient is None and status < 400:
                        transient = throttled(calls[index].cmdlet, "the $batch reply had no JSON body")
                    if transient is None:
                        results[index] = self._reply(status, payload, calls[index])
                    else:
                        last_problem[index] = transient
                        again.append(index)
            else:
                answered = payload.get("responses")
                seen: set[int] = set()
                for item in answered if isinstance(answered, list) else []:
                    if not isinstance(item, Mapping):
                        continue
                    index_or_none = request_ids.get(str(item.get("id")))
                    if index_or_none is None or index_or_none in seen:
                        continue  # an id this request did not send (or twice): never guessed at
                    index = index_or_none
                    seen.add(index)
                    status = _status(item)
                    item_body = item.get("body")
                    if isinstance(item_body, str):
                        try:
                            item_body = json.loads(item_body)
                        except ValueError:
                            item_body = None
                    transient = self._transient(status, item_body, calls[index]) if status else \
                        throttled(calls[index].cmdlet, "a $batch item without a status")
                    if transient is not None:
                        last_problem[index] = transient
                        item_hint = retry_after(item.get("headers") if isinstance(item.get("headers"), Mapping)
                                                else None)
                        if item_hint is not None:
                            hint = max(hint or 0.0, item_hint)
                        again.append(index)
                        continue
                    if status == 401:
                        unauthorized = True
                        last_problem[index] = throttled(calls[index].cmdlet, "HTTP 401 inside the $batch")
                        again.append(index)
                        continue
                    reply = self._reply(status, item_body, calls[index])
                    results[index] = self._pages(reply, item_body, calls[index])
                for index in pending:
                    if index not in seen:
                        last_problem[index] = throttled(calls[index].cmdlet, "no answer for it in the $batch reply")
                        again.append(index)
            pending = sorted(set(again))
            if not pending:
                break
            if unauthorized:
                if refreshed:
                    raise TransportLost("Exchange Online refused the token twice (HTTP 401 after a refresh)")
                refreshed = True
                self.counters["token_refreshes"] += 1
                self.tokens.refresh()
            delay = self.backoff.delay(attempt, self.rng, hint)
            if not self.backoff.allows(attempt, waited, delay):
                break
            attempt, waited = attempt + 1, waited + delay
            self.counters["retries"] += 1
            self.sleep(delay)
        for index in pending:
            results[index] = Reply(error=last_problem[index], status=0)
        return [results[index] for index in range(len(calls))]


@dataclass
class _Page:
    values: list[dict[str, Any]]
    warnings: list[str]
    error: ErrorInfo | None
    status: int
    next_link: str | None
