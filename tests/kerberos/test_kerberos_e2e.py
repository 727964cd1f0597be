"""The real CLI over Kerberos against the lab, with tickets from a real MIT KDC (see conftest.py).

Grants through a ticket cache, a client keytab and a password; the SPN override (connect to 127.0.0.1, ticket for
HTTP/exch01.provisioner.test); WinRM message encryption over http; and each common failure with its one-sentence
diagnosis and exit 4. Outcomes are checked in the lab's organisation, not only in the CLI's text.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.kerberos.conftest import (
    ALICE,
    ALICE_PASSWORD,
    SERVICE_ACCOUNT,
    SPN_HOST,
    TRUSTEE,
    Client,
    faketime_library,
    skip_or_fail,
)
from tests.kerberos.kdc import KDC, closed_port, tool

CONNECTION_FAILURE = 4


def has(client: Client, mailbox: str, trustee: str = TRUSTEE) -> bool:
    return client.lab.engine.directory.has_full_access(mailbox, trustee)


def klist(client: Client, *args: str) -> str:
    result = subprocess.run(
        [str(tool("klist")), *args, "-c", f"FILE:{client.ccache}"], capture_output=True, text=True,
        env=client.env(), timeout=10,
    )
    return result.stdout


def diagnosis(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's error line; asserts exit 4, no traceback, and nothing on stdout."""
    assert result.returncode == CONNECTION_FAILURE, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def assert_all_encrypted(client: Client) -> None:
    counters = client.lab.server.counters
    assert counters["total"] > 0
    assert counters["encrypted"] == counters["total"]  # every WS-Management request, over plain http


# --- success: ticket cache, keytab, password ---------------------------------------------------------------------


def test_grant_check_and_reapply_with_the_ticket_cache_by_default(client: Client, tmp_path: Path) -> None:
    client.kinit()
    grant = client.run("grant", "-m", "bob.meyer", "--service-account", TRUSTEE)  # no --auth: Kerberos is the default
    assert grant.returncode == 0, grant.stderr
    assert has(client, "bob.meyer")
    assert_all_encrypted(client)
    # the SPN override: we connected to 127.0.0.1 but the ticket is for the registered name
    assert f"HTTP/{SPN_HOST}@" in klist(client)
    shells = client.lab.server.counters["Create"]
    assert shells >= 1

    check = client.run("check")
    assert check.returncode == 0, check.stderr
    assert "reachable, authenticated (kerberos)" in check.stdout

    config = tmp_path / "reapply.toml"
    config.write_text(
        f'[connection]\nspn_hostname = "{SPN_HOST}"\n'
        f'[trustees]\nservice_account = "{TRUSTEE}"\n'
        '[targets]\nmailboxes = ["alice.wong", "bob.meyer"]\n'
        '[reapply]\njournal = "journal.jsonl"\nretry_base_seconds = 0.05\nverify_delay_seconds = 0.1\n',
        encoding="utf-8",
    )
    reapply = client.run("reapply", "--config", str(config))
    assert reapply.returncode == 0, reapply.stderr
    assert has(client, "alice.wong") and has(client, "bob.meyer")
    assert_all_encrypted(client)


def test_grant_with_a_client_keytab_needs_no_kinit_and_no_password(client: Client, kdc: KDC, tmp_path: Path) -> None:
    keytab = kdc.keytab_for(kdc.user_principal(SERVICE_ACCOUNT), tmp_path / "svc-sync.keytab")
    config = tmp_path / "job.toml"
    config.write_text(  # the keytab path is relative to the config file
        f'[connection]\nauth = "kerberos"\nkeytab = "{keytab.name}"\nprincipal = "{SERVICE_ACCOUNT}@{kdc.realm}"\n',
        encoding="utf-8",
    )
    result = client.run("grant", "--config", str(config), "-m", "carol.diaz", "--service-account", TRUSTEE)
    assert result.returncode == 0, result.stderr
    assert has(client, "carol.diaz")
    assert_all_encrypted(client)
    assert not client.ccache.exists()  # the keytab's tickets live in a private in-memory cache

    # the principal may be left out: MIT takes the keytab's first one
    again = client.run("check", "--keytab", str(keytab))
    assert again.returncode == 0, again.stderr
    assert not client.ccache.exists()


