"""Fixtures for the Kerberos tests: a real MIT KDC for PROVISIONER.TEST on 127.0.0.1 and a lab that accepts Kerberos.

The KDC (one per test session) holds the lab's service principal ``HTTP/exch01.provisioner.test`` (its keytab is
the lab's) and the users of the tests. Each test gets its own ticket cache in its tmp_path, so tests do not see
each other's tickets. The tests that need the KDC skip, saying how to enable them, when the MIT tools or the
python gssapi/krb5 bindings are missing; ``.ci/run`` installs both and sets ``PROVISIONER_REQUIRE_KERBEROS=1``,
which makes such a skip a failure.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from provisioner_lab.auth import KerberosAcceptor
from provisioner_lab.run import Lab, running_lab

from tests.kerberos.kdc import ENABLE_HINT, KDC, missing_tools, running_kdc

ROOT = Path(__file__).parent.parent.parent
SPN_HOST = "exch01.provisioner.test"
ALICE, ALICE_PASSWORD = "alice", "Al1ce-Kerberos-Secret"  # an admin who runs kinit
SERVICE_ACCOUNT, SERVICE_PASSWORD = "svc-sync", "Svc-Kerberos-Secret"  # the scheduled job's account (keytab)
TRUSTEE = "svc-codetwo@contoso.com"


def _gssapi_problem() -> str | None:
    try:
        import spnego._gss as gss
    except ImportError as exc:  # pragma: no cover - pyspnego is a dependency
        return str(exc)
    return None if gss.HAS_GSSAPI and gss.HAS_IOV else f"python gssapi/krb5 unavailable ({gss.GSSAPI_IMP_ERR})"


def skip_reason() -> str | None:
    missing = missing_tools()
    problem = f"MIT Kerberos tools missing: {', '.join(missing)}" if missing else _gssapi_problem()
    return f"{problem}; {ENABLE_HINT}" if problem else None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("PROVISIONER_REQUIRE_KERBEROS") == "1":
        pytest.fail(f"PROVISIONER_REQUIRE_KERBEROS=1 but {reason}")
    pytest.skip(reason)


def faketime_library() -> str | None:
    """libfaketime (Debian package faketime), to run the client with a wrong clock."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


@pytest.fixture(scope="session")
def kdc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KDC]:
    reason = skip_reason()
    if reason:
        skip_or_fail(reason)
    with running_kdc(tmp_path_factory.mktemp("kdc")) as running:
        running.add_service(running.service_principal())
        running.add_user(ALICE, ALICE_PASSWORD)
        running.add_user(SERVICE_ACCOUNT, SERVICE_PASSWORD)
        yield running


@pytest.fixture
def kerberos_lab(kdc: KDC) -> Iterator[Lab]:
    acceptor = KerberosAcceptor(str(kdc.service_keytab), str(kdc.krb5_conf), str(kdc.rcache_dir))
    with running_lab(kerberos=acceptor) as lab:
        yield lab


@dataclass
class Client:
    """Runs the real CLI as a subprocess with this test's own ticket cache and the KDC's krb5.conf."""

    kdc: KDC
    lab: Lab
    tmp: Path

    @property
    def ccache(self) -> Path:
        return self.tmp / "ccache"

    def kinit(self, name: str = ALICE, password: str = ALICE_PASSWORD, *args: str) -> None:
        self.kdc.kinit(self.kdc.user_principal(name), password, *args, ccache=self.ccache)

    def env(self, password: str | None = None, **overrides: str | None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k != "PROVISIONER_PASSWORD"}
        env = self.kdc.env(base, KRB5CCNAME=f"FILE:{self.ccache}", **overrides)
        env["PYTHONIOENCODING"] = "utf-8"
        if password is not None:
            env["PROVISIONER_PASSWORD"] = password
        return env

    def connection_args(self, spn_hostname: str | None = SPN_HOST) -> list[str]:
        args = ["--server", "127.0.0.1", "--port", str(self.lab.port)]
        return [*args, "--spn-hostname", spn_hostname] if spn_hostname else args

    def run(
        self, *args: str, password: str | None = None, spn_hostname: str | None = SPN_HOST,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "provisioner", *args, *self.connection_args(spn_hostname)],
            capture_output=True, text=True, cwd=ROOT, env=env or self.env(password), timeout=60,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def client(kdc: KDC, kerberos_lab: Lab, tmp_path: Path) -> Client:
    return Client(kdc, kerberos_lab, tmp_path)
