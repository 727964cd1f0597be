"""The long fault-proxy campaign (marker ``campaign``: ``pytest -m campaign``, run by .ci/run after ``make test``):
at least 300 injected faults through the TCP proxy, grant and revoke, Basic and NTLM, every fault kind including a
server that goes silent or answers every Receive with a timeout for good. Same checks on every run as the bounded
part (tests/faults/test_faults.py); the figure is printed for docs/reliability.md."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from provisioner_lab.run import running_lab

from tests.faults.harness import Run, through_proxy
from tests.faults.proxy import KINDS, Schedule
from tests.faults.test_faults import ONE_SHOT, campaign, summary

pytestmark = pytest.mark.campaign


def test_campaign_of_at_least_300_faults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(2026)
    runs: list[Run] = []
    problems: list[str] = []
    with running_lab() as lab:
        # one-shot faults, 8 per run, over the whole run (reads, writes, confirming reads), until 300 were injected
        while sum(len(run.injected) for run in runs) < 300 and len(runs) < 150:
            done, found = campaign(lab, tmp_path, rng, runs=6, faults_per_run=8, last=48, kinds=ONE_SHOT)
            runs += done
            problems += found
        for index in range(12):  # a server that stops answering (or answers every Receive with a timeout) for good
            kind = ("silent", "busy")[index % 2]
            auth = "basic" if kind == "busy" else ("ntlm", "basic")[(index // 2) % 2]
            schedule = Schedule({rng.randint(1, 30): kind, **Schedule.random(rng, 2, 1, 30, ONE_SHOT).faults})
            run = through_proxy(lab, tmp_path, ("grant", "revoke")[index % 2], auth, schedule, deadline=6)
            problems += run.problems(lab)
            # busy answers only Receives: begun after the run's last Receive (at its shell's close) it withholds
            # nothing, and the run may end 0 (its report is still checked against the lab above)
            withheld = run.busy_answers > 0 if kind == "busy" else any(k == "silent" for _, k in run.injected)
            if run.returncode != 4 and withheld:
                problems.append(f"{run.injected}: a server silent for good ended with exit {run.returncode}")
            runs.append(run)
    injected = sum(len(run.injected) for run in runs)
    kinds = {kind for run in runs for _, kind in run.injected}
    with capsys.disabled():
        print(f"\nfault proxy campaign: {summary(runs)}; kinds {sorted(kinds)}")
    assert problems == []
    assert injected >= 300 + 12
    assert kinds == set(KINDS) | {"busy"}
