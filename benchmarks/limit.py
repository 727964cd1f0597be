"""The server-only limit of a run: what it would take if the client cost nothing.

It is the cost model's seconds for the work the run made the server do, plus one round trip of injected latency per
WS-Management request: ``limit = cost seconds + requests x latency``. The work is counted on a lab in this process
(the same generated org as ``provisioner lab --mailboxes N``, the cost model's sleeps skipped), with the real CLI as
a child process doing the same two runs as in the timed benchmark (the first grant, then the no-op). The counts do
not depend on the latency, so one counting pass per profile gives the limit at every latency.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from methods import RUNS, command, isolated_env, run_child
from provisioner_lab.exchange import CostModel, EngineOptions, ExchangeEngine
from provisioner_lab.profiles import get_profile
from provisioner_lab.run import running_lab


@dataclass(frozen=True)
class Work:
    """What one run made the server do: the cost model's seconds and the WS-Management requests."""

    cost_seconds: float
    requests: int

    def limit(self, latency_ms: int) -> float:
        return self.cost_seconds + self.requests * latency_ms / 1000.0


def server_work(profile: str, mailboxes: int, users_file: Path, automapping: bool,
                method: str = "provisioner") -> dict[str, Work]:
    """Per run (first grant, no-op): the work ``method`` made a fresh lab of ``mailboxes`` do."""
    options = EngineOptions(profile=get_profile(profile), cost=CostModel.exchange_like())
    engine = ExchangeEngine.generated(mailboxes, options)
    engine.sleep = lambda _seconds: None  # count the modelled time, do not spend it
    found: dict[str, Work] = {}
    with running_lab(engine=engine) as lab, tempfile.TemporaryDirectory() as folder:
        env = isolated_env(folder)
        for run in RUNS:
            cost, requests = engine.counters.cost_seconds, lab.server.counters["total"]
            child = run_child(command(method, run, lab.port, users_file, automapping), None, env, Path(folder))
            if child.returncode not in (0, 1):
                raise SystemExit(f"the counting run of {method} ({run}) failed: {child.stderr.strip()[-1000:]}")
            found[run] = Work(engine.counters.cost_seconds - cost, lab.server.counters["total"] - requests)
    return found
