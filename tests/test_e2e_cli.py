"""End to end: the real provisioner CLI (a subprocess) against the lab endpoint on a free port.

Outcomes are verified by inspecting the lab's organisation, not only the CLI's text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from provisioner_lab.exchange.engine import EngineOptions
from provisioner_lab.run import Lab, build_engine, running_lab
from provisioner_lab.server import FaultOptions

from tests import psparse

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
USERS = [line.split(",")[0] for line in (EXAMPLES / "users.csv").read_text().splitlines()
         if line and not line.startswith("#")][1:]
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab() as running:
        yield running


def cli(lab: Lab, *args: str, password: str | None = None, auth: str = "ntlm") -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "PROVISIONER_PASSWORD"}
    env["PROVISIONER_PASSWORD"] = lab.password if password is None else password
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args, *lab.cli_args(auth)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )


def report(path: Path) -> dict[str, dict[tuple[str, str], str]]:
    document = json.loads(path.read_text())
    return {"results": {(i["mailbox"], i["trustee"]): i["result"] for i in document["items"]}, "doc": document}


def has(lab: Lab, mailbox: str, trustee: str) -> bool:
    return lab.engine.directory.has_full_access(mailbox, trustee)


def test_grant_the_example_users_then_rerun_writes_nothing(lab: Lab, tmp_path: Path) -> None:
    first = cli(lab, "grant", "--config", str(EXAMPLES / "provisioner.toml"), "--report", str(tmp_path / "r1.json"))
    assert first.returncode == 0, first.stderr
    results = report(tmp_path / "r1.json")["results"]
    assert set(results.values()) == {"granted"} and len(results) == 2 * len(USERS)
    for user in USERS:
        assert has(lab, user, ADMIN) and has(lab, user, SERVICE)
        assert lab.engine.directory.delegates_of(user) == []  # AutoMapping off by default
    writes = lab.engine.counters.writes
    assert writes == 16  # one write per pair, although the grants went as one piped invocation per trustee
    adds = lab.engine.counters.invocations["Add-MailboxPermission"]
    assert adds == 2
    second = cli(lab, "grant", "--config", str(EXAMPLES / "provisioner.toml"), "--report", str(tmp_path / "r2.json"))
    assert second.returncode == 0, second.stderr
    assert set(report(tmp_path / "r2.json")["results"].values()) == {"already-present"}
    assert lab.engine.counters.writes == writes
    assert lab.engine.counters.invocations["Add-MailboxPermission"] == adds


def test_per_item_outcomes_for_missing_denied_and_ambiguous(lab: Lab, tmp_path: Path) -> None:
    # (a trustee that names no one stops the run before anything is read: tests/test_trustees.py)
    result = cli(
        lab, "grant", "-m", "alice.wong", "-m", "no.such.person@contoso.com", "-m", "judy.nakamura",
        "-m", "Chris Taylor", "-m", "ivan.petrov",
        "--service-account", SERVICE, "--report", str(tmp_path / "r.json"),
    )
    assert result.returncode == 1, result.stderr
    doc = report(tmp_path / "r.json")["doc"]
    items = {(i["mailbox"], i["trustee"]): i for i in doc["items"]}
    assert len(items) == 5
    assert items[("alice.wong", SERVICE)]["result"] == "granted"
    assert items[("ivan.petrov", SERVICE)]["result"] == "already-present"
    assert items[("judy.nakamura", SERVICE)]["result"] == "blocked"
    missing = items[("no.such.person@contoso.com", SERVICE)]
    assert missing["result"] == "failed" and missing["error"]["reason"] == "ManagementObjectNotFoundException"
    twin = items[("Chris Taylor", SERVICE)]
    assert twin["result"] == "failed" and twin["error"]["reason"] == "provisioner.AmbiguousIdentity"
    assert "matches 2 mailboxes" in twin["error"]["message"]  # each named by its primary SMTP address
    # The lab's state: only the one real grant was made; the Deny entry is untouched.
    assert has(lab, "alice.wong", SERVICE)
    assert not has(lab, "judy.nakamura", SERVICE)
    judy = lab.engine.directory.permissions_of("judy.nakamura")
    assert any(entry.deny for entry in judy)
    assert lab.engine.counters.invocations["Add-MailboxPermission"] == 1
    assert "blocked: judy.nakamura / svc-codetwo@contoso.com" in result.stderr


def test_dry_run_with_a_server_reads_first_and_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "review.ps1"
    result = cli(lab, "grant", "--dry-run", "--script", str(script), "-m", "ivan.petrov", "-m", "bob.meyer",
                 "--service-account", SERVICE)
    assert result.returncode == 0, result.stderr
    data = script.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Windows PowerShell reads it as UTF-8
    text = data.decode("utf-8-sig")
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert commands == [
        psparse.ENCODING_GUARD,
        "Add-MailboxPermission -Identity 'bob.meyer' -User 'svc-codetwo@contoso.com' -AccessRights FullAccess "
        "-InheritanceType All -AutoMapping:$false",
    ]
    assert "#   'already-present': mailbox 'ivan.petrov'" in text
    assert lab.engine.counters.writes == 0
    assert not has(lab, "bob.meyer", SERVICE)


def test_audit_reports_drift_then_compliance(lab: Lab) -> None:
    args = ("audit", "-m", "ivan.petrov", "-m", "bob.meyer", "-m", "judy.nakamura", "--service-account", SERVICE)
    before = cli(lab, *args, "--format", "json")
    assert before.returncode == 3, before.stderr
    results = {i["mailbox"]: i["result"] for i in json.loads(before.stdout)["items"]}
    assert results == {"ivan.petrov": "present", "bob.meyer": "missing", "judy.nakamura": "blocked"}
    assert lab.engine.counters.writes == 0
    granted = cli(lab, "grant", "-m", "bob.meyer", "--service-account", SERVICE)
    assert granted.returncode == 0, granted.stderr
    after = cli(lab, "audit", "-m", "ivan.petrov", "-m", "bob.meyer", "--service-account", SERVICE, "--format", "csv")
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[0].startswith("mailbox,trustee,role,result")
    assert "missing" not in after.stdout


def test_revoke_removes_only_explicit_grants(lab: Lab, tmp_path: Path) -> None:
    granted = cli(lab, "grant", "-m", "bob.meyer", "--service-account", SERVICE, "--admin-user", ADMIN, "--automapping")
    assert granted.returncode == 0, granted.stderr
    # AutoMapping applies to trustees with a mailbox (the console user), not to the mailbox-less service account.
    assert lab.engine.directory.delegates_of("bob.meyer") == ["CONTOSO\\sync.admin"]
    result = cli(lab, "revoke", "--yes", "-m", "bob.meyer", "-m", "ivan.petrov", "-m", "judy.nakamura",
                 "-m", "heidi.schmidt", "--service-account", SERVICE, "--admin-user", ADMIN,
                 "--report", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    results = report(tmp_path / "r.json")["results"]
    assert {m: r for (m, t), r in results.items() if t == SERVICE} == {
        "bob.meyer": "removed", "ivan.petrov": "removed", "judy.nakamura": "absent", "heidi.schmidt": "absent"
    }
    assert results[("bob.meyer", ADMIN)] == "removed" and results[("heidi.schmidt", ADMIN)] == "absent"
    assert not has(lab, "bob.meyer", SERVICE) and not has(lab, "ivan.petrov", SERVICE)
    assert not has(lab, "bob.meyer", ADMIN)
    assert lab.engine.directory.delegates_of("bob.meyer") == []
    assert any(entry.deny for entry in lab.engine.directory.permissions_of("judy.nakamura"))  # Deny left alone


def test_check_reports_a_usable_nolanguage_endpoint(lab: Lab) -> None:
    result = cli(lab, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NoLanguage" in result.stdout
    for cmdlet in ("Get-MailboxPermission", "Add-MailboxPermission", "Remove-MailboxPermission"):
        assert f"ok   {cmdlet}: available" in result.stdout
    assert lab.engine.counters.writes == 0


def test_wrong_password_is_exit_4_without_leaking_it(lab: Lab) -> None:
    result = cli(lab, "grant", "-m", "bob.meyer", "--service-account", SERVICE, password="Wrong-Secret-123")
    assert result.returncode == 4, result.stderr
    assert "authentication" in result.stderr
    assert "Wrong-Secret-123" not in result.stderr + result.stdout


def test_basic_auth_needs_the_lab_flag_and_works_with_it(lab: Lab) -> None:
    result = cli(lab, "grant", "-m", "bob.meyer", "--service-account", SERVICE, auth="basic")
    assert result.returncode == 0, result.stderr
    assert has(lab, "bob.meyer", SERVICE)


def fast_retries(tmp_path: Path) -> list[str]:
    """A config whose backoff is milliseconds: the retries still happen, the test does not wait for them."""
    path = tmp_path / "fast-retries.toml"
    path.write_text("[reapply]\nretry_base_seconds = 0.01\nretry_max_seconds = 1\n", encoding="utf-8")
    return ["--config", str(path)]


def test_terminating_failures_fail_only_their_items(tmp_path: Path) -> None:
    # Throttling after 8 cmdlets: the targets' lookups (Get-Mailbox -Identity, one each), one trustee check per trustee
    # and the 4 reads pass, every write's pipeline fails (a terminating error). --batch-size 1 and --read-batch-size
    # 1: one pipeline and one Exchange cmdlet per lookup, read and write, as this budget assumes (batched reads spend
    # two cmdlets per pair; tests/test_batch_lab.py covers throttling inside batches).
    engine = build_engine(options=EngineOptions(throttle_max_cmdlets=8, throttle_refill=False))
    with running_lab(engine=engine) as lab:
        result = cli(lab, "grant", "-m", "alice.wong", "-m", "bob.meyer", "--admin-user", ADMIN,
                     "--service-account", SERVICE, "--batch-size", "1", "--read-batch-size", "1",
                     *fast_retries(tmp_path))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("failed: ") == 4
    assert "user load quota" in result.stderr
    assert not has(lab, "alice.wong", SERVICE)


def test_a_session_dropped_mid_run_leaves_unfinished_items_unknown(tmp_path: Path) -> None:
    with running_lab() as lab:
        lab.server.set_faults(FaultOptions(drop_rate=1.0, actions=frozenset({"Command"}), seed=1))
        # Every Command request is dropped: the session breaks at its first pipeline (the command metadata read),
        # every reopen too: lost for good, exit 4, every item unknown in the report.
        result = cli(lab, "grant", "-m", "alice.wong", "-m", "bob.meyer", "--service-account", SERVICE,
                     "--report", str(tmp_path / "r.json"), *fast_retries(tmp_path))
    assert result.returncode == 4, result.stderr
    assert set(report(tmp_path / "r.json")["results"].values()) == {"unknown"}
    assert lab.engine.counters.writes == 0


def test_script_mode_against_a_full_language_endpoint(tmp_path: Path) -> None:
    with running_lab(full_language=True) as lab:
        config = tmp_path / "script.toml"
        config.write_text(lab.config_toml() + 'mode = "script"\n'
                          'preamble = "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn"\n')
        result = cli(lab, "grant", "--config", str(config), "-m", "alice.wong", "-m", "Frank O'Connor",
                     "-m", "x'; Remove-Mailbox alice.wong -Confirm:$false; '", "--service-account", SERVICE,
                     "--report", str(tmp_path / "r.json"))
        assert result.returncode == 1, result.stderr
        results = report(tmp_path / "r.json")["results"]
        assert results[("alice.wong", SERVICE)] == "granted"
        assert results[("Frank O'Connor", SERVICE)] == "granted"
        assert results[("x'; Remove-Mailbox alice.wong -Confirm:$false; '", SERVICE)] == "failed"
        assert has(lab, "frank.oconnor@contoso.com", SERVICE)
        assert lab.engine.directory.mailbox("alice.wong") is not None  # the hostile name ran as a literal


def test_script_mode_is_refused_against_the_nolanguage_configuration(lab: Lab) -> None:
    result = cli(lab, "grant", "-m", "alice.wong", "--service-account", SERVICE, "--mode", "script")
    assert result.returncode == 2
    assert "NoLanguage" in result.stderr
