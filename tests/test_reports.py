"""Reports that cannot mislead (issue 18, parts 1 and 8): one summary behind every output, one vocabulary of states.

An audit with missing access is never "in order" anywhere; the exit code, the JSON report, the CSV, the HTML
headline, the metrics and the stderr summary line agree with each other and with the lab's state; tables and the
HTML carry a short reason; every state the code can emit is documented in docs/reports.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from provisioner_lab.exchange.engine import ExchangeEngine
from provisioner_lab.run import Lab, running_lab

from provisioner.domain.model import (
    ATTENTION_RESULTS,
    ORDER,
    Action,
    ErrorInfo,
    Identity,
    ItemState,
    Outcome,
    Plan,
    PlanItem,
    Result,
    Trustee,
)
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.domain.wording import counted
from provisioner.errors import ExitCode
from provisioner.inputs.config import Connection
from provisioner.output import metrics, report, summary
from provisioner.output.html import render_html
from provisioner.runs.jobs import run
from provisioner.runs.mapi_profile import ProfileList
from provisioner.runs.result import Job, ProfileEntry, RunResult
from provisioner.transport.runner import FixedSession
from tests.fake_runner import LabRunner

ROOT = Path(__file__).parent.parent
SERVICE = "svc-codetwo@contoso.com"
TRUSTEE = Trustee(Identity(SERVICE), role="service-account")
STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOT_FOUND = ErrorInfo("The operation couldn't be performed because object 'x' couldn't be found on 'dc01'.",
                      reason="ManagementObjectNotFoundException", target="x")
UNREADABLE = ErrorInfo("The server is busy.", reason="ServerBusyException", category="ResourceBusy")


# ------------------------------------------------------------------------------------------------ helpers


def audit_result(states: list[tuple[ItemState, ErrorInfo | None]]) -> RunResult:
    """An audit's RunResult from its plan items, the outcomes as the run makes them."""
    items = tuple(PlanItem(Identity(f"user{index:04d}@contoso.com"), TRUSTEE, state, str(error or ""), error)
                  for index, (state, error) in enumerate(states))
    plan = Plan(Action.AUDIT, items, (TRUSTEE,), observed=True)
    job = Job(Action.AUDIT, tuple(item.mailbox for item in items), (TRUSTEE,), Connection(server="exch01"))
    outcomes = [unchanged_outcome(item, Action.AUDIT) for item in items]
    return RunResult(job, plan, outcomes, STARTED, STARTED + timedelta(seconds=2))


def headline_of(page: str) -> str:
    match = re.search(r'<p class="verdict [a-z]+">(.*?)</p>', page)
    assert match is not None
    return match.group(1).replace("&#39;", "'")


def gauges(text: str) -> tuple[dict[str, int], int, int]:
    """(items per result, attention items, exit code) out of a metrics file."""
    items = {m.group(1): int(m.group(2))
             for m in re.finditer(r'^provisioner_last_run_items\{job="[^"]*",result="([^"]+)"\} (\d+)$', text, re.M)}
    attention = re.search(r"^provisioner_last_run_attention_items\{[^}]*\} (\d+)$", text, re.M)
    code = re.search(r"^provisioner_last_run_exit_code\{[^}]*\} (\d+)$", text, re.M)
    assert attention is not None and code is not None
    return items, int(attention.group(1)), int(code.group(1))


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {state: count for state, count in counts.items() if count}


# ------------------------------------------------------------------------------------- the summary model


def test_the_audit_html_says_missing_access_needs_attention() -> None:
    """Regression: `audit --html` exited 3 while the page said "All 2 items are in order" and "Problem items (0)"."""
    result = audit_result([(ItemState.ALREADY_PRESENT, None), (ItemState.TO_ADD, None)])
    assert result.exit_code is ExitCode.DRIFT
    page = render_html(result, now=result.finished)
    assert headline_of(page) == "1 of 2 items needs attention (1 missing)."
    assert "in order" not in page
    attention = page[page.index("Needs attention (1 item)"):page.index("All items (2)")]
    assert "user0001@contoso.com" in attention and "user0000@contoso.com" not in attention
    assert '<p class="verdict problems">' in page


