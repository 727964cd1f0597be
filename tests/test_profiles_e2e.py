"""The real CLI against every lab server profile: grant, audit, revoke, reapply --prune, journal undo of a grant.

Each step is checked in the lab's organisation, not only in the CLI's report. exchange2010/exchange2010sp1 are
PSRP protocol 2.1 servers (PowerShell 2.0: a pipeline runs its first statement only), exchange2013 2.2 and
exchange2019 2.3; exchange2010sp1 has no -AutoMapping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from provisioner_lab.run import Lab, running_lab

ROOT = Path(__file__).parent.parent
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
TARGETS = [f"user{i:06d}@contoso.com" for i in range(1, 25)] + ["nobody000001@contoso.com"]
PROFILES = ("exchange2010", "exchange2010sp1", "exchange2013", "exchange2019")


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, stdin=subprocess.DEVNULL)


def cli_help(command: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "provisioner", command, "--help"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60, check=True).stdout


def results(path: Path) -> dict[tuple[str, str], str]:
    return {(i["mailbox"], i["trustee"]): i["result"] for i in json.loads(path.read_text())["items"]}


def holders(lab: Lab, mailboxes: list[str], trustee: str) -> set[str]:
    with lab.engine.lock:
        return {m for m in mailboxes if lab.engine.directory.has_full_access(m, trustee)}


def config(tmp_path: Path, mailboxes: list[str], automapping: bool = False) -> Path:
    users = tmp_path / "users.txt"
    users.write_text("\n".join(mailboxes) + "\n", encoding="utf-8")
    path = tmp_path / "provisioner.toml"
    path.write_text(
        "[trustees]\n"
        f'admin_user = "{ADMIN}"\nservice_account = "{SERVICE}"\nautomapping = {str(automapping).lower()}\n'
        f'[targets]\nusers_file = "{users}"\n'
        f'[reapply]\njournal = "{tmp_path / "journal.jsonl"}"\nverify_delay_seconds = 0\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("profile", PROFILES)
def test_the_whole_workflow_is_exact_on_every_profile(profile: str, tmp_path: Path) -> None:
    existing = TARGETS[:-1]
    extra = ["--accept-automapping"] if profile == "exchange2010sp1" else []
    with running_lab(mailboxes=40, profile=profile) as lab:
        conf = config(tmp_path, TARGETS)
        # grant: every existing pair granted, the missing mailbox failed, each grant really there
        grant = cli(lab, "grant", "--config", str(conf), "--report", str(tmp_path / "grant.json"), *extra)
        assert grant.returncode == 1, grant.stderr  # the missing mailbox
        found = results(tmp_path / "grant.json")
        assert {found[(m, t)] for m in existing for t in (ADMIN, SERVICE)} == {"granted"}
        assert {found[(TARGETS[-1], t)] for t in (ADMIN, SERVICE)} == {"failed"}
        assert holders(lab, existing, ADMIN) == holders(lab, existing, SERVICE) == set(existing)
        run_id = next(line.split()[1] for line in grant.stderr.splitlines() if line.startswith("run "))

        # audit: compliant but for the missing mailbox (a failed read, not drift)
        audit = cli(lab, "audit", "--config", str(conf), "--format", "json")
        items = json.loads(audit.stdout)["items"]
        assert {i["result"] for i in items if i["mailbox"] in existing} == {"present"}

        # revoke half: really removed (a 2.1 server given a batch of statements would have removed one)
        half = existing[:12]
        revoke = cli(lab, "revoke", "--yes", "--mailbox", *sum((["--mailbox", m] for m in half[1:]), [half[0]]),
                     "--admin-user", ADMIN, "--service-account", SERVICE, "--report", str(tmp_path / "revoke.json"))
        assert revoke.returncode == 0, revoke.stderr
        assert set(results(tmp_path / "revoke.json").values()) == {"removed"}
        assert holders(lab, existing, ADMIN) == holders(lab, existing, SERVICE) == set(existing[12:])

        # reapply --prune with the target list cut to 6: grants the 6 again, prunes the other 6 still granted
        kept = existing[:6]
        conf_kept = config(tmp_path, kept)
        prune = cli(lab, "reapply", "--config", str(conf_kept), "--prune", "--force", "--yes",
                    "--report", str(tmp_path / "prune.json"), *extra)
        assert prune.returncode == 0, prune.stderr
        assert holders(lab, existing, ADMIN) == holders(lab, existing, SERVICE) == set(kept)

        # journal undo of the first grant: removes what that grant made and is still there
        undo = cli(lab, "journal", "undo", run_id, "--config", str(conf), "--yes")
        assert undo.returncode in (0, 1), undo.stderr
        assert holders(lab, existing, ADMIN) == holders(lab, existing, SERVICE) == set()


def test_check_fails_on_automapping_on_2010_sp1_and_names_the_protocol() -> None:
    with running_lab(profile="exchange2010sp1") as lab:
        result = cli(lab, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "PSRP protocol 2.1" in out and "PowerShell 2.0" in out
    fail = [line for line in out.splitlines() if line.startswith("FAIL") and "-AutoMapping" in line]
    assert len(fail) == 1, out
    assert "every Full Access grant it makes is automapped" in fail[0] and "--accept-automapping" in fail[0]


def test_grant_without_automapping_support_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with running_lab(mailboxes=5, profile="exchange2010sp1") as lab:
        before = lab.engine.counters.snapshot()["pipelines"]
        result = cli(lab, "grant", "--mailbox", "user000001@contoso.com", "--service-account", SERVICE)
        assert result.returncode == 2, result.stderr
        # the true sentence (issue 18, part 6): there every grant is automapped; the opt-in accepts exactly that
        assert "every Full Access grant it makes is automapped, and the cmdlet cannot turn that off" in result.stderr
        assert "Exchange 2010 SP2 or later" in result.stderr and "msExchDelegateListLink" in result.stderr
        assert "--accept-automapping" in result.stderr
        assert "maps nothing" not in result.stderr and "--automapping-unsupported-ok" not in result.stderr
        assert lab.engine.counters.snapshot()["pipelines"] == before  # not even a read


@pytest.mark.parametrize("flag", ["--accept-automapping", "--automapping-unsupported-ok"])
def test_accepted_automapping_on_2010_sp1_is_what_exchange_does_the_grant_is_automapped(flag: str) -> None:
    """What the opt-in says is what happens: the grant lands in the mailbox's automapping list
    (msExchDelegateListLink), although the trustee asked for automapping off (the cmdlet there has no switch to
    turn it off). One mailbox: with pipeline input the cmdlet updates that list for the last record only."""
    mailbox = "user000001@contoso.com"
    with running_lab(mailboxes=5, profile="exchange2010sp1") as lab:
        result = cli(lab, "grant", "--mailbox", mailbox, "--admin-user", ADMIN, "--no-automapping", flag)
        assert result.returncode == 0, result.stderr
        deprecated = "warning: --automapping-unsupported-ok is deprecated, use --accept-automapping"
        assert (deprecated in result.stderr) == (flag == "--automapping-unsupported-ok")
        with lab.engine.lock:
            assert lab.engine.directory.has_full_access(mailbox, ADMIN)
            assert any("sync.admin" in d.casefold() for d in lab.engine.directory.delegates_of(mailbox))
    assert "--automapping-unsupported-ok" not in cli_help("grant")  # hidden: only the accurate name is offered
    assert "--accept-automapping" in cli_help("grant")


@pytest.mark.parametrize("profile", ["exchange2010", "exchange2019"])
def test_automapping_grants_link_every_mailbox(profile: str, tmp_path: Path) -> None:
    mailboxes = TARGETS[:8]
    with running_lab(mailboxes=10, profile=profile) as lab:
        result = cli(lab, "grant", "--config", str(config(tmp_path, mailboxes, automapping=True)))
        assert result.returncode == 0, result.stderr
        with lab.engine.lock:
            for mailbox in mailboxes:
                assert any("sync.admin" in d.casefold() for d in lab.engine.directory.delegates_of(mailbox)), mailbox


@pytest.mark.parametrize("profile", ["exchange2010", "exchange2019"])
def test_parallel_reads_give_the_same_exact_outcomes(profile: str, tmp_path: Path) -> None:
    with running_lab(mailboxes=40, profile=profile) as lab:
        conf = config(tmp_path, TARGETS)
        for name in ("grant", "noop"):
            result = cli(lab, "grant", "--config", str(conf), "--parallel", "3", "--batch-size", "5",
                         "--report", str(tmp_path / f"{name}.json"))
            assert result.returncode == 1, result.stderr
            found = results(tmp_path / f"{name}.json")
            expected = "granted" if name == "grant" else "already-present"
            assert {found[(m, t)] for m in TARGETS[:-1] for t in (ADMIN, SERVICE)} == {expected}
            assert {found[(TARGETS[-1], t)] for t in (ADMIN, SERVICE)} == {"failed"}
        assert holders(lab, TARGETS[:-1], ADMIN) == holders(lab, TARGETS[:-1], SERVICE) == set(TARGETS[:-1])