def test_grant_with_username_and_password(client: Client, kdc: KDC) -> None:
    result = client.run(
        "grant", "-m", "dave.okafor", "--service-account", TRUSTEE, "--username", kdc.user_principal(ALICE),
        password=ALICE_PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert has(client, "dave.okafor")
    assert_all_encrypted(client)
    assert ALICE_PASSWORD not in result.stdout + result.stderr


def test_negotiate_carries_kerberos_inside_spnego(client: Client, kdc: KDC) -> None:
    user = kdc.user_principal(ALICE)
    result = client.run("check", "--auth", "negotiate", "--username", user, password=ALICE_PASSWORD)
    assert result.returncode == 0, result.stderr  # the lab has no NTLM account for alice: this was Kerberos
    assert_all_encrypted(client)


# --- failures: one sentence and the fix, exit 4 --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "grant", "audit", "revoke", "reapply"])
def test_no_ticket_cache(client: Client, command: str) -> None:
    args = [command] if command == "check" else [command, "-m", "bob.meyer", "--service-account", TRUSTEE]
    if command == "reapply":
        args += ["--lock-file", str(client.tmp / "reapply.lock")]
    if command == "revoke":
        args.append("--yes")
    line = diagnosis(client.run(*args))
    assert "there is no Kerberos ticket in" in line and str(client.ccache) in line
    assert "kinit" in line and "--keytab" in line
    assert client.lab.server.counters["total"] == 0


def test_expired_ticket(client: Client) -> None:
    client.kinit(ALICE, ALICE_PASSWORD, "-l", "1s")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and subprocess.run(
        [str(tool("klist")), "-s", "-c", f"FILE:{client.ccache}"], env=client.env(), timeout=10
    ).returncode == 0:
        time.sleep(0.2)
    line = diagnosis(client.run("check"))
    assert "the Kerberos ticket has expired" in line and "kinit" in line and "keytab" in line


def test_connecting_by_ip_without_the_spn_override_names_the_missing_spn(client: Client) -> None:
    client.kinit()
    line = diagnosis(client.run("check", spn_hostname=None))
    assert "the KDC knows no service principal HTTP/127.0.0.1" in line
    assert "FQDN" in line and "--spn-hostname" in line


def test_spn_not_registered(client: Client) -> None:
    client.kinit()
    line = diagnosis(client.run("check", spn_hostname="nlb-exchange.provisioner.test"))
    assert "no service principal HTTP/nlb-exchange.provisioner.test" in line


def test_wrong_password(client: Client, kdc: KDC) -> None:
    result = client.run("check", "--username", kdc.user_principal(ALICE), password="not-the-password")
    line = diagnosis(result)
    assert f"the KDC rejected the password for {kdc.user_principal(ALICE)}" in line
    assert "not-the-password" not in result.stdout + result.stderr


def test_keytab_older_than_the_password(client: Client, kdc: KDC, tmp_path: Path) -> None:
    principal = kdc.add_user("svc-rotated", "First-Secret-1")
    keytab = kdc.keytab_for(principal, tmp_path / "rotated.keytab")
    kdc.kadmin(f"cpw -randkey {principal}")  # the account's password changed after the keytab was made
    line = diagnosis(client.run("check", "--keytab", str(keytab), "--principal", principal))
    assert "the password changed after the keytab was made" in line


def test_principal_not_in_the_keytab(client: Client, kdc: KDC, tmp_path: Path) -> None:
    keytab = kdc.keytab_for(kdc.user_principal(SERVICE_ACCOUNT), tmp_path / "svc.keytab")
    line = diagnosis(client.run("check", "--keytab", str(keytab), "--principal", kdc.user_principal(ALICE)))
    assert f"gave no Kerberos ticket for {kdc.user_principal(ALICE)}" in line and "klist -k" in line


def test_kdc_unreachable(client: Client, kdc: KDC) -> None:
    client.kinit()  # a TGT, but the service ticket needs the KDC, which is now at a closed port
    config = kdc.write_config(kdc_port=closed_port(), name="krb5-closed.conf")
    started = time.monotonic()
    line = diagnosis(client.run("check", env=client.env(KRB5_CONFIG=str(config))))
    assert "no KDC for the realm could be reached" in line and "krb5.conf" in line
    assert time.monotonic() - started < 30


def test_kdc_unreachable_for_a_password_login(client: Client, kdc: KDC) -> None:
    config = kdc.write_config(kdc_port=closed_port(), name="krb5-closed.conf")
    env = client.env(ALICE_PASSWORD, KRB5_CONFIG=str(config))
    line = diagnosis(client.run("check", "--username", kdc.user_principal(ALICE), env=env))
    assert f"no KDC for realm {kdc.realm} could be reached" in line


def test_realm_unknown(client: Client) -> None:
    result = client.run("check", "--username", "alice@NOWHERE.TEST", password=ALICE_PASSWORD)
    line = diagnosis(result)
    assert "Kerberos does not know the realm NOWHERE.TEST" in line and "[realms]" in line


def test_unknown_user(client: Client, kdc: KDC) -> None:
    line = diagnosis(client.run("check", "--username", kdc.user_principal("nobody"), password="x"))
    assert f"the KDC does not know the principal {kdc.user_principal('nobody')}" in line


def test_postdated_ticket_is_not_yet_valid(client: Client) -> None:
    client.kinit(ALICE, ALICE_PASSWORD, "-s", "1h")  # a ticket that starts in an hour: what a slow clock sees
    line = diagnosis(client.run("check"))
    assert "the Kerberos ticket is not valid yet" in line and "clock" in line


# --- a wrong clock on the client (libfaketime) ---------------------------------------------------------------------


@pytest.fixture
def faketime() -> str:
    library = faketime_library()
    if library is None:
        skip_or_fail("needs libfaketime to run the client with a wrong clock: apt-get install faketime (.ci/run does)")
    return library


def wrong_clock(client: Client, library: str, offset: str) -> dict[str, str]:
    return client.env(LD_PRELOAD=library, FAKETIME=offset, DONT_FAKE_MONOTONIC="1")


def test_clock_ahead_rejected_by_the_kdc(client: Client, faketime: str) -> None:
    client.kinit()  # a TGT only: the service ticket request carries the wrong time to the KDC
    line = diagnosis(client.run("check", env=wrong_clock(client, faketime, "+1h")))
    assert "clock differs from the KDC's or the server's" in line and "Clock skew too great" in line


def test_clock_ahead_rejected_by_the_server(client: Client, faketime: str) -> None:
    client.kinit()
    assert client.run("check").returncode == 0  # now the cache holds the service ticket too
    line = diagnosis(client.run("check", env=wrong_clock(client, faketime, "+1h")))
    assert "Clock skew too great" in line  # from the lab's KRB-ERROR token, as a Windows server sends it


def test_clock_behind(client: Client, faketime: str) -> None:
    client.kinit()
    line = diagnosis(client.run("check", env=wrong_clock(client, faketime, "-1h")))
    assert "clock" in line and ("not valid yet" in line or "Clock skew too great" in line)
