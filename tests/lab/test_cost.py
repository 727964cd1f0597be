"""The server cost model: what is charged for which work, and that it is spent outside the engine lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from provisioner_lab.api import Argument, Invocation, MetadataQuery, Statement
from provisioner_lab.exchange import CostModel, EngineOptions, ExchangeEngine
from provisioner_lab.run import build_engine, running_lab
from pypsrp.powershell import PowerShell

from .conftest import open_pool

SVC = "svc-codetwo"


def cmd(name: str, **named: Any) -> Invocation:
    return Invocation(name, tuple(Argument(key, value) for key, value in named.items()))


class Sleeps:
    """A fake sleep that records the seconds asked for and whether another thread could take the engine lock."""

    def __init__(self) -> None:
        self.engine: ExchangeEngine | None = None
        self.calls: list[float] = []
        self.lock_free: list[bool] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        assert self.engine is not None
        got: list[bool] = []

        def probe() -> None:
            assert self.engine is not None
            acquired = self.engine.lock.acquire(timeout=1.0)
            got.append(acquired)
            if acquired:
                self.engine.lock.release()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        self.lock_free.append(got == [True])


def engine_with(cost: CostModel | None) -> tuple[ExchangeEngine, Sleeps]:
    sleeps = Sleeps()
    engine = ExchangeEngine.from_seed(options=EngineOptions(cost=cost))
    engine.sleep = sleeps
    sleeps.engine = engine
    return engine, sleeps


def test_defaults_are_exchange_like() -> None:
    model = CostModel.exchange_like()
    assert model == CostModel()
    assert (model.per_pipeline_ms, model.per_invocation_ms, model.per_record_ms, model.per_write_ms) == (
        3.0, 4.0, 0.15, 1.0)
    assert model.per_invocation_ms > 20 * model.per_record_ms  # an invocation costs far more than a record
    assert model.seconds(pipelines=1, invocations=2, records=4000, writes=0) == pytest.approx(0.611)


def test_charge_per_pipeline_invocation_record_and_write() -> None:
    engine, sleeps = engine_with(CostModel(per_pipeline_ms=10, per_invocation_ms=1, per_record_ms=0.1,
                                           per_write_ms=100))
    grant = cmd("Add-MailboxPermission", Identity="alice.wong", User=SVC, AccessRights="FullAccess")
    # two statements: two invocations of one record each, one ACL write (the second grant finds the ACE present)
    engine.run([Statement((grant,)), Statement((grant,))], [], user="lab-admin")
    assert sleeps.calls == [pytest.approx((10 + 2 * 1 + 2 * 0.1 + 100) / 1000)]
    # ids | Get-Mailbox | Get-MailboxPermission -User T: 2 invocations, 3 + 3 records, no write
    ids = ["bob.meyer", "carol.diaz", "nobody.here"]
    statement = Statement((cmd("Get-Mailbox"), cmd("Get-MailboxPermission", User=SVC)))
    result = engine.run([statement], ids, user="lab-admin")
    assert len(result.errors) == 1  # nobody.here; the other two mailboxes go on to Get-MailboxPermission
    assert sleeps.calls[1] == pytest.approx((10 + 2 * 1 + (3 + 2) * 0.1) / 1000)
    snap = engine.counters.snapshot()
    assert (snap["pipelines"], snap["invocations"], snap["records"], snap["writes"]) == (2, 4, 7, 1)
    assert snap["cost_seconds"] == pytest.approx(sum(sleeps.calls))
    assert all(sleeps.lock_free)  # the time is spent without holding the engine lock


def test_command_metadata_is_charged_too() -> None:
    engine, sleeps = engine_with(CostModel(per_pipeline_ms=1, per_invocation_ms=1, per_record_ms=1, per_write_ms=1))
    found = engine.command_metadata(MetadataQuery(("*-MailboxPermission",)), user=None).commands
    assert len(found) == 3
    assert sleeps.calls == [pytest.approx((2 + 5 + 2 * 3 + 3) / 1000)] and all(sleeps.lock_free)
    assert engine.counters.snapshot()["metadata_requests"] == 1


def test_no_cost_model_no_sleep() -> None:
    engine, sleeps = engine_with(None)
    engine.run([Statement((cmd("Get-Mailbox", Identity="alice.wong"),))], [], user=None)
    assert sleeps.calls == [] and engine.counters.cost_seconds == 0.0


def test_parallel_sessions_overlap_in_wall_time() -> None:
    """The one test that really sleeps: 4 sessions of 60 ms each take about 60 ms together, not 240."""
    model = CostModel(per_pipeline_ms=60, per_invocation_ms=0, per_record_ms=0, per_write_ms=0)
    with running_lab(engine=build_engine(cost=model)) as lab:
        pools = [open_pool(lab.server, username=lab.username, password=lab.password) for _ in range(4)]
        try:
            elapsed: list[float] = []

            def one(pool: Any) -> None:
                ps = PowerShell(pool)
                ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", "alice.wong")
                started = time.perf_counter()
                ps.invoke()
                elapsed.append(time.perf_counter() - started)

            threads = [threading.Thread(target=one, args=(pool,)) for pool in pools]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            total = time.perf_counter() - started
        finally:
            for pool in pools:
                pool.close()
    assert len(elapsed) == 4 and min(elapsed) >= 0.06
    assert total < 0.2  # overlapped: serialised it would be >= 0.24
    assert lab.engine.counters.cost_seconds == pytest.approx(0.24)
