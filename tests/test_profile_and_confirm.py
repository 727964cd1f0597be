"""The MAPI-profile list (the seed's second step) and the confirmation of wide changes, against the lab.

The profile list is compared with the lab's own directory (display name, primary SMTP, LegacyExchangeDN of each
mailbox); the confirmation runs the real CLI on a pseudo-terminal and answers its prompt.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from provisioner_lab.exchange.objects import legacy_exchange_dn
from provisioner_lab.run import Lab, running_lab

from provisioner.cli.confirm import Confirmation, changes_question, removals_question
from provisioner.domain.model import Action, Identity, ItemState, Plan, PlanItem, Trustee
from provisioner.errors import Declined, InputError

ROOT = Path(__file__).parent.parent
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
MAILBOXES = [f"user{i:06d}@contoso.com" for i in range(1, 7)]
MISSING = "nobody000001@contoso.com"


def env(lab: Lab) -> dict[str, str]:
    return {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")], capture_output=True,
                          text=True, cwd=ROOT, env=env(lab), timeout=120, stdin=subprocess.DEVNULL)


def targets(mailboxes: list[str]) -> list[str]:
    return [arg for mailbox in mailboxes for arg in ("-m", mailbox)]


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def expected_row(lab: Lab, mailbox: str, change: str) -> dict[str, str]:
    with lab.engine.lock:
        recipient = lab.engine.directory.mailbox(mailbox)
        return {"change": change, "display_name": recipient.display_name,
                "primary_smtp_address": recipient.primary_smtp or "",
                "legacy_exchange_dn": legacy_exchange_dn(recipient), "mailbox": mailbox, "admin_user": ADMIN}


def picked(row: dict[str, str]) -> dict[str, str]:
    return {key: row[key] for key in ("change", "display_name", "primary_smtp_address", "legacy_exchange_dn",
                                      "mailbox", "admin_user")}


# ---------------------------------------------------------------------------------------------- profile list
def test_the_profile_list_matches_the_labs_state_after_grant_revoke_and_audit(tmp_path: Path) -> None:
    with running_lab(mailboxes=10) as lab:
        listing = tmp_path / "profile.csv"
        report = tmp_path / "grant.json"
        grant = cli(lab, "grant", *targets([*MAILBOXES, MISSING]), "--admin-user", ADMIN, "--service-account",
                    SERVICE, "--profile-list", str(listing), "--report", str(report))
        assert grant.returncode == 1, grant.stderr  # the missing mailbox
        # only the admin-console user's grants, only those made, each with the names the lab has
        assert [picked(r) for r in rows(listing.read_text())] == [expected_row(lab, m, "add") for m in MAILBOXES]
        assert "MAPI profile of the admin-console user: add 6 mailboxes" in grant.stderr
        assert [r["mailbox"] for r in json.loads(report.read_text())["mapi_profile"]] == MAILBOXES

        # an idempotent re-run adds nothing to the profile
        again = cli(lab, "grant", *targets(MAILBOXES), "--admin-user", ADMIN, "--profile-list", str(listing))
        assert again.returncode == 0, again.stderr
        assert rows(listing.read_text()) == []

        revoke = cli(lab, "revoke", "--yes", *targets(MAILBOXES[:2]), "--admin-user", ADMIN,
                     "--profile-list", str(listing))
        assert revoke.returncode == 0, revoke.stderr
        assert [picked(r) for r in rows(listing.read_text())] == [expected_row(lab, m, "remove")
                                                                   for m in MAILBOXES[:2]]

        audit = cli(lab, "audit", *targets(MAILBOXES), "--admin-user", ADMIN, "--for-profile", "--format", "csv")
        assert audit.returncode == 3, audit.stderr  # drift: two were revoked
        assert [picked(r) for r in rows(audit.stdout)] == [expected_row(lab, m, "present") for m in MAILBOXES[2:]]


def test_automapped_grants_are_marked_not_to_be_added_by_hand(tmp_path: Path) -> None:
    with running_lab(mailboxes=4) as lab:
        listing = tmp_path / "profile.csv"
        result = cli(lab, "grant", *targets(MAILBOXES[:2]), "--admin-user", ADMIN, "--automapping",
                     "--profile-list", str(listing))
        assert result.returncode == 0, result.stderr
        listed = rows(listing.read_text())
        assert {r["automapping"] for r in listed} == {"true"}
        assert all("KB 981245" in r["note"] for r in listed)
        assert "2 automapped" in result.stderr


def test_the_profile_list_needs_the_admin_console_user(tmp_path: Path) -> None:
    with running_lab(mailboxes=2) as lab:
        result = cli(lab, "grant", *targets(MAILBOXES[:1]), "--service-account", SERVICE,
                     "--profile-list", str(tmp_path / "p.csv"))
        assert result.returncode == 2
        assert "--admin-user" in result.stderr and lab.engine.counters.snapshot()["pipelines"] == 0


# ---------------------------------------------------------------------------------------------- confirmation
def _plan(*states: ItemState) -> Plan:
    trustee = Trustee(Identity(SERVICE))
    items = tuple(PlanItem(Identity(f"m{i}"), trustee, state) for i, state in enumerate(states))
    return Plan(Action.REVOKE, items, (trustee,), observed=True)


def test_no_terminal_and_no_yes_is_refused_and_yes_never_asks() -> None:
    asked: list[str] = []
    with pytest.raises(InputError, match="--yes"):
        Confirmation(yes=False, interactive=False, ask=lambda q: asked.append(q) or True).require("revoke")
    Confirmation(yes=True, interactive=False, ask=lambda q: asked.append(q) or True).confirm("anything?")
    assert asked == []


def test_the_question_counts_the_removals_and_no_is_declined() -> None:
    question = removals_question("revoke")(_plan(ItemState.TO_REMOVE, ItemState.TO_REMOVE, ItemState.ABSENT))
    assert question is not None and "2 mailboxes (2 removals)" in question
    assert removals_question("revoke")(_plan(ItemState.ABSENT)) is None  # nothing to remove: nothing asked
    assert changes_question("undo x", _plan(ItemState.TO_ADD, ItemState.TO_REMOVE)) == \
        f"undo x: 1 removal and 1 grant of {SERVICE} on 2 mailboxes. Continue?"
    with pytest.raises(Declined):
        Confirmation(yes=False, interactive=True, ask=lambda _: False).confirm(question)


def _on_terminal(lab: Lab, args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with stdin/stdout/stderr on a pseudo-terminal; answer the first prompt with ``answer``."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")], cwd=ROOT,
                               env=env(lab), stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                seen += chunk
                if not answered and b"Continue?" in seen:
                    os.write(controller, answer)
                    answered = True
            elif process.poll() is not None:
                break
        return process.wait(timeout=30), seen.decode("utf-8", "replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()


def test_revoke_on_a_terminal_shows_the_count_and_asks(tmp_path: Path) -> None:
    with running_lab(mailboxes=8) as lab:
        assert cli(lab, "grant", *targets(MAILBOXES), "--service-account", SERVICE).returncode == 0
        args = ["revoke", *targets(MAILBOXES[:3]), "--service-account", SERVICE]
        code, output = _on_terminal(lab, args, b"n\n")
        assert code == 8, output
        assert f"revoke: remove Full Access of {SERVICE} on 3 mailboxes (3 removals)" in output
        with lab.engine.lock:
            assert all(lab.engine.directory.has_full_access(m, SERVICE) for m in MAILBOXES)
        code, output = _on_terminal(lab, args, b"y\n")
        assert code == 0, output
        with lab.engine.lock:
            assert [m for m in MAILBOXES if lab.engine.directory.has_full_access(m, SERVICE)] == MAILBOXES[3:]


def test_revoke_without_a_terminal_and_without_yes_sends_nothing() -> None:
    with running_lab(mailboxes=2) as lab:
        result = cli(lab, "revoke", *targets(MAILBOXES[:1]), "--service-account", SERVICE)
        assert result.returncode == 2
        assert "no terminal to ask on" in result.stderr and "--yes" in result.stderr
        assert lab.engine.counters.snapshot()["pipelines"] == 0


def test_names_are_read_only_when_a_list_or_report_shows_them(tmp_path: Path) -> None:
    pipelines = []
    for extra in ([], ["--profile-list", str(tmp_path / "p.csv")]):
        with running_lab(mailboxes=8) as lab:
            result = cli(lab, "grant", *targets(MAILBOXES), "--admin-user", ADMIN, *extra)
            assert result.returncode == 0, result.stderr
            pipelines.append(lab.engine.counters.snapshot()["pipelines"])
            assert "MAPI profile of the admin-console user: add 6 mailboxes" in result.stderr
            assert ("list them with --profile-list FILE" in result.stderr) == (not extra)
    # the names come from the targets' one lookup (ids | Get-Mailbox) that every run makes: no pipeline more
    assert pipelines[1] == pipelines[0]


def test_undoing_a_grant_lists_the_admin_console_users_mailboxes_to_remove(tmp_path: Path) -> None:
    conf = tmp_path / "provisioner.toml"
    conf.write_text(f'[reapply]\njournal = "{tmp_path / "journal.jsonl"}"\nverify_delay_seconds = 0\n',
                    encoding="utf-8")
    with running_lab(mailboxes=6) as lab:
        grant = cli(lab, "grant", "--config", str(conf), *targets(MAILBOXES[:3]), "--admin-user", ADMIN,
                    "--service-account", SERVICE)
        assert grant.returncode == 0, grant.stderr
        run_id = next(line.split()[1] for line in grant.stderr.splitlines() if line.startswith("run "))
        listing = tmp_path / "undo.csv"
        undo = cli(lab, "journal", "undo", run_id, "--config", str(conf), "--yes", "--profile-list", str(listing))
        assert undo.returncode == 0, undo.stderr
        assert [picked(r) for r in rows(listing.read_text())] == [expected_row(lab, m, "remove")
                                                                   for m in reversed(MAILBOXES[:3])]
