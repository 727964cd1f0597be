"""The real CLI against the lab's Exchange Online fake, with certificate auth through the real msal client code:
grant, audit, revoke, reapply --prune and journal undo, with 5% missing mailboxes, injected 429s and 503s, and
each (mailbox, trustee)'s outcome checked in the fake's directory, not only in the CLI's report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from provisioner_lab.exo.rest import ExoFaults
from provisioner_lab.exo.run import ExoLab, running_exo_lab

ROOT = Path(__file__).parent.parent
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
EXISTING = [f"user{i:06d}@contoso.com" for i in range(1, 39)]
MISSING = ["nobody000001@contoso.com", "nobody000002@contoso.com"]  # 2 of 40: 5%
TARGETS = EXISTING[:19] + MISSING[:1] + EXISTING[19:] + MISSING[1:]
FAULTS = ExoFaults(throttle_every=7, unavailable_every=11, batch_unavailable_every=9, retry_after=0.05)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PROVISIONER_PASSWORD"}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


def results(path: Path) -> dict[tuple[str, str], str]:
    return {(i["mailbox"], i["trustee"]): i["result"] for i in json.loads(path.read_text())["items"]}


def holders(lab: ExoLab, trustee: str) -> set[str]:
    with lab.engine.lock:
        return {m for m in EXISTING if lab.engine.directory.has_full_access(m, trustee)}


def config(lab: ExoLab, tmp_path: Path, mailboxes: list[str], *, batch: bool = True, name: str = "p") -> Path:
    users = tmp_path / f"{name}-users.txt"
    users.write_text("\n".join(mailboxes) + "\n", encoding="utf-8")
    path = tmp_path / f"{name}.toml"
    path.write_text(
        lab.config_toml(batch=batch, retry_base_seconds=0.01)
        + f'[trustees]\nadmin_user = "{ADMIN}"\nservice_account = "{SERVICE}"\n'
        + f'[targets]\nusers_file = "{users}"\n'
        + f'[reapply]\njournal = "{tmp_path / "journal.jsonl"}"\nverify_delay_seconds = 0\n'
        + "retry_base_seconds = 0.05\n",
        encoding="utf-8",
    )
    return path


def expect(found: dict[tuple[str, str], str], existing: str, missing: str = "failed") -> None:
    for trustee in (ADMIN, SERVICE):
        assert {found[(m, trustee)] for m in EXISTING} == {existing}, found
        assert {found[(m, trustee)] for m in MISSING} == {missing}, found


def test_grant_audit_revoke_reapply_undo_are_exact_with_throttling_and_missing_mailboxes(tmp_path: Path) -> None:
    with running_exo_lab(mailboxes=60, faults=FAULTS) as lab:
        conf = config(lab, tmp_path, TARGETS)
        grant = cli("grant", "--config", str(conf), "--report", str(tmp_path / "grant.json"))
        assert grant.returncode == 1, grant.stderr  # the missing mailboxes
        expect(results(tmp_path / "grant.json"), "granted")
        assert holders(lab, ADMIN) == holders(lab, SERVICE) == set(EXISTING)
        run_id = next(line.split()[1] for line in grant.stderr.splitlines() if line.startswith("run "))
        counts = lab.requests.snapshot()
        assert counts["status_429"] and counts["status_503"] and counts["batch_503"], counts

        audit = cli("audit", "--config", str(conf), "--format", "json", "--report", str(tmp_path / "audit.json"))
        assert audit.returncode == 1, audit.stderr  # failed reads of the missing mailboxes, no drift
        expect(results(tmp_path / "audit.json"), "present")

        half = EXISTING[:20]
        revoke = cli("revoke", "--yes", "--config", str(config(lab, tmp_path, half + MISSING, name="half")),
                     "--report", str(tmp_path / "revoke.json"))
        assert revoke.returncode == 1, revoke.stderr
        found = results(tmp_path / "revoke.json")
        assert {found[(m, t)] for m in half for t in (ADMIN, SERVICE)} == {"removed"}
        assert {found[(m, t)] for m in MISSING for t in (ADMIN, SERVICE)} == {"failed"}
        assert holders(lab, ADMIN) == holders(lab, SERVICE) == set(EXISTING[20:])

        # reapply: the 20 revoked are granted again (the missing fail), nothing else changes
        again = cli("reapply", "--config", str(conf), "--report", str(tmp_path / "reapply.json"))
        assert again.returncode == 1, again.stderr
        found = results(tmp_path / "reapply.json")
        assert {found[(m, t)] for m in half for t in (ADMIN, SERVICE)} == {"granted"}
        assert {found[(m, t)] for m in EXISTING[20:] for t in (ADMIN, SERVICE)} == {"already-present"}
        assert {found[(m, t)] for m in MISSING for t in (ADMIN, SERVICE)} == {"failed"}
        assert holders(lab, ADMIN) == holders(lab, SERVICE) == set(EXISTING)

        # reapply --prune with the targets cut to 6: the others lose the managed trustees' explicit access
        kept = EXISTING[:6]
        prune = cli("reapply", "--config", str(config(lab, tmp_path, kept, name="kept")), "--prune", "--force", "--yes",
                    "--report", str(tmp_path / "prune.json"))
        assert prune.returncode == 0, prune.stderr
        assert holders(lab, ADMIN) == holders(lab, SERVICE) == set(kept)

        # journal undo of the first grant: removes what it made and is still there
        undo = cli("journal", "undo", run_id, "--config", str(conf), "--yes")
        assert undo.returncode in (0, 1), undo.stderr
        assert holders(lab, ADMIN) == holders(lab, SERVICE) == set()


@pytest.mark.parametrize("batch", [False, True])
def test_requests_per_pair_with_and_without_batch(batch: bool, tmp_path: Path) -> None:
    with running_exo_lab(mailboxes=60) as lab:
        conf = config(lab, tmp_path, TARGETS, batch=batch)
        lab.requests.reset()
        grant = cli("grant", "--config", str(conf), "--report", str(tmp_path / "grant.json"))
        assert grant.returncode == 1, grant.stderr
        expect(results(tmp_path / "grant.json"), "granted")
        counts = lab.requests.snapshot()
        rest = counts.get("invoke", 0) + counts.get("batch", 0)
        pairs = len(TARGETS) * 2
        # one lookup per target (each input must name exactly one mailbox; the report's MAPI-profile names come from
        # it too), one check per trustee, then a read and a grant per pair of an existing mailbox; $batch packs 10
        # calls into one request
        existing = pairs - 2 * len(MISSING)
        assert counts.get("batch_items", 0) + counts.get("invoke", 0) == len(TARGETS) + 2 + existing + existing
        assert (rest / pairs < 0.35) if batch else (rest / pairs > 1.9), counts
        assert len(set(lab.requests.request_ids)) == len(lab.requests.request_ids)  # a fresh id per request
        assert set(lab.requests.anchors) == {f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@"
                                             f"{lab.tenant_id}"}


def test_check_passes_and_names_the_tenant_guid(tmp_path: Path) -> None:
    with running_exo_lab(mailboxes=3) as lab:
        result = cli("check", "--config", str(config(lab, tmp_path, EXISTING[:1])))
    assert result.returncode == 0, result.stdout + result.stderr
    assert lab.tenant_id in result.stdout and "Exchange.ManageAsApp" in result.stdout


def test_check_fails_on_a_cmdlet_the_role_lacks_and_without_consent(tmp_path: Path) -> None:
    reads = frozenset({"Get-Mailbox", "Get-MailboxPermission"})
    with running_exo_lab(mailboxes=3, cmdlets=reads, consented=True) as lab:
        result = cli("check", "--config", str(config(lab, tmp_path, EXISTING[:1])))
    assert result.returncode == 1
    failing = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 2 and all("403" in line for line in failing), result.stdout
    with running_exo_lab(mailboxes=3, consented=False) as lab:
        result = cli("check", "--config", str(config(lab, tmp_path, EXISTING[:1], name="q")))
    assert result.returncode != 0
    assert "FAIL token roles: none" in result.stdout or "401" in result.stdout + result.stderr


def test_an_unregistered_certificate_is_exit_4_and_nothing_secret_is_printed(tmp_path: Path) -> None:
    with running_exo_lab(mailboxes=3) as lab:
        conf = config(lab, tmp_path, EXISTING[:2])
        other = tmp_path / "other.pem"
        from provisioner_lab.exo.pki import make_app_certificate

        other.write_text(make_app_certificate().pem, encoding="ascii")
        text = conf.read_text().replace(str(lab.certificate), str(other))
        conf.write_text(text)
        result = cli("grant", "--config", str(conf))
        assert result.returncode == 4, result.stderr
        assert "AADSTS700027" in result.stderr
        output = result.stdout + result.stderr
        assert "PRIVATE KEY" not in output and "eyJ" not in output
        assert lab.requests.snapshot().get("invoke", 0) == 0


def test_dry_run_script_connects_with_the_v3_module(tmp_path: Path) -> None:
    with running_exo_lab(mailboxes=3) as lab:
        result = cli("grant", "--config", str(config(lab, tmp_path, EXISTING[:2])), "--dry-run")
    assert result.returncode == 0, result.stderr
    connect = next(line for line in result.stdout.splitlines() if line.startswith("Connect-ExchangeOnline"))
    assert f"-AppId '{lab.app_id}'" in connect and "-Organization 'contoso.onmicrosoft.com'" in connect
    assert "-CertificateThumbprint '" in connect
    assert "Add-MailboxPermission -Identity 'user000001@contoso.com'" in result.stdout
    assert "-DomainController" not in result.stdout and "PRIVATE KEY" not in result.stdout


def test_a_saved_plan_applies_exactly_on_exchange_online_and_refuses_when_moved(tmp_path: Path) -> None:
    with running_exo_lab(mailboxes=45, faults=FAULTS) as lab:
        conf = config(lab, tmp_path, TARGETS)
        plan = tmp_path / "change.plan"
        planned = cli("plan", "grant", "--config", str(conf), "--out", str(plan))
        assert planned.returncode == 1, planned.stderr  # the missing mailboxes are unknown/failed reads
        changes = json.loads(plan.read_text())["body"]["changes"]
        assert len(changes) == 2 * len(EXISTING)
        assert "Connect-ExchangeOnline" in (tmp_path / "change.plan.ps1").read_text(encoding="utf-8-sig")
        assert holders(lab, SERVICE) == set()

        first = cli("grant", "--config", str(config(lab, tmp_path, EXISTING[:1], name="one")))
        assert first.returncode == 0, first.stderr  # someone grants one pair first: the plan moved
        refused = cli("apply", str(plan), "--config", str(conf))
        assert refused.returncode == 7, refused.stderr
        assert f"{EXISTING[0]} / {ADMIN}: planned grant, but Full Access is already there" in refused.stderr
        assert holders(lab, SERVICE) == {EXISTING[0]}

        allowed = cli("apply", str(plan), "--config", str(conf), "--allow-drift", "--report", str(tmp_path / "a.json"))
        assert allowed.returncode == 0, allowed.stderr
        assert holders(lab, ADMIN) == holders(lab, SERVICE) == set(EXISTING)
        found = results(tmp_path / "a.json")
        assert {found[(m, t)] for m in EXISTING[1:] for t in (ADMIN, SERVICE)} == {"granted"}
        assert {found[(EXISTING[0], t)] for t in (ADMIN, SERVICE)} == {"already-present"}