def test_audit_exit_code_drift_wins_over_failed_and_unknown() -> None:
    """The precedence docs/reports.md and `audit --help` state: 3 when drift is proven, else 1 when some pair could
    not be read, else 0."""
    present, missing = (ItemState.ALREADY_PRESENT, None), (ItemState.TO_ADD, None)
    failed, unknown = (ItemState.UNKNOWN, NOT_FOUND), (ItemState.UNKNOWN, UNREADABLE)
    blocked = (ItemState.BLOCKED, None)
    assert audit_result([present, missing, failed, unknown]).final_exit_code is ExitCode.DRIFT
    assert audit_result([present, blocked, unknown]).final_exit_code is ExitCode.DRIFT
    assert audit_result([present, failed, unknown]).final_exit_code is ExitCode.ITEMS_FAILED
    assert audit_result([present, present]).final_exit_code is ExitCode.OK
    text = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    assert "**Drift wins.**" in text
    from provisioner.cli.audit import AUDIT_HELP

    assert "Exit 3 (drift): at least one pair is missing or blocked, even when others failed or are unknown" \
        in AUDIT_HELP


AUDIT_STATES = st.lists(
    st.sampled_from([(ItemState.ALREADY_PRESENT, None), (ItemState.TO_ADD, None), (ItemState.BLOCKED, None),
                     (ItemState.UNKNOWN, NOT_FOUND), (ItemState.UNKNOWN, UNREADABLE)]),
    max_size=12,
)


@settings(max_examples=120, deadline=None)
@given(states=AUDIT_STATES)
def test_every_output_of_an_audit_tells_the_same_story(states: list[tuple[ItemState, ErrorInfo | None]]) -> None:
    result = audit_result(states)
    tally = Counter(outcome.result.value for outcome in result.outcomes)
    attention = sum(count for state, count in tally.items() if Result(state) in ATTENTION_RESULTS)
    code = int(result.final_exit_code)

    # the exit code: drift proven (missing or blocked) wins; then failed/unknown; non-zero iff attention is needed
    drift = tally["missing"] + tally["blocked"]
    assert code == (3 if drift else 1 if tally["failed"] + tally["unknown"] else 0)
    assert (code != 0) == (attention > 0)

    document = json.loads(report.as_json(result))["summary"]
    assert document["results"] == dict(tally) and document["items"] == len(states)
    assert document["attention"] == attention and document["exit_code"] == code
    assert Counter(row["result"] for row in csv.DictReader(io.StringIO(report.as_csv(result)))) == tally
    items, attention_gauge, code_gauge = gauges(metrics.of_run("audit", result))
    assert nonzero(items) == dict(tally) and attention_gauge == attention and code_gauge == code
    page = render_html(result, now=result.finished)
    assert headline_of(page) == document["headline"]
    assert f"Needs attention ({counted(attention, 'item')})" in page
    line = report.summary_line(result)
    assert line.startswith(f"audit: {counted(len(states), 'item')}") and line.endswith(f"exit {code}")
    for state, count in tally.items():
        assert f"{count} {state}" in line

    headline = document["headline"]
    if attention:
        verb = "needs" if attention == 1 else "need"
        assert headline.startswith(f"{attention} of {counted(len(states), 'item')} {verb} attention (")
        assert "in order" not in headline
    elif states:
        assert "in order" in headline and "attention" not in headline
    # the items that need attention come first in the table
    rows = [line.split()[2] for line in report.as_table(result).splitlines()[1:]]
    assert rows == sorted(rows, key=lambda state: Result(state) not in ATTENTION_RESULTS)


@settings(max_examples=80, deadline=None)
@given(results=st.lists(st.sampled_from(list(Result)), max_size=10), dry_run=st.booleans())
def test_headline_and_counts_add_up_for_any_run(results: list[Result], dry_run: bool) -> None:
    outcomes = [Outcome(Identity(f"m{index}"), TRUSTEE, state) for index, state in enumerate(results)]
    job = Job(Action.GRANT, tuple(outcome.mailbox for outcome in outcomes), (TRUSTEE,), Connection(),
              dry_run=dry_run)
    result = RunResult(job, Plan(Action.GRANT, (), (TRUSTEE,), True), outcomes, STARTED, STARTED)
    model = summary.Summary.of(result)
    assert model.total == len(results) == sum(model.counts.values())
    assert list(model.counts) == [state for state in ORDER if state in set(results)]
    assert model.attention == sum(1 for state in results if state in ATTENTION_RESULTS)
    assert model.headline.endswith(".") and model.headline.count(".") == 1
    assert " 1 items" not in model.headline and " 1 items" not in model.line(0.0)


# ---------------------------------------------------------------------------------- end to end, on the lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab() as running:
        yield running


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120, stdin=subprocess.DEVNULL)


def lab_state(lab: Lab, mailbox: str, trustee: str) -> str:
    """What the lab's organisation says an audit of (mailbox, trustee) must report."""
    with lab.engine.lock:
        if not lab.engine.directory.lookup(mailbox):
            return "failed"
        return "present" if lab.engine.directory.has_full_access(mailbox, trustee, include_inherited=True) \
            else "missing"


