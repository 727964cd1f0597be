"""Cost of pipelines against the lab endpoint with the real pypsrp client (opt-in: ``LAB_BENCH=1``).

Run: ``LAB_BENCH=1 /tmp/venv/bin/python -m pytest tests/lab/test_protocol_bench.py -q -s``
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from provisioner_lab.api import LabObject, PipelineResult, Statement
from provisioner_lab.server import LabServer
from pypsrp.powershell import PowerShell

from .conftest import PASSWORD, USER, FakeEngine, open_pool

pytestmark = pytest.mark.skipif(os.environ.get("LAB_BENCH") != "1", reason="benchmark: set LAB_BENCH=1")

N = 200


def _one_object(statements: list[Statement], pipeline_input: list[Any]) -> PipelineResult:
    # roughly what Add-MailboxPermission returns: one small ACE-like object per statement
    return PipelineResult(
        output=[
            LabObject(("Lab.Ace",), {"User": "svc", "AccessRights": ["FullAccess"], "Deny": False}, "ace")
            for _ in statements
        ]
    )


@pytest.fixture(scope="module")
def bench_lab() -> Any:
    engine = FakeEngine(handlers={"Add-MailboxPermission": _one_object})
    with LabServer(engine, users={USER: PASSWORD}) as server:
        yield server


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_bench(bench_lab: LabServer, auth: str) -> None:
    start = time.perf_counter()
    pool = open_pool(bench_lab, auth=auth)
    opened = time.perf_counter() - start

    bench_lab.counters.reset()
    start = time.perf_counter()
    for i in range(N):
        ps = PowerShell(pool)
        ps.add_cmdlet("Add-MailboxPermission").add_parameter("Identity", f"mbx{i}").add_parameter("User", "svc")
        ps.add_parameter("AccessRights", "FullAccess").add_parameter("Confirm", False)
        assert len(ps.invoke()) == 1
    single = time.perf_counter() - start
    requests_single = bench_lab.counters["total"]

    bench_lab.counters.reset()
    start = time.perf_counter()
    ps = PowerShell(pool)
    for i in range(N):
        ps.add_cmdlet("Add-MailboxPermission").add_parameter("Identity", f"mbx{i}").add_parameter("User", "svc")
        ps.add_parameter("AccessRights", "FullAccess").add_parameter("Confirm", False).add_statement()
    assert len(ps.invoke()) == N
    batched = time.perf_counter() - start
    requests_batched = bench_lab.counters["total"]
    pool.close()

    print(
        f"\n[{auth}] open pool {opened * 1000:.1f} ms; {N} pipelines x 1 cmdlet: {single:.2f} s "
        f"({single / N * 1000:.2f} ms each, {requests_single} WSMan requests); "
        f"1 pipeline x {N} statements: {batched:.2f} s ({requests_batched} requests)"
    )
