"""The engine's session, retry and deadline paths, in-process over the lab's Exchange engine (tests/fake_runner.py):
a reply lost after an applied write is settled by a read and never sent twice; a session lost for good is data
(outcomes returned, ``Engine.lost`` set, exit 4 from the run), never an exception; the run's deadline stops new
batches; the MAPI-profile names read failing after the writes is a note; the bounds of a wait."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from provisioner_lab.exchange.engine import ExchangeEngine

from provisioner.domain.model import Action, Identity, Outcome, Result, Trustee
from provisioner.engine.apply import Engine
from provisioner.errors import ExitCode, InputError
from provisioner.inputs.config import Connection, RunSettings, load_config
from provisioner.powershell.steps import StepOptions
from provisioner.runs.context import Hooks
from provisioner.runs.jobs import run
from provisioner.runs.mapi_profile import ProfileList
from provisioner.runs.result import Job, RunResult
from provisioner.transport.guard import Budget, Deadline, DeadlineReached, Stalled
from provisioner.transport.runner import FixedSession, Pipeline, Raw, TransportLost
from tests.fake_runner import LabRunner

SERVICE = Trustee(Identity("svc-codetwo@contoso.com"), automapping=False, role="service-account")
ADMIN = Trustee(Identity("sync.admin@contoso.com"), automapping=False, role="admin-user")
FAST = RunSettings(retry_attempts=3, retry_base_seconds=0.001, retry_max_seconds=0.1)


def mailboxes(count: int) -> tuple[Identity, ...]:
    return tuple(Identity(f"user{i:06d}@contoso.com") for i in range(1, count + 1))


class Flaky(LabRunner):
    """The lab engine behind a transport that breaks as told, counting write pipelines (Add-MailboxPermission):
    ``lose_reply`` runs those writes and then loses their reply (applied, the client never hears of it);
    ``dead_after`` breaks every pipeline once that many writes were answered (``dead_for``: only pipelines of that
    cmdlet)."""

    def __init__(self, engine: ExchangeEngine, *, lose_reply: set[int] | None = None, dead_after: int | None = None,
                 dead_for: str | None = None) -> None:
        super().__init__(engine)
        self.lose_reply, self.dead_after, self.dead_for = lose_reply or set(), dead_after, dead_for
        self.writes = 0

    def run(self, pipeline: Pipeline) -> Raw:
        cmdlets = {str(command.cmdlet) for chain in pipeline.statements for command in chain}
        if self.dead_after is not None and self.writes >= self.dead_after and \
                (self.dead_for is None or self.dead_for in cmdlets):
            raise TransportLost("ConnectionResetError: reset by peer")
        raw = super().run(pipeline)
        if "Add-MailboxPermission" in cmdlets:
            self.writes += 1
            if self.writes in self.lose_reply:
                raise TransportLost("ReadTimeout: the reply never came")
        return raw


def adds(runner: LabRunner) -> Counter[str]:
    """How often Add-MailboxPermission was sent per mailbox (piped input or -Identity)."""
    sent: Counter[str] = Counter()
    for pipeline in runner.pipelines:
        for chain in pipeline.statements:
            for command in chain:
                if str(command.cmdlet) == "Add-MailboxPermission":
                    identity = command.parameter("Identity")
                    for name in (pipeline.input or ()) if identity is None else (str(identity.value),):
                        sent[name] += 1
    return sent


def grant(runner: LabRunner, targets: tuple[Identity, ...], connection: Connection | None = None,
          session: FixedSession | None = None, hooks: Hooks | None = None) -> RunResult:
    job = Job(Action.GRANT, targets, (SERVICE,), connection or Connection(batch_size=5))
    return run(job, session=session or FixedSession(runner), settings=FAST, hooks=hooks or Hooks())


def test_a_reply_lost_after_an_applied_write_is_settled_by_a_read_and_never_sent_twice() -> None:
    engine = ExchangeEngine.generated(20)
    targets = mailboxes(10)
    runner = Flaky(engine, lose_reply={1})  # the first write batch's reply is lost after the server applied it
    result = grant(runner, targets)
    assert [o.result for o in result.outcomes] == [Result.GRANTED] * 10
    assert all(engine.directory.has_full_access(m.value, SERVICE.identity.value) for m in targets)
    assert max(adds(runner).values()) == 1  # the lost write was read back, not sent again
    assert result.exit_code is ExitCode.OK


def test_a_session_lost_for_good_returns_every_outcome_and_exits_4() -> None:
    engine = ExchangeEngine.generated(20)
    targets = mailboxes(15)
    runner = Flaky(engine, dead_after=1)  # one write batch answered; then nothing answers
    result = grant(runner, targets)
    outcomes = result.outcomes
    assert len(outcomes) == 15
    counts = Counter(o.result for o in outcomes)
    assert counts[Result.GRANTED] == 5 and counts[Result.UNKNOWN] == 10
    for outcome in outcomes:  # no lie: granted means present, unknown is whatever the lab has
        if outcome.result is Result.GRANTED:
            assert engine.directory.has_full_access(outcome.mailbox.value, SERVICE.identity.value)
    assert result.lost is not None
    assert result.exit_code is ExitCode.CONNECTION
    assert any("session lost for good" in note for note in result.notes)


def test_at_the_deadline_no_new_batch_starts_and_the_rest_is_unknown() -> None:
    engine = ExchangeEngine.generated(20)
    now = [0.0]
    deadline = Deadline(100, clock=lambda: now[0])
    runner = LabRunner(engine)
    original = runner.run

    def clocked(pipeline: Pipeline) -> Raw:
        raw = original(pipeline)
        if any(str(c.cmdlet) == "Add-MailboxPermission" for chain in pipeline.statements for c in chain):
            now[0] += 45  # each write batch takes 45 of the 100 seconds: after two, only the settle reserve is left
        return raw

    runner.run = clocked  # type: ignore[method-assign]
    result = grant(runner, mailboxes(15), session=FixedSession(runner, deadline))
    counts = Counter(o.result for o in result.outcomes)
    assert counts == {Result.GRANTED: 10, Result.UNKNOWN: 5}
    assert sum(adds(runner).values()) == 10  # no batch started within the deadline's settle reserve
    assert "deadline" in (result.lost or "")
    assert result.exit_code is ExitCode.CONNECTION


def test_the_profile_names_read_failing_after_the_writes_is_a_note_not_a_lost_report() -> None:
    # the names come from the run's own mailbox lookups when it made them; here it did not, and the session is gone
    runner = Flaky(ExchangeEngine.generated(20), dead_after=0)  # nothing answers any more
    engine = Engine(FixedSession(runner), StepOptions(), FAST, sleep=lambda _: None)
    outcomes = [Outcome(mailbox, ADMIN, Result.GRANTED) for mailbox in mailboxes(4)]
    profile = ProfileList()
    profile(outcomes, engine)
    assert any("MAPI-profile names could not be read" in note for note in engine.notes)
    assert [entry.change for entry in profile.entries] == ["add"] * 4
    assert all(entry.note.startswith("names not read") for entry in profile.entries)


def test_a_deadline_is_checked_and_closes_batches_before_its_end() -> None:
    now = [0.0]
    deadline = Deadline(100, clock=lambda: now[0])
    deadline.check()
    assert not deadline.batches_closed
    now[0] = 91.0  # the last 10 % (at most 60 s) is kept to settle the batch in flight
    assert deadline.batches_closed and not deadline.passed
    now[0] = 100.0
    with pytest.raises(DeadlineReached):
        deadline.check()
    assert not Deadline(None).batches_closed and Deadline(None).remaining() == float("inf")


@given(st.lists(st.booleans(), min_size=1, max_size=300))
def test_a_budget_paces_polls_without_progress_and_gives_up(progress: list[bool]) -> None:
    """Whatever the mix of polls with and without progress: pauses only after 3 idle polls in a row, growing and
    capped; the budget gives up once no progress lasted its seconds; never sleeps past the deadline."""
    now = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    budget = Budget("a pipeline", seconds=30, clock=lambda: now[0], sleep=sleep)
    deadline = Deadline(10_000, clock=lambda: now[0])
    idle = 0
    for made_progress in progress:
        before = len(pauses)
        try:
            budget.before_request(deadline)
        except Stalled:
            assert now[0] - budget.last_progress > 30
            return
        idle += 1
        slept = pauses[before:]
        assert bool(slept) == (idle > 3)
        assert all(0 < pause <= 2.0 for pause in slept)
        now[0] += 0.01  # the poll itself answers at once
        if made_progress:
            budget.progressed()
            idle = 0
    assert now[0] <= 10_000


@pytest.mark.parametrize("value", ["0", "-5", str(7 * 24 * 3600 + 1), '"6h"'])
def test_a_deadline_out_of_range_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    path = tmp_path / "provisioner.toml"
    path.write_text(f"[connection]\nrun_deadline_seconds = {value}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"connection\.run_deadline_seconds"):
        load_config(path)


@pytest.mark.parametrize("value", ["0", "604801", "soon"])
def test_a_deadline_option_out_of_range_is_exit_2_before_anything_is_sent(tmp_path: Path, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "provisioner", "grant", "--deadline", value, "-m", "alice.wong", "--service-account",
         "svc@contoso.com", "--server", "127.0.0.1", "--port", "9", "--auth", "basic", "--insecure-lab",
         "--username", "u"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PROVISIONER_PASSWORD": "x", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 2, done.stderr
    assert "--deadline" in done.stderr and "Traceback" not in done.stderr


def test_what_breaks_in_a_dependency_is_a_transport_failure_and_our_own_bugs_are_not() -> None:
    import xml.etree.ElementTree as ET

    import requests
    import spnego.exceptions
    from pypsrp.exceptions import WinRMTransportError

    from provisioner.transport.guard import is_transport_failure

    for exc in (spnego.exceptions.BadMICError(), requests.exceptions.ChunkedEncodingError(), ET.ParseError(),
                ConnectionResetError(), WinRMTransportError("http", 500, ""), Stalled("x"), DeadlineReached("x")):
        assert is_transport_failure(exc), exc
    try:
        ET.fromstring("<unclosed")
    except ET.ParseError as parsed:
        assert is_transport_failure(parsed)
    try:
        {}["key"]  # a KeyError raised in provisioner's own code is a bug to show, not a lost session
    except KeyError as ours:
        assert not is_transport_failure(ours)
