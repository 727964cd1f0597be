"""The bounded part of the fault-proxy campaign (default suite): the real CLI through a TCP proxy that injects
faults in front of the lab, Basic and NTLM (message encryption), grant and revoke. Every run: no lie in the report,
no traceback, a report written, an exit code from the README's table, no hang. ``test_campaign.py`` is the long
version (marker ``campaign``)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from provisioner_lab.run import Lab, running_lab

from tests.faults.harness import MAILBOXES, Run, run_cli, through_proxy
from tests.faults.proxy import KINDS, FaultProxy, Schedule

ONE_SHOT = tuple(kind for kind in KINDS if kind != "silent")


def campaign(lab: Lab, tmp: Path, rng: random.Random, runs: int, faults_per_run: int, last: int = 40,
             kinds: tuple[str, ...] = ONE_SHOT) -> tuple[list[Run], list[str]]:
    """``runs`` runs alternating grant and revoke, Basic and NTLM, each with ``faults_per_run`` faults at random
    request numbers up to ``last`` (a clean grant of 8 mailboxes in batches of 3 sends about 25 requests)."""
    done, problems = [], []
    for index in range(runs):
        action = ("grant", "grant", "revoke")[index % 3]
        auth = ("ntlm", "basic")[(index // 3) % 2]
        schedule = Schedule.random(rng, faults_per_run, 1, last, kinds)
        run = through_proxy(lab, tmp, action, auth, schedule)
        problems += run.problems(lab)  # against the lab's state right after this run
        done.append(run)
    return done, problems


def summary(runs: list[Run]) -> str:
    faults = sum(len(run.injected) for run in runs)
    codes: dict[int | None, int] = {}
    for run in runs:
        codes[run.returncode] = codes.get(run.returncode, 0) + 1
    return f"{faults} injected faults in {len(runs)} runs; exit codes {dict(sorted(codes.items(), key=str))}"


def test_one_shot_faults_mid_run_never_lie_crash_or_hang(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_lab() as lab:
        runs, problems = campaign(lab, tmp_path, random.Random(17), runs=4, faults_per_run=5, last=30)
    with capsys.disabled():
        print(f"\nfault proxy (bounded part): {summary(runs)}")
    assert problems == []
    assert sum(len(run.injected) for run in runs) >= 12
    assert len({kind for run in runs for _, kind in run.injected}) >= 3
    assert any(run.returncode == 0 for run in runs)  # the faults are survivable: some runs complete cleanly


def test_a_server_that_goes_silent_is_exit_4_within_the_deadline(tmp_path: Path) -> None:
    with running_lab() as lab:
        # silent from the 12th request: the session is open and reading when the server stops answering
        run = through_proxy(lab, tmp_path, "grant", "ntlm", Schedule({12: "silent"}), deadline=5)
        assert run.problems(lab) == []
    assert run.returncode == 4, run.stderr
    assert run.seconds < 5 + 6  # the deadline, plus the interpreter's start and the report
    assert run.report is not None and set(run.report.values()) <= {"unknown", "granted"}
    assert "unknown" in run.report.values()


def test_a_server_answering_every_receive_with_a_timeout_is_not_polled_without_end(tmp_path: Path) -> None:
    # pypsrp re-polls an operation-timeout fault at once, for ever: 39,268 Receive requests in 70 s were measured
    # before this bound. The proxy answers every Receive at once from the 15th request (mid-read).
    with running_lab() as lab, FaultProxy(("127.0.0.1", lab.port), Schedule({15: "busy"})) as proxy:
        run = run_cli(lab, proxy, tmp_path, "grant", "basic", deadline=8)
        assert run.problems(lab) == []
        answered = proxy.busy_answers
    assert run.returncode == 4, run.stderr
    assert answered <= 30, answered  # paced with a growing backoff: tens of requests, not thousands
    assert run.seconds < 8 + 6


def test_a_reset_at_session_open_is_retried(tmp_path: Path) -> None:
    with running_lab() as lab:
        run = through_proxy(lab, tmp_path, "grant", "basic", Schedule({1: "reset-before"}), mailboxes=MAILBOXES[:2])
        assert run.problems(lab) == []
    assert run.returncode == 0, run.stderr
    assert run.report is not None and set(run.report.values()) == {"granted"}
