"""kill -9 of every changing command mid-batch, then a rerun: converged, journaled exactly once, and undoable.

Each case kills the real CLI (a subprocess) with SIGKILL from inside the lab the moment the k-th permission write
reaches it, so the kill lands in the middle of a piped batch: the server goes on applying that batch, the client
never hears back, and the journal holds intents without outcomes. The rerun (the same command) must then:

- converge: the lab holds exactly the desired state, and no pair was written twice (the lab counts every write);
- journal exactly what was made: after reconciliation, the set of journaled changes (both runs, reconciled lines
  included) is the set of pairs the lab changed, each once, and nothing is left in doubt;
- report what it did: the rerun's report names as changed exactly the pairs its own run journaled;
- undo exactly: ``journal undo`` of the rerun and of the killed run restores the state before them.

The default suite runs one kill per command; ``-m campaign`` runs every command at several k (>= 30 kills).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from provisioner_lab.exchange.directory import FULL_ACCESS, PermissionEntry
from provisioner_lab.run import Lab, running_lab

from provisioner.engine.journal import read, summaries

ROOT = Path(__file__).parent.parent
SERVICE, ADMIN = "svc-codetwo@contoso.com", "sync.admin@contoso.com"
TRUSTEES = (SERVICE, ADMIN)
N = 24  # mailboxes; batch size 5 -> 5 batches per trustee
MAILBOXES = [f"user{i:06d}@contoso.com" for i in range(1, N + 1)]
Pair = tuple[str, str]


@dataclass
class Setup:
    lab: Lab
    tmp: Path
    journal: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "PROVISIONER_PASSWORD": self.lab.password, "PYTHONIOENCODING": "utf-8"}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "provisioner", *args, *self.lab.cli_args("ntlm")]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, cwd=self.tmp, env=self.env(),
                              timeout=120, stdin=subprocess.DEVNULL)

    def killed(self, k: int, *args: str) -> None:
        """Run the command and SIGKILL it the moment the k-th write (counted from now) reaches the lab."""
        start = self.lab.engine.counters.writes
        fired = threading.Event()
        process = subprocess.Popen(self.argv(*args), cwd=self.tmp, env=self.env(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def hook(count: int) -> None:
            if count - start == k and not fired.is_set():
                fired.set()
                os.kill(process.pid, signal.SIGKILL)

        self.lab.engine.on_write = hook
        try:
            code = process.wait(timeout=120)
        finally:
            self.lab.engine.on_write = None
        assert fired.is_set(), f"the run ended (exit {code}) before its write {k}: pick a smaller k"
        assert code == -signal.SIGKILL

    def state(self) -> set[Pair]:
        directory = self.lab.engine.directory
        with self.lab.engine.lock:
            return {(m, t) for m in MAILBOXES for t in TRUSTEES if directory.has_full_access(m, t)}

    def writes(self) -> int:
        return int(self.lab.engine.counters.writes)

    def journaled(self, run_ids: set[str]) -> list[tuple[str, str, str]]:
        """(mailbox, trustee, outcome) of every change line of these runs, reconciled ones included."""
        return [(r["mailbox"].casefold(), r["trustee"].casefold(), r["outcome"]) for r in read(self.journal)
                if r["run_id"] in run_ids and r["kind"] in ("change", "reconciled")
                and r.get("outcome") in ("granted", "removed")]

    def runs(self) -> list[str]:
        return [run.run_id for run in summaries(self.journal)]


@pytest.fixture
def setup(tmp_path: Path, private_state_dir: Path) -> Iterator[Setup]:
    with running_lab(mailboxes=N + 6) as lab:
        (tmp_path / "users.txt").write_text("\n".join(MAILBOXES) + "\n", encoding="utf-8")
        (tmp_path / "provisioner.toml").write_text(lab.config_toml() + f'''batch_size = 5
[trustees]
admin_user = "{ADMIN}"
service_account = "{SERVICE}"
[targets]
users_file = "users.txt"
[reapply]
verify = false
retry_base_seconds = 0.01
''', encoding="utf-8")
        yield Setup(lab, tmp_path, private_state_dir / "provisioner" / "journal.jsonl")


ALL = {(m, t) for m in MAILBOXES for t in TRUSTEES}
HALF = {(m, t) for m in MAILBOXES[: N // 2] for t in TRUSTEES}


def grant_directly(setup: Setup, pairs: set[Pair]) -> None:
    """Access someone else gave (not journaled): the starting state of a case."""
    directory = setup.lab.engine.directory
    with setup.lab.engine.lock:
        for mailbox, trustee in sorted(pairs):
            directory.add_entry(directory.mailbox(mailbox),
                                PermissionEntry(directory.principal(trustee).sid, FULL_ACCESS, inheritance="All"))


@dataclass(frozen=True)
class Case:
    """A command, the state before it, and the state it converges to."""

    name: str
    before: frozenset[Pair]
    after: frozenset[Pair]
    command: Callable[[Setup], list[str]]
    prepare: Callable[[Setup], None] = lambda setup: None


def _plan(setup: Setup) -> None:
    out = setup.tmp / "grant.plan"
    made = setup.cli("plan", "grant", "--out", str(out))
    assert made.returncode == 0, made.stderr


def _granted_run(setup: Setup) -> None:
    done = setup.cli("grant")
    assert done.returncode == 0, done.stderr


def _undo_of_first(setup: Setup) -> list[str]:
    return ["journal", "undo", setup.runs()[0], "--yes"]


CASES = {
    "grant": Case("grant", frozenset(HALF - {(MAILBOXES[0], SERVICE)}), frozenset(ALL), lambda s: ["grant"]),
    "revoke": Case("revoke", frozenset(ALL), frozenset(), lambda s: ["revoke", "--yes"]),
    "reapply": Case("reapply", frozenset(), frozenset(ALL), lambda s: ["reapply"]),
    "apply": Case("apply", frozenset(), frozenset(ALL), lambda s: ["apply", str(s.tmp / "grant.plan")], _plan),
    "undo": Case("undo", frozenset(), frozenset(), _undo_of_first, _granted_run),
}


def run_case(setup: Setup, case: Case, k: int) -> None:
    grant_directly(setup, set(case.before))
    case.prepare(setup)
    start_state, start_writes = setup.state(), setup.writes()
    runs_before = set(setup.runs())
    args = case.command(setup)

    setup.killed(k, *args)
    rerun = setup.cli(*args, "--report", str(setup.tmp / "rerun.json"))
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr

    # converged, and every pair written once
    assert setup.state() == set(case.after)
    changed = start_state ^ setup.state()
    assert setup.writes() - start_writes == len(changed), "a pair was written twice (or a write was lost)"

    # the journal holds exactly what was made, each once, nothing left in doubt
    new_runs = set(setup.runs()) - runs_before
    assert len(new_runs) == 2, new_runs
    journaled = setup.journaled(new_runs)
    assert len(journaled) == len(set(journaled)) == len(changed)
    assert {(m, t) for m, t, _ in journaled} == {(m.casefold(), t.casefold()) for m, t in changed}
    assert all(run.in_doubt == 0 for run in summaries(setup.journal))

    # the rerun's report names as changed exactly what its own run journaled
    report = json.loads((setup.tmp / "rerun.json").read_text())
    reported = {(i["mailbox"].casefold(), i["trustee"].casefold()) for i in report["items"]
                if i["result"] in ("granted", "removed")}
    assert reported == {(m, t) for m, t, _ in setup.journaled({report["run_id"]})}

    # undo of the rerun, then of the killed run, restores the state before them exactly
    killed_run = (new_runs - {report["run_id"]}).pop()
    for run_id in (report["run_id"], killed_run):
        undone = setup.cli("journal", "undo", run_id, "--yes")
        assert undone.returncode in (0,), undone.stderr
    assert setup.state() == start_state


@pytest.mark.parametrize("name", list(CASES))
def test_killed_mid_batch_then_rerun_converges_exactly(setup: Setup, name: str) -> None:
    run_case(setup, CASES[name], k=7)


@pytest.mark.campaign
@pytest.mark.parametrize("k", [1, 3, 5, 6, 11, 14])
@pytest.mark.parametrize("name", list(CASES))
def test_kill_campaign(setup: Setup, name: str, k: int) -> None:
    run_case(setup, CASES[name], k)
