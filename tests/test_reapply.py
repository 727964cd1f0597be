"""The scheduled re-apply job end to end: the real CLI against the lab, outcomes checked in the lab's state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from provisioner_lab.exchange.engine import EngineOptions
from provisioner_lab.run import Lab, build_engine, running_lab
from provisioner_lab.server import FaultOptions

from provisioner.engine.journal import changes_of, in_doubt, read
from provisioner.runs.lock import exclusive

ROOT = Path(__file__).parent.parent
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
SALES = ["alice.wong@contoso.com", "chris.taylor@contoso.com"]  # OU Sales + group Sales Team, minus bob (excluded)


def write_config(lab: Lab, tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "provisioner.toml"
    config.write_text(
        lab.config_toml()
        + f'''
[trustees]
admin_user = "{ADMIN}"
service_account = "{SERVICE}"
[targets]
mailboxes = ["heidi.schmidt"]
exclude = ["bob.meyer@contoso.com"]
[[targets.selector]]
organizational_unit = "contoso.com/Sales"
[[targets.selector]]
group = "Sales Team"
[reapply]
journal = "journal.jsonl"
report = "report.json"
metrics_file = "metrics.prom"
retry_base_seconds = 0.05
verify_delay_seconds = 0.2
'''
        + extra,
        encoding="utf-8",
    )
    return config


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=180, stdin=subprocess.DEVNULL)


def has(lab: Lab, mailbox: str, trustee: str) -> bool:
    return lab.engine.directory.has_full_access(mailbox, trustee)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab() as running:
        yield running


def test_first_run_grants_second_writes_nothing_new_mailbox_next_run(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    first = cli(lab, "reapply", "--config", str(config))
    assert first.returncode == 0, first.stderr
    for mailbox in [*SALES, "heidi.schmidt"]:
        assert has(lab, mailbox, ADMIN) and has(lab, mailbox, SERVICE)
    assert not has(lab, "bob.meyer", SERVICE)  # excluded
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["results"] == {"granted": 6}
    run_id = report["run_id"]
    assert len(changes_of(tmp_path / "journal.jsonl", run_id)) == 6
    assert 'provisioner_last_run_items{job="reapply",result="granted"} 6' in (tmp_path / "metrics.prom").read_text()

    writes = lab.engine.counters.writes
    second = cli(lab, "reapply", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert lab.engine.counters.writes == writes
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["results"] == {"already-present": 6}

    lab.engine.directory.add_mailbox("nina.new", "Nina New", "contoso.com/Sales")
    third = cli(lab, "reapply", "--config", str(config))
    assert third.returncode == 0, third.stderr
    assert has(lab, "nina.new", ADMIN) and has(lab, "nina.new", SERVICE)
    assert lab.engine.counters.writes == writes + 2


def test_prune_removes_only_what_provisioner_granted_unless_told_otherwise(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    assert cli(lab, "reapply", "--config", str(config)).returncode == 0
    before_judy = lab.engine.directory.permissions_of("judy.nakamura", include_inherited=True)
    before_carol = lab.engine.directory.permissions_of("carol.diaz")
    result = cli(lab, "reapply", "--config", str(config), "--prune", "--yes")
    assert result.returncode == 0, result.stderr
    # Grants outside the targets that a person made (svc on ivan, the console user on the shared mailbox) are not
    # provisioner's: left alone by default, counted, and the opt-in named.
    assert has(lab, "ivan.petrov", SERVICE) and has(lab, "sales@contoso.com", ADMIN)
    assert "2 explicit Full Access entries" in result.stderr and "--prune-unowned" in result.stderr
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["results"] == {"already-present": 6}

    unowned = cli(lab, "reapply", "--config", str(config), "--prune", "--prune-unowned", "--yes")
    assert unowned.returncode == 0, unowned.stderr
    assert not has(lab, "ivan.petrov", SERVICE)
    assert not has(lab, "sales@contoso.com", ADMIN)
    # Targets keep theirs; Deny, inherited, SELF and other trustees' (orphaned SID) entries are untouched.
    for mailbox in [*SALES, "heidi.schmidt"]:
        assert has(lab, mailbox, ADMIN) and has(lab, mailbox, SERVICE)
    assert lab.engine.directory.permissions_of("judy.nakamura", include_inherited=True) == before_judy
    assert lab.engine.directory.permissions_of("carol.diaz") == before_carol
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["results"] == {"already-present": 6, "removed": 2}
    removed = {item["mailbox"] for item in report["items"] if item["result"] == "removed"}
    assert removed == {"ivan.petrov@contoso.com", "sales@contoso.com"}  # named by primary SMTP address, not a DN


def test_prune_removes_what_provisioner_granted_once_no_longer_targeted(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    assert cli(lab, "reapply", "--config", str(config)).returncode == 0
    narrowed = tmp_path / "narrowed.toml"
    selectors = ('[[targets.selector]]\norganizational_unit = "contoso.com/Sales"\n'
                 '[[targets.selector]]\ngroup = "Sales Team"\n')
    assert selectors in config.read_text()
    narrowed.write_text(config.read_text().replace(selectors, ""), encoding="utf-8")  # heidi only
    dry = cli(lab, "reapply", "--config", str(narrowed), "--prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    removals = [line for line in dry.stdout.splitlines() if line.startswith("Remove-MailboxPermission")]
    assert len(removals) == 4
    assert sum("alice.wong@contoso.com" in line for line in removals) == 2  # named by address, not by a DN
    pruned = cli(lab, "reapply", "--config", str(narrowed), "--prune", "--yes")
    assert pruned.returncode == 0, pruned.stderr
    for mailbox in SALES:  # granted by run 1
        assert not has(lab, mailbox, SERVICE) and not has(lab, mailbox, ADMIN)
    assert has(lab, "heidi.schmidt", SERVICE)
    assert has(lab, "ivan.petrov", SERVICE) and has(lab, "sales@contoso.com", ADMIN)  # never provisioner's


def test_a_selector_that_matches_nothing_stops_a_pruning_run(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    assert cli(lab, "reapply", "--config", str(config)).returncode == 0
    typo = tmp_path / "typo.toml"
    typo.write_text(config.read_text().replace('group = "Sales Team"', 'filter = "Department -eq \'Salez\'"'),
                    encoding="utf-8")
    writes = lab.engine.counters.writes
    result = cli(lab, "reapply", "--config", str(typo), "--prune", "--yes")
    assert result.returncode == 2, result.stderr
    assert "matched no mailboxes" in result.stderr and "allow_empty" in result.stderr
    assert lab.engine.counters.writes == writes
    allowed = tmp_path / "allowed.toml"
    allowed.write_text(typo.read_text().replace("'Salez'\"", "'Salez'\"\nallow_empty = true"), encoding="utf-8")
    assert cli(lab, "reapply", "--config", str(allowed), "--prune", "--yes").returncode == 0


def test_prune_without_a_journal_needs_the_explicit_opt_in(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    result = cli(lab, "reapply", "--config", str(config), "--prune", "--yes", "--no-journal")
    assert result.returncode == 2, result.stderr
    assert "without a journal" in result.stderr and lab.engine.counters.writes == 0


def test_max_changes_refuses_and_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    result = cli(lab, "reapply", "--config", str(config), "--max-changes", "5")
    assert result.returncode == 6, result.stderr
    assert "more than max_changes=5" in result.stderr
    assert lab.engine.counters.writes == 0
    assert list(read(tmp_path / "journal.jsonl")) == []
    forced = cli(lab, "reapply", "--config", str(config), "--max-changes", "5", "--force")
    assert forced.returncode == 0, forced.stderr
    assert lab.engine.counters.writes == 6


def test_a_second_concurrent_run_exits_5(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    with exclusive(tmp_path / "journal.jsonl.lock"):
        result = cli(lab, "reapply", "--config", str(config))
    assert result.returncode == 5, result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert lab.engine.counters.pipelines == 0


def test_throttling_and_transient_http_faults_are_survived_exactly(tmp_path: Path) -> None:
    # 5 cmdlets per 0.3 s: throttled on this run's path (a lost write is read back after the reopen, before it is
    # sent again, so the run's pace differs from a plain re-send)
    engine = build_engine(options=EngineOptions(throttle_max_cmdlets=5, throttle_window_seconds=0.3))
    with running_lab(engine=engine) as lab:
        lab.server.set_faults(FaultOptions(error_rate=0.15, actions=frozenset({"Command"}), seed=7))
        config = write_config(lab, tmp_path, "retry_attempts = 12\nretry_max_seconds = 60\n")
        result = cli(lab, "reapply", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert engine.counters.throttled > 0 and lab.server.counters["errors_injected"] > 0
        for mailbox in [*SALES, "heidi.schmidt"]:
            assert has(lab, mailbox, ADMIN) and has(lab, mailbox, SERVICE)
        assert engine.counters.writes == 6  # nothing lost, nothing written twice
        run_id = json.loads((tmp_path / "report.json").read_text())["run_id"]
        assert len(changes_of(tmp_path / "journal.jsonl", run_id)) == 6


def test_killed_run_then_rerun_converges_with_an_exact_journal(tmp_path: Path) -> None:
    with running_lab(mailboxes=60) as lab:
        config = tmp_path / "provisioner.toml"
        config.write_text(lab.config_toml() + f'''
batch_size = 5
[trustees]
service_account = "{SERVICE}"
[[targets.selector]]
organizational_unit = "{lab.engine.directory.mailbox("user000001").ou}"
[reapply]
journal = "journal.jsonl"
report = "report.json"
verify = false
''', encoding="utf-8")
        lab.server.set_faults(FaultOptions(latency_ms=15))
        env = {**os.environ, "PROVISIONER_PASSWORD": lab.password}
        process = subprocess.Popen([sys.executable, "-m", "provisioner", "reapply", "--config", str(config)],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal = tmp_path / "journal.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(1 for r in read(journal) if r["kind"] == "change") >= 5:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        lab.server.set_faults(FaultOptions())
        targets = [m for m in lab.engine.directory.mailboxes() if m.ou == lab.engine.directory.mailbox("user000001").ou
                   and m.recipient_type_details == "UserMailbox"]
        killed_writes = lab.engine.counters.writes
        assert 0 < killed_writes < len(targets)

        rerun = cli(lab, "reapply", "--config", str(config))
        assert rerun.returncode == 0, rerun.stderr
        assert all(has(lab, m.alias, SERVICE) for m in targets)
        assert in_doubt(journal) == []
        # Exactly the changes that were made: one granted record per write the lab performed, across both runs.
        made = [r for r in read(journal) if r["kind"] in ("change", "reconciled") and r.get("outcome") == "granted"]
        assert len(made) == lab.engine.counters.writes == len(targets)
        assert len({(r["mailbox"].casefold(), r["trustee"].casefold()) for r in made}) == len(made)


def test_undo_restores_the_previous_state(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path)
    assert cli(lab, "reapply", "--config", str(config), "--prune", "--prune-unowned", "--yes").returncode == 0
    run_id = json.loads((tmp_path / "report.json").read_text())["run_id"]
    listed = cli(lab, "journal", "list", "--config", str(config))
    assert f"{run_id}  8 changes" in listed.stdout
    as_json = json.loads(cli(lab, "journal", "list", "--config", str(config), "--format", "json").stdout)
    listed_run = next(run for run in as_json if run["run_id"] == run_id)
    assert (listed_run["changes"], listed_run["granted"], listed_run["removed"], listed_run["in_doubt"]) == (8, 6, 2, 0)
    as_csv = cli(lab, "journal", "list", "--config", str(config), "--format", "csv").stdout.splitlines()
    assert as_csv[0] == "run_id,started,changes,granted,removed,in_doubt"
    assert f"{run_id},{listed_run['started']},8,6,2,0" in as_csv
    dry = cli(lab, "journal", "undo", run_id, "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    commands = [line for line in dry.stdout.splitlines() if line and not line.startswith("#")]
    assert sum(line.startswith("Remove-MailboxPermission") for line in commands) == 6
    assert sum(line.startswith("Add-MailboxPermission") for line in commands) == 2
    writes = lab.engine.counters.writes
    assert lab.engine.counters.writes == writes  # the dry-run changed nothing
    undo = cli(lab, "journal", "undo", run_id, "--config", str(config), "--yes")
    assert undo.returncode == 0, undo.stderr
    for mailbox in [*SALES, "heidi.schmidt"]:
        assert not has(lab, mailbox, ADMIN) and not has(lab, mailbox, SERVICE)
    assert has(lab, "ivan.petrov", SERVICE) and has(lab, "sales@contoso.com", ADMIN)  # pruned grants are back


def test_a_server_that_cannot_be_reached_still_leaves_a_report_and_metrics(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "provisioner.toml"
    config.write_text(f'''[connection]
server = "127.0.0.1"
port = {port}
auth = "basic"
username = "lab-admin"
insecure_lab = true
[trustees]
service_account = "{SERVICE}"
[targets]
mailboxes = ["heidi.schmidt"]
[reapply]
report = "report.json"
metrics_file = "metrics.prom"
''', encoding="utf-8")
    env = {**os.environ, "PROVISIONER_PASSWORD": "x"}
    done = subprocess.run([sys.executable, "-m", "provisioner", "reapply", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["results"] == {"unknown": 1}
    assert "provisioner_last_run_exit_code" in (tmp_path / "metrics.prom").read_text()