def test_an_audit_with_missing_failed_and_present_pairs_agrees_everywhere(lab: Lab, tmp_path: Path) -> None:
    mailboxes = ("bob.meyer", "ivan.petrov", "nobody.here")
    expected = {mailbox: lab_state(lab, mailbox, SERVICE) for mailbox in mailboxes}
    assert sorted(expected.values()) == ["failed", "missing", "present"]  # the lab's seed gives one of each
    json_path, html, prom = tmp_path / "audit.json", tmp_path / "audit.html", tmp_path / "audit.prom"
    targets = [arg for mailbox in mailboxes for arg in ("--mailbox", mailbox)]
    audit = cli(lab, "audit", *targets, "--service-account", SERVICE, "--format", "csv", "--report", str(json_path),
                "--html", str(html), "--metrics-file", str(prom))
    assert audit.returncode == 3, audit.stderr  # drift wins over the failed pair

    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert {item["mailbox"]: item["result"] for item in document["items"]} == expected
    rows = list(csv.DictReader(io.StringIO(audit.stdout)))
    assert {row["mailbox"]: row["result"] for row in rows} == expected
    tally = dict(Counter(expected.values()))
    assert document["summary"]["results"] == tally
    assert document["summary"]["attention_results"] == {"failed": 1, "missing": 1}
    assert document["summary"]["exit_code"] == 3
    headline = "2 of 3 items need attention (1 failed, 1 missing)."
    assert document["summary"]["headline"] == headline
    assert headline_of(html.read_text(encoding="utf-8")) == headline
    items, attention, code = gauges(prom.read_text(encoding="utf-8"))
    assert nonzero(items) == tally and attention == 2 and code == 3
    assert "audit: 3 items (1 failed, 1 missing, 1 present)" in audit.stderr and "2 need attention; exit 3" \
        in audit.stderr

    # the whole error in JSON and CSV, a short reason in the table (a row no longer wraps to seven lines)
    failed = next(item for item in document["items"] if item["result"] == "failed")
    assert failed["error"]["reason"] == "ManagementObjectNotFoundException"
    assert "RequestId=" in failed["error"]["fq_error_id"]
    assert "RequestId=" in next(row for row in rows if row["result"] == "failed")["fq_error_id"]
    table = cli(lab, "audit", *targets, "--service-account", SERVICE, "--format", "table")
    assert table.returncode == 3, table.stderr
    lines = table.stdout.splitlines()
    assert [line.split()[2] for line in lines[1:]] == ["missing", "failed", "present"]  # attention first
    failed_line = next(line for line in lines if " failed " in line)
    assert failed_line.split("failed", 1)[1].strip() == "'nobody.here' not found [ManagementObjectNotFoundException]"
    assert "RequestId" not in table.stdout


def test_the_dry_run_script_calls_a_missing_mailbox_failed_as_stderr_does(lab: Lab) -> None:
    """Regression: the script's comment said `unknown` where stderr said `failed`."""
    result = cli(lab, "grant", "--dry-run", "--mailbox", "bob.meyer", "--mailbox", "nobody.here",
                 "--service-account", SERVICE)
    assert result.returncode == 1, result.stderr
    assert f"failed: nobody.here / {SERVICE}" in result.stderr
    assert f"#   'failed': mailbox 'nobody.here', trustee '{SERVICE}'" in result.stdout
    assert "'unknown'" not in result.stdout
    # the header counts in the summary line's words
    assert "#   'failed': 1\n" in result.stdout and "#   'planned': 1\n" in result.stdout
    assert "grant (dry run): 2 items (1 failed, 1 planned)" in result.stderr


def test_an_audit_calls_present_pairs_present_and_a_grant_already_present() -> None:
    engine = ExchangeEngine.generated(3)
    mailboxes = (Identity("user000001@contoso.com"),)
    session = FixedSession(LabRunner(engine, "2.3"))
    first = run(Job(Action.GRANT, mailboxes, (TRUSTEE,), Connection()), session=session)
    assert [o.result for o in first.outcomes] == [Result.GRANTED]
    again = run(Job(Action.GRANT, mailboxes, (TRUSTEE,), Connection()), session=session)
    assert [o.result for o in again.outcomes] == [Result.ALREADY_PRESENT]
    audit = run(Job(Action.AUDIT, mailboxes, (TRUSTEE,), Connection()), session=session)
    assert [o.result for o in audit.outcomes] == [Result.PRESENT]


# ----------------------------------------------------------------------------------------- short reasons


@settings(max_examples=200, deadline=None)
@given(message=st.text(max_size=400), reason=st.text(max_size=80), detail=st.text(max_size=200),
       target=st.text(max_size=30))
