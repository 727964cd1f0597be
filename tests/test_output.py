"""Output people expect: --format table|json|csv on every reporting command, --html, rich tables and progress bars.

The CLI runs in-process (typer's CliRunner: stdout and stderr are not terminals) against the lab endpoint; the rich
paths are reached by handing a console made with ``force_terminal=True`` through the output module's seam.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from provisioner_lab.exchange.engine import ExchangeEngine
from provisioner_lab.run import Lab, running_lab
from typer.testing import CliRunner

from provisioner.cli import app
from provisioner.domain import text
from provisioner.domain.model import (
    PROBLEM_RESULTS,
    Action,
    ErrorInfo,
    Identity,
    Outcome,
    Plan,
    Result,
    Trustee,
    identity_problem,
)
from provisioner.inputs.config import Connection
from provisioner.output import emit as output
from provisioner.output import terminal
from provisioner.output.html import render_html
from provisioner.output.report import as_table, short_reason
from provisioner.runs.context import Hooks
from provisioner.runs.jobs import run
from provisioner.runs.result import Job, RunResult
from provisioner.transport.runner import FixedSession
from tests.fake_runner import LabRunner

ROOT = Path(__file__).parent.parent
SERVICE = "svc-codetwo@contoso.com"
PROBLEMS = {result.value for result in PROBLEM_RESULTS}
TARGETS = ("bob.meyer", "ivan.petrov", "judy.nakamura", "nobody.here")


def invoke(*args: str, password: str = "x") -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"PROVISIONER_PASSWORD": password, "NO_COLOR": "1"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab() as running:
        yield running


def lab_config(lab: Lab, tmp_path: Path) -> Path:
    path = tmp_path / "provisioner.toml"
    path.write_text(
        lab.config_toml() + f'[trustees]\nservice_account = "{SERVICE}"\n'
        f'[reapply]\njournal = "{tmp_path / "journal.jsonl"}"\nverify_delay_seconds = 0\n',
        encoding="utf-8",
    )
    return path


def targets(*mailboxes: str) -> list[str]:
    return [arg for mailbox in mailboxes for arg in ("-m", mailbox)]


def data_lines(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()[1:]]


def test_every_reporting_command_formats_its_items_on_the_lab(lab: Lab, tmp_path: Path) -> None:
    conf = ["--config", str(lab_config(lab, tmp_path))]
    password = lab.password
    html = tmp_path / "grant.html"

    # grant --format json: the report document on stdout; problem lines are in it, not repeated on stderr
    code, out, err = invoke("grant", *conf, *targets(*TARGETS), "--format", "json", "--html", str(html),
                            password=password)
    assert code == 1, err
    document = json.loads(out)
    results = {item["mailbox"]: item["result"] for item in document["items"]}
    assert results == {"bob.meyer": "granted", "ivan.petrov": "already-present", "judy.nakamura": "blocked",
                       "nobody.here": "failed"}
    assert document["summary"]["results"] == {"granted": 1, "already-present": 1, "blocked": 1, "failed": 1}
    assert lab.engine.directory.has_full_access("bob.meyer", SERVICE)
    assert "grant: 4 items" in err and "blocked: judy.nakamura" not in err
    assert oct(html.stat().st_mode & 0o777) == "0o600"
    page = html.read_text(encoding="utf-8")
    problems, everything = page.index("Needs attention (2 items)"), page.index("All items (4)")
    assert problems < page.index("judy.nakamura") < page.index("nobody.here") < everything
    assert page.index("bob.meyer") > everything
    run_id = document["run_id"]
    assert run_id

    # audit --format csv: one row per item, same outcomes
    code, out, err = invoke("audit", *conf, *targets(*TARGETS), "--format", "csv", password=password)
    assert code == 3, err  # drift: blocked
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(TARGETS)
    assert {row["mailbox"]: row["result"] for row in rows} == {**results, "bob.meyer": "present",
                                                               "ivan.petrov": "present"}

    # audit --format table (not a terminal): plain aligned text, problem items first
    code, out, err = invoke("audit", *conf, *targets(*TARGETS), password=password)
    assert code == 3, err
    assert out.splitlines()[0].split() == ["MAILBOX", "TRUSTEE", "RESULT", "DETAIL"]
    assert [line[2] for line in data_lines(out)[:2]] == ["blocked", "failed"]
    assert [line[2] for line in data_lines(out)[2:]] == ["present", "present"]

    # reapply --format csv
    code, out, err = invoke("reapply", *conf, *targets("bob.meyer", "alice.wong"), "--format", "csv",
                            password=password)
    assert code == 0, err
    assert {row["mailbox"]: row["result"] for row in csv.DictReader(io.StringIO(out))} == {
        "bob.meyer": "already-present", "alice.wong": "granted"}

    # journal undo --format json: the grant's one change reversed
    code, out, err = invoke("journal", "undo", run_id, *conf, "--yes", "--format", "json", password=password)
    assert code == 0, err
    undone = json.loads(out)
    assert [(item["mailbox"], item["result"]) for item in undone["items"]] == [("bob.meyer", "removed")]
    assert not lab.engine.directory.has_full_access("bob.meyer", SERVICE)

    # revoke --format table
    code, out, err = invoke("revoke", *conf, "--yes", *targets("alice.wong"), "--format", "table", password=password)
    assert code == 0, err
    assert data_lines(out) == [["alice.wong", SERVICE, "removed"]]

    # check --format json: the findings as a document
    code, out, err = invoke("check", *conf, "--format", "json", password=password)
    assert code == 0, err
    findings = json.loads(out)
    assert findings["action"] == "check" and findings["exit_code"] == 0
    assert {entry["status"] for entry in findings["findings"]} <= {"ok", "info"}
    assert any("Add-MailboxPermission" in entry["text"] for entry in findings["findings"])


def test_format_beside_a_dry_run_script_on_stdout_is_refused(tmp_path: Path) -> None:
    for args in (["grant", "--offline", "--dry-run", "-m", "a", "--trustee", "t"],
                 ["revoke", "--dry-run", "-m", "a", "--trustee", "t"],
                 ["reapply", "--dry-run", "-m", "a", "--trustee", "t"],
                 ["journal", "undo", "some-run", "--dry-run"]):
        code, out, err = invoke(*args, "--format", "json")
        assert code == 2, (args, err)
        assert "--dry-run writes its script to stdout" in err and "--script" in err
        assert out == ""
    script = tmp_path / "grant.ps1"
    code, out, err = invoke("grant", "--offline", "--dry-run", "-m", "a", "--trustee", "t", "--format", "json",
                            "--script", str(script))
    assert code == 0, err
    assert json.loads(out)["items"][0]["result"] == "planned"
    assert "Add-MailboxPermission -Identity 'a'" in script.read_text(encoding="utf-8-sig")


@pytest.mark.parametrize(
    "command", [["grant"], ["revoke"], ["audit"], ["reapply"], ["journal", "undo", "r"], ["check"]]
)
def test_an_unknown_format_is_a_usage_error(command: list[str]) -> None:
    code, out, err = invoke(*command, "--format", "xml", "--server", "127.0.0.1")
    assert code == 2
    assert "--format must be one of table, json, csv, not 'xml'" in err
    assert out == ""


def lab_result(*mailboxes: str, action: Action = Action.GRANT) -> RunResult:
    engine = ExchangeEngine.generated(6)
    trustees = (Trustee(Identity(SERVICE), role="service-account"),)
    job = Job(action, tuple(Identity(m) for m in mailboxes), trustees, Connection(server="exch01.contoso.com"))
    return run(job, session=FixedSession(LabRunner(engine, "2.3")))


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colours(text: str) -> set[int]:
    codes = {int(code) for params in SGR.findall(text) for code in params.split(";") if code}
    return {code for code in codes if 30 <= code <= 49 or 90 <= code <= 107}


def test_rich_table_on_a_terminal_lists_problems_first_in_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    result = lab_result("user000001@contoso.com", "[bold]nobody[/bold]", "user000002@contoso.com")
    buffer = io.StringIO()
    output.present(result, "table", console=terminal.console(buffer, force_terminal=True, width=160))
    text = buffer.getvalue()
    plain = SGR.sub("", text)
    assert "┃" in plain and "grant: 3 items" in plain
    assert "[bold]nobody[/bold]" in plain  # a name's markup is shown, never interpreted
    assert plain.index("failed") < plain.index("user000001@contoso.com") < plain.index("user000002@contoso.com")
    assert colours(text)  # red for the failed item, green for the grants

    monkeypatch.setenv("NO_COLOR", "1")
    quiet = io.StringIO()
    output.present(result, "table", console=terminal.console(quiet, force_terminal=True, width=160))
    assert not colours(quiet.getvalue())
    assert SGR.sub("", quiet.getvalue()) == plain

    monkeypatch.setattr(output, "RICH_ROWS", 2)  # a large run: the plain table even on a terminal
    large = io.StringIO()
    output.present(result, "table", out=large, console=terminal.console(large, force_terminal=True))
    assert large.getvalue() == as_table(result)


def test_plain_table_and_html_list_problem_items_first() -> None:
    result = lab_result("user000001@contoso.com", "nobody1", "user000002@contoso.com", "nobody2")
    rows = [line.split()[:3] for line in as_table(result).splitlines()[1:]]
    assert [row[2] for row in rows] == ["failed", "failed", "granted", "granted"]
    assert [row[0] for row in rows] == ["nobody1", "nobody2", "user000001@contoso.com", "user000002@contoso.com"]
    page = render_html(result)
    problems = page[page.index("Needs attention (2 items)"):page.index("All items (4)")]
    assert "nobody1" in problems and "nobody2" in problems and "user000001" not in problems
    assert "failed" in page[page.index("Summary"):page.index("Needs attention")]


def test_rich_progress_bars_tick_to_completion_and_stop_before_the_summary() -> None:
    engine = ExchangeEngine.generated(30)
    mailboxes = tuple(Identity(f"user{i:06d}@contoso.com") for i in range(1, 26))
    job = Job(Action.GRANT, mailboxes, (Trustee(Identity(SERVICE)),), Connection(batch_size=7))
    buffer = io.StringIO()
    live_between: list[bool] = []  # where a confirmation prompt would be asked: no bar may be redrawing
    with terminal.ProgressBars(terminal.console(buffer, force_terminal=True, width=120)) as bars:
        hooks = Hooks(planned=lambda plan, engine: live_between.append(bars.display.live.is_started))
        result = run(job, session=FixedSession(LabRunner(engine, "2.3")), progress=bars.factory, hooks=hooks)
    assert {outcome.result.value for outcome in result.outcomes} == {"granted"} and len(result.outcomes) == 25
    assert live_between == [False]
    assert not bars.display.live.is_started  # stopped: the summary lines that follow print on their own
    text = SGR.sub("", buffer.getvalue())
    assert "25/25" in text and "items/s" in text and "ETA" in text
    assert "reading" in text and "applying" in text
    with output.progress(io.StringIO()) as factory:
        assert factory is None  # not a terminal: stderr stays quiet
    with output.progress(console=terminal.console(io.StringIO(), force_terminal=True)) as factory:
        assert factory is not None
        tick = factory("reading", 2)
        tick(2)


def test_a_non_terminal_run_never_imports_rich(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from provisioner.cli import app\n"
        f"args = ['grant', '--offline', '--dry-run', '-m', 'a', '--trustee', 't', '--format', 'table', "
        f"'--script', {str(tmp_path / 's.ps1')!r}, '--html', {str(tmp_path / 'r.html')!r}]\n"
        "result = CliRunner().invoke(app, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(name for name in sys.modules if name == 'rich' or name.startswith('rich.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help_offers_shell_completion() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    assert "--install-completion" in out and "--show-completion" in out


HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr", "th", "td", "ul", "li",
        "footer"}
HOSTILE = st.sampled_from(list("<>&\"'`=/ \u202e\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\ufeff"
                               "\u2028\u2029\x1b\x00\t\r\n"))
TEXT = st.text(st.one_of(HOSTILE, st.characters()), min_size=1, max_size=40)
# Identities refuse control and format characters (model.identity_problem): those reach a report through server
# text (details, error messages, notes), which TEXT covers.
NAMES = st.text(st.one_of(st.sampled_from(list("<>&\"'`=/ ")), st.characters(blacklist_categories=tuple(sorted(
    {"Cc", "Cf", "Cs", "Zl", "Zp"})))), min_size=1, max_size=40).filter(lambda name: identity_problem(name) is None)


class _Page(HTMLParser):
    """Every tag seen, the list items, and the table rows as lists of cell texts (entities resolved)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.rows: list[list[str]] = []
        self.items: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th", "li"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "li") and self._cell is not None:
            (self.items if tag == "li" else self.rows[-1]).append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def hostile_result(name: str, detail: str) -> RunResult:
    trustee = Trustee(Identity(SERVICE), role="service-account")
    mailbox = Identity(name)
    outcomes = [
        Outcome(mailbox, trustee, Result.FAILED, detail, ErrorInfo(detail, reason=detail)),
        Outcome(Identity("user000001@contoso.com"), trustee, Result.GRANTED),
    ]
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = Job(Action.GRANT, (mailbox,), (trustee,), Connection(server="exch01.contoso.com"))
    return RunResult(job, Plan(Action.GRANT, (), (trustee,), True), outcomes, when, when, notes=[detail])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAMES, detail=TEXT)
def test_html_shows_hostile_text_escaped_and_visible(name: str, detail: str) -> None:
    result = hostile_result(name, detail)
    page = render_html(result, now=result.finished)
    assert not [char for char in page if char != "\n" and unicodedata.category(char) in HIDDEN]
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.tags <= TAGS  # no markup of the input's became a tag
    mailbox = result.outcomes[0].mailbox.value
    failed = [row for row in parser.rows if len(row) == 6 and row[4] == "failed"]
    assert len(failed) == 2  # once among the problem items, once among all items
    for row in failed:
        assert row[1] == text.marked(mailbox) and row[2] == SERVICE
        assert row[5] == text.marked(short_reason(result.outcomes[0]))  # escaped, shown, never interpreted
    assert parser.items == [text.marked(detail)]  # the run's note


def test_visible_names_every_hidden_character() -> None:
    assert text.marked("plain@contoso.com") == "plain@contoso.com"
    assert text.marked("abc\u202edef") == "abc<U+202E>def"
    assert text.marked("a\u2066b\u200fc\x1b[31md\ud800") == "a<U+2066>b<U+200F>c<U+001B>[31md<U+D800>"
    assert text.marked("Ünïcødé – 名前") == "Ünïcødé – 名前"
