"""Saved plan and exact apply, end to end: the real CLI against the lab, checked in the lab's organisation.

A plan applied unchanged applies exactly its changes (lab counters: one write per planned change, nothing else
written); a plan whose state moved in the lab refuses with exit 7 and a diff naming the moved items, nothing sent;
``--allow-drift`` applies exactly the still-valid part; an edited plan file is refused; a plan that removes asks
for confirmation like revoke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from provisioner_lab.exchange.directory import FULL_ACCESS, PermissionEntry
from provisioner_lab.run import Lab, running_lab

ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
MAILBOXES = [f"user{i:06d}@contoso.com" for i in range(1, 9)]


def cli(lab: Lab, *args: str, endpoint: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}
    extra = lab.cli_args("ntlm") if endpoint else ["--auth", "ntlm", "--username", lab.username, "--insecure-lab"]
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *extra], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env=env, timeout=120, stdin=subprocess.DEVNULL)  # its lock


def targets(mailboxes: list[str]) -> list[str]:
    return [arg for mailbox in mailboxes for arg in ("-m", mailbox)]


def holders(lab: Lab, trustee: str, mailboxes: list[str] = MAILBOXES) -> set[str]:
    with lab.engine.lock:
        directory = lab.engine.directory
        present = [m for m in mailboxes if directory.find(m, lambda recipient: recipient.is_mailbox)]
        return {m for m in present if directory.has_full_access(m, trustee)}


def writes(lab: Lab) -> int:
    return int(lab.engine.counters.snapshot()["writes"])


def grant_directly(lab: Lab, mailbox: str, trustee: str) -> None:
    """Someone else grants the pair between plan and apply (no tool involved)."""
    with lab.engine.lock:
        directory = lab.engine.directory
        sid = directory.principal(trustee).sid
        directory.add_entry(directory.mailbox(mailbox), PermissionEntry(sid, FULL_ACCESS, inheritance="All"))


def make_plan(lab: Lab, tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "change.plan"
    result = cli(lab, "plan", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "apply it with: provisioner apply" in result.stderr
    return out


def test_an_unchanged_plan_applies_exactly_its_changes(tmp_path: Path) -> None:
    with running_lab(mailboxes=12) as lab:
        grant_directly(lab, MAILBOXES[0], SERVICE)  # already there when planned: not a change
        before = writes(lab)
        plan = make_plan(lab, tmp_path, "grant", *targets(MAILBOXES), "--admin-user", ADMIN,
                         "--service-account", SERVICE)
        assert writes(lab) == before  # planning sends no write
        document = json.loads(plan.read_text())
        changes = {(c["mailbox"], c["trustee"]) for c in document["body"]["changes"]}
        assert changes == {(m, t) for m in MAILBOXES for t in (ADMIN, SERVICE)} - {(MAILBOXES[0], SERVICE)}
        assert document["body"]["unchanged"] == {"already-present": 1}
        # the review script shows the plan's digest and exactly the planned commands
        script = (tmp_path / "change.plan.ps1").read_text(encoding="utf-8-sig")
        assert document["digest"] in script
        assert script.count("Add-MailboxPermission -Identity") == len(changes)
        assert f"-Identity '{MAILBOXES[0]}' -User '{SERVICE}'" not in script

        other = cli(lab, "apply", str(plan), "--expect-digest", "sha256:" + "0" * 64, endpoint=False)
        assert other.returncode == 2 and "not the approved sha256:000" in other.stderr, other.stderr
        assert writes(lab) == before
        result = cli(lab, "apply", str(plan), "--expect-digest", document["digest"], "--report",
                     str(tmp_path / "apply.json"), endpoint=False)
        assert result.returncode == 0, result.stderr
        assert writes(lab) - before == len(changes)  # one write per planned change, nothing else
        assert holders(lab, ADMIN) == holders(lab, SERVICE) == set(MAILBOXES)
        items = json.loads((tmp_path / "apply.json").read_text())["items"]
        assert {(i["mailbox"], i["trustee"]): i["result"] for i in items} == dict.fromkeys(changes, "granted")


def test_a_plan_whose_state_moved_is_refused_with_exit_7_and_a_diff(tmp_path: Path) -> None:
    with running_lab(mailboxes=12) as lab:
        plan = make_plan(lab, tmp_path, "grant", *targets(MAILBOXES), "--service-account", SERVICE)
        grant_directly(lab, MAILBOXES[1], SERVICE)  # granted by someone else meanwhile
        with lab.engine.lock:  # and a mailbox deleted
            lab.engine.directory.remove(lab.engine.directory.mailbox(MAILBOXES[2]))
        before = writes(lab)

        refused = cli(lab, "apply", str(plan))
        assert refused.returncode == 7, refused.stderr
        assert writes(lab) == before  # nothing was sent
        assert holders(lab, SERVICE) == {MAILBOXES[1]}
        diff = [line.strip() for line in refused.stderr.splitlines() if " / " in line]
        assert diff == [f"{MAILBOXES[1]} / {SERVICE}: planned grant, but Full Access is already there",
                        f"{MAILBOXES[2]} / {SERVICE}: planned grant, but the mailbox is gone"]
        assert "--allow-drift" in refused.stderr and "6 still-valid of 8" in refused.stderr

        # --allow-drift: exactly the six still-valid changes
        allowed = cli(lab, "apply", str(plan), "--allow-drift", "--report", str(tmp_path / "r.json"))
        assert allowed.returncode == 1, allowed.stderr  # the vanished mailbox is a failed item
        assert writes(lab) - before == 6
        assert holders(lab, SERVICE) == set(MAILBOXES) - {MAILBOXES[2]}
        found = {i["mailbox"]: i["result"] for i in json.loads((tmp_path / "r.json").read_text())["items"]}
        assert found[MAILBOXES[1]] == "already-present" and found[MAILBOXES[2]] == "failed"
        assert {found[m] for m in MAILBOXES if m not in MAILBOXES[1:3]} == {"granted"}


def test_a_mailbox_recreated_under_the_same_name_is_drift(tmp_path: Path) -> None:
    with running_lab(mailboxes=4) as lab:
        plan = make_plan(lab, tmp_path, "grant", *targets(MAILBOXES[:2]), "--service-account", SERVICE)
        with lab.engine.lock:
            directory = lab.engine.directory
            old = directory.mailbox(MAILBOXES[0])
            directory.remove(old)
            directory.add_mailbox(old.alias or old.sam, old.display_name, primary_smtp=old.primary_smtp)
        refused = cli(lab, "apply", str(plan))
        assert refused.returncode == 7, refused.stderr
        assert f"{MAILBOXES[0]} / {SERVICE}: planned grant, but another mailbox" in refused.stderr
        assert holders(lab, SERVICE) == set()


def test_an_edited_plan_is_refused_before_connecting(tmp_path: Path) -> None:
    with running_lab(mailboxes=4) as lab:
        plan = make_plan(lab, tmp_path, "grant", *targets(MAILBOXES[:2]), "--service-account", SERVICE)
        document = json.loads(plan.read_text())
        document["body"]["changes"][0]["mailbox"] = MAILBOXES[3]
        plan.write_text(json.dumps(document))
        pipelines = lab.engine.counters.snapshot()["pipelines"]
        result = cli(lab, "apply", str(plan))
        assert result.returncode == 2, result.stderr
        assert f"{plan}: the plan was changed after it was made" in result.stderr
        assert lab.engine.counters.snapshot()["pipelines"] == pipelines


def test_a_plan_for_another_server_is_refused(tmp_path: Path) -> None:
    with running_lab(mailboxes=4) as lab:
        plan = make_plan(lab, tmp_path, "grant", *targets(MAILBOXES[:2]), "--service-account", SERVICE)
        result = cli(lab, "apply", str(plan), "--server", "ex02.contoso.com", endpoint=False)
        assert result.returncode == 7, result.stderr
        assert "server: the plan is for 127.0.0.1, --server says ex02.contoso.com" in result.stderr
        assert "make a new plan and have it reviewed" in result.stderr


def test_a_revoke_plan_needs_yes_without_a_terminal_and_then_removes_exactly(tmp_path: Path) -> None:
    with running_lab(mailboxes=12) as lab:
        assert cli(lab, "grant", *targets(MAILBOXES), "--service-account", SERVICE).returncode == 0
        plan = make_plan(lab, tmp_path, "revoke", *targets(MAILBOXES[:3]), "--service-account", SERVICE)
        refused = cli(lab, "apply", str(plan))
        assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr
        assert holders(lab, SERVICE) == set(MAILBOXES)
        applied = cli(lab, "apply", str(plan), "--yes")
        assert applied.returncode == 0, applied.stderr
        assert holders(lab, SERVICE) == set(MAILBOXES[3:])


@pytest.mark.parametrize("profile", ["exchange2010", "exchange2019"])
def test_a_reapply_plan_with_prune_applies_grants_and_removals(profile: str, tmp_path: Path) -> None:
    with running_lab(mailboxes=12, profile=profile) as lab:
        assert cli(lab, "grant", *targets(MAILBOXES[4:]), "--service-account", SERVICE).returncode == 0
        plan = make_plan(lab, tmp_path, "reapply", *targets(MAILBOXES[:4]), "--service-account", SERVICE,
                         "--prune", "--force")  # a plan changes nothing: it takes no lock
        states = [c["state"] for c in json.loads(plan.read_text())["body"]["changes"]]
        assert states.count("to-add") == 4 and states.count("to-remove") == 4
        assert holders(lab, SERVICE) == set(MAILBOXES[4:])  # planning changed nothing
        applied = cli(lab, "apply", str(plan), "--yes")
        assert applied.returncode == 0, applied.stderr
        assert holders(lab, SERVICE) == set(MAILBOXES[:4])


def test_a_plan_can_list_its_items_on_stdout_while_its_script_goes_to_a_file(tmp_path: Path) -> None:
    with running_lab(mailboxes=4) as lab:
        out = tmp_path / "change.plan"
        result = cli(lab, "plan", "grant", *targets(MAILBOXES[:2]), "--service-account", SERVICE, "--out", str(out),
                     "--format", "json")
        assert result.returncode == 0, result.stderr
        assert {i["result"] for i in json.loads(result.stdout)["items"]} == {"planned"}
        assert "Add-MailboxPermission" in (tmp_path / "change.plan.ps1").read_text(encoding="utf-8-sig")


def test_two_explicit_entries_of_one_trustee_are_one_planned_removal(tmp_path: Path) -> None:
    from provisioner_lab.exchange.directory import READ_PERMISSION

    with running_lab(mailboxes=6) as lab:
        assert cli(lab, "grant", *targets(MAILBOXES[:2]), "--service-account", SERVICE).returncode == 0
        with lab.engine.lock:  # a second explicit Allow FullAccess of the same trustee, another inheritance
            directory = lab.engine.directory
            sid = directory.principal(SERVICE).sid
            directory.add_entry(directory.mailbox(MAILBOXES[1]),
                                PermissionEntry(sid, FULL_ACCESS | READ_PERMISSION, inheritance="SelfAndChildren"))
        plan = make_plan(lab, tmp_path, "reapply", *targets(MAILBOXES[:1]), "--service-account", SERVICE,
                         "--prune", "--force")
        removals = [c for c in json.loads(plan.read_text())["body"]["changes"] if c["state"] == "to-remove"]
        assert len(removals) == 1 and removals[0]["trustee"] == SERVICE
        assert (tmp_path / "change.plan.ps1").read_text(encoding="utf-8-sig").count("Remove-MailboxPermission") == 1