def test_a_short_reason_is_one_short_line_that_keeps_the_exception_type(
    message: str, reason: str, detail: str, target: str
) -> None:
    error = ErrorInfo(message, reason=reason, target=target)
    text = report.short_reason(Outcome(Identity("m"), TRUSTEE, Result.FAILED, detail, error))
    assert len(text) <= report.SHORT_REASON
    assert text == " ".join(text.split())  # one line, no stray whitespace
    short = " ".join(reason.split())
    if short and len(short) + 3 <= report.SHORT_REASON // 2:
        assert text.endswith(f"[{short}]")


def test_a_short_reason_without_an_error_is_the_detail() -> None:
    assert report.short_reason(Outcome(Identity("m"), TRUSTEE, Result.PRESENT, "explicit")) == "explicit"
    long = "word " * 60
    cut = report.short_reason(Outcome(Identity("m"), TRUSTEE, Result.BLOCKED, long))
    assert cut.endswith("…") and len(cut) <= report.SHORT_REASON and "\n" not in cut


# ------------------------------------------------------------------------------------------- vocabulary


def documented_states() -> set[str]:
    text = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    section = text[text.index("## States"):]
    return set(re.findall(r"^\| `([a-z-]+)` \|", section, re.M))


def test_every_state_the_code_can_emit_is_documented_and_nothing_else() -> None:
    states = {result.value for result in Result} | {state.value for state in ItemState}
    assert documented_states() == states
    assert set(ORDER) == set(Result)  # every state has its place in the one order


def test_counted_nouns_agree_with_their_count() -> None:
    assert counted(1, "mailbox") == "1 mailbox"
    assert counted(2, "mailbox") == "2 mailboxes"
    assert counted(0, "item") == "0 items"
    assert counted(3000, "item") == "3,000 items"
    assert counted(1, "entry") == "1 entry" and counted(2, "entry") == "2 entries"


def test_the_mapi_profile_line_counts_one_mailbox_as_one_mailbox() -> None:
    """Regression: "add 1 mailboxes"."""
    admin = Trustee(Identity("sync.admin@contoso.com"), role="admin-user")
    one = ProfileList(entries=[ProfileEntry("add", Identity("a"), admin)])
    assert one.summary() == "MAPI profile of the admin-console user: add 1 mailbox"
    two = ProfileList(entries=[ProfileEntry("add", Identity("a"), admin), ProfileEntry("remove", Identity("b"), admin),
                               ProfileEntry("remove", Identity("c"), admin)])
    assert two.summary() == "MAPI profile of the admin-console user: add 1 mailbox, remove 2 mailboxes"


def test_a_not_found_short_reason_names_the_object_the_message_names() -> None:
    """A trustee typo reads as the trustee not found; an error whose target the message does not name keeps the
    message's own words (it could be about another object than its target)."""
    user = ErrorInfo('User or group "svc-typo@contoso.com" wasn\'t found. Please make sure you\'ve typed it correctly.',
                     reason="ManagementObjectNotFoundException", target="svc-typo@contoso.com")
    outcome = Outcome(Identity("alice"), TRUSTEE, Result.FAILED, str(user), user)
    assert report.short_reason(outcome) == "'svc-typo@contoso.com' not found [ManagementObjectNotFoundException]"
    other = ErrorInfo('User or group "svc-typo" wasn\'t found. Please make sure you\'ve typed it correctly.',
                      reason="ManagementObjectNotFoundException", target="alice")
    assert report.short_reason(Outcome(Identity("alice"), TRUSTEE, Result.FAILED, "", other)) == (
        'User or group "svc-typo" wasn\'t found. [ManagementObjectNotFoundException]')


def test_each_item_names_where_its_target_was_given(lab: Lab, tmp_path: Path) -> None:
    """A users file's targets keep their file and physical line to the report (JSON and CSV), so the row to fix in
    users.csv is named; a --mailbox target says so."""
    users = tmp_path / "users.csv"
    users.write_text("# synced mailboxes\nPrimarySmtpAddress,Department\nbob.meyer@contoso.com,Sales\n\n"
                     "nobody.here@contoso.com,Sales\n", encoding="utf-8")
    json_path = tmp_path / "audit.json"
    audit = cli(lab, "audit", "--users-file", str(users), "--mailbox", "ivan.petrov", "--service-account", SERVICE,
                "--format", "csv", "--report", str(json_path))
    assert audit.returncode == 3, audit.stderr
    expected = {"bob.meyer@contoso.com": f"{users}:3", "nobody.here@contoso.com": f"{users}:5",
                "ivan.petrov": "--mailbox"}
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert {item["mailbox"]: item["source"] for item in document["items"]} == expected
    assert {row["mailbox"]: row["source"] for row in csv.DictReader(io.StringIO(audit.stdout))} == expected
