"""Fixtures for the lab protocol tests: a scriptable fake engine and a shared lab server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from provisioner_lab.api import PipelineResult, Statement
from provisioner_lab.server import FaultOptions, LabServer
from pypsrp.powershell import RunspacePool
from pypsrp.wsman import WSMan

USER = "svc-sync"
PASSWORD = "Pa$$w0rd:with'quotes\"and-ünïcode"
OTHER_USER = "CONTOSO\\ops"
OTHER_PASSWORD = "0ps-Secret!"


@dataclass
class Call:
    statements: list[Statement]
    pipeline_input: list[Any]
    user: str | None


Handler = Callable[[list[Statement], list[Any]], PipelineResult]


@dataclass
class FakeEngine:
    """Records every call; answers with the handler registered for the first cmdlet name (or an empty result)."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, statements: list[Statement], pipeline_input: list[Any], *, user: str | None) -> PipelineResult:
        with self.lock:
            self.calls.append(Call(statements, pipeline_input, user))
        name = statements[0].commands[0].name if statements and statements[0].commands else ""
        handler = self.handlers.get(name)
        return handler(statements, pipeline_input) if handler else PipelineResult()

    @property
    def last(self) -> Call:
        return self.calls[-1]


@pytest.fixture(scope="module")
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture(scope="module")
def lab(engine: FakeEngine) -> Iterator[LabServer]:
    server = LabServer(engine, users={USER: PASSWORD, OTHER_USER: OTHER_PASSWORD}, capture_wire=True)
    with server:
        yield server


@pytest.fixture(autouse=True)
def _clean_lab(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "lab" in request.fixturenames:
        server = request.getfixturevalue("lab")
        if isinstance(server, LabServer):
            server.set_faults(FaultOptions())


def connect(
    lab: LabServer,
    *,
    auth: str = "basic",
    username: str = USER,
    password: str = PASSWORD,
    path: str | None = None,
    **kwargs: Any,
) -> WSMan:
    encryption = kwargs.pop("encryption", "never" if auth == "basic" else "auto")
    return WSMan(
        "127.0.0.1",
        port=lab.port,
        path=(path if path is not None else lab.path.lstrip("/")),
        ssl=False,
        auth=auth,
        username=username,
        password=password,
        encryption=encryption,
        operation_timeout=kwargs.pop("operation_timeout", 5),
        read_timeout=kwargs.pop("read_timeout", 10),
        connection_timeout=kwargs.pop("connection_timeout", 5),
        **kwargs,
    )


def open_pool(lab: LabServer, **kwargs: Any) -> RunspacePool:
    configuration_name = kwargs.pop("configuration_name", "Microsoft.Exchange")
    pool = RunspacePool(connect(lab, **kwargs), configuration_name=configuration_name)
    pool.open()
    return pool
