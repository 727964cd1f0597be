"""Record WinRM/PSRP exchanges with the lab and replay them with ``responses`` (no server at all).

Recording talks to the lab with Basic auth and no message encryption, so bodies are plain SOAP; the UUIDs (WSMan
message ids, the pool's and pipelines' ids) are made deterministic so that a replay sends byte-identical requests.
Replay is strict and in order: each request must equal the recorded one (so a change in what the executors send
shows up as a failing test), and the recorded response is returned.

Re-record the committed cassettes after an intended change with ``python -m tests.wire_replay``.
"""

from __future__ import annotations

import base64
import json
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pypsrp.wsman
import pytest
import requests
import responses

import provisioner.transport.psrp.client

CASSETTES = Path(__file__).parent / "data" / "cassettes"


@contextmanager
def deterministic_uuids() -> Iterator[None]:
    counter = iter(range(1, 1 << 30))
    shim = types.SimpleNamespace(UUID=uuid.UUID, uuid4=lambda: uuid.UUID(int=next(counter) * 0x1000000000001))
    modules = (pypsrp.wsman, provisioner.transport.psrp.client)
    saved = [module.uuid for module in modules]
    for module in modules:
        module.uuid = shim  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.uuid = original  # type: ignore[attr-defined]


@contextmanager
def recording(exchanges: list[dict[str, Any]]) -> Iterator[None]:
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = original(self, request, **kwargs)
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        exchanges.append({
            "request": base64.b64encode(body).decode(),
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type", ""),
            "response": base64.b64encode(response.content).decode(),
        })
        return response

    requests.Session.send = send  # type: ignore[method-assign]
    try:
        with deterministic_uuids():
            yield
    finally:
        requests.Session.send = original  # type: ignore[method-assign]


@contextmanager
def replaying(exchanges: list[dict[str, Any]], url: str) -> Iterator[list[bytes]]:
    pending = list(exchanges)
    sent: list[bytes] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        sent.append(body)
        if not pending:
            pytest.fail(f"request {len(sent)} was not recorded")
        expected = pending.pop(0)
        if base64.b64decode(expected["request"]) != body:
            pytest.fail(f"request {len(sent)} differs from the recording; re-record if the change is intended")
        headers = {"Content-Type": expected["content_type"]} if expected["content_type"] else {}
        return expected["status"], headers, base64.b64decode(expected["response"])

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock, deterministic_uuids():
        mock.add_callback(responses.POST, url, callback=answer)
        yield sent
    if pending:
        pytest.fail(f"{len(pending)} recorded requests were never sent")


def save(name: str, url: str, exchanges: list[dict[str, Any]]) -> None:
    CASSETTES.mkdir(parents=True, exist_ok=True)
    (CASSETTES / f"{name}.json").write_text(json.dumps({"url": url, "exchanges": exchanges}, indent=1) + "\n")


def load(name: str) -> tuple[str, list[dict[str, Any]]]:
    document = json.loads((CASSETTES / f"{name}.json").read_text())
    return document["url"], document["exchanges"]


SCENARIOS: dict[str, Callable[..., Any]] = {}


def main() -> None:
    from tests.test_replay import record_all

    record_all()


if __name__ == "__main__":
    main()
