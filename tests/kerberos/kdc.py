"""A throwaway MIT Kerberos KDC for one test realm on 127.0.0.1, with all its state in one directory.

Nothing is written outside that directory and no root is needed: the database, stash, logs, krb5.conf, ccaches,
keytabs and replay caches all live in it, and every MIT tool and library is pointed at it through the
``KRB5_*`` environment variables returned by :meth:`KDC.env`. ``krb5kdc -n`` runs in the foreground as a child
process; :meth:`KDC.stop` ends it (bounded), and :func:`running_kdc` always calls it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REALM = "PROVISIONER.TEST"
DOMAIN = "provisioner.test"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist", "kvno")
# Debian installs the KDC tools in /usr/sbin, which is not on a non-root user's PATH.
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
ENABLE_HINT = (
    "to run them: apt-get install krb5-kdc krb5-admin-server krb5-user libkrb5-dev faketime, then make test "
    "(it installs the provisioner[kerberos] extra once krb5-config exists; .ci/run does both)"
)


def tool(name: str) -> str | None:
    return shutil.which(name, path=_SEARCH)


def missing_tools() -> list[str]:
    return [name for name in TOOLS if tool(name) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback TCP port with nothing listening (bound then released: a connection to it is refused)."""
    return free_port()


class KDCError(RuntimeError):
    pass


@dataclass
class KDC:
    root: Path
    realm: str = REALM
    domain: str = DOMAIN
    port: int = 0
    clockskew: int = 300
    process: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    # --- files ----------------------------------------------------------------------------------------------------

    @property
    def krb5_conf(self) -> Path:
        return self.root / "krb5.conf"

    @property
    def kdc_conf(self) -> Path:
        return self.root / "kdc.conf"

    @property
    def ccache(self) -> Path:
        return self.root / "ccache"

    @property
    def service_keytab(self) -> Path:
        return self.root / "service.keytab"

    @property
    def rcache_dir(self) -> Path:
        return self.root / "rcache"

    @property
    def log(self) -> Path:
        return self.root / "kdc.log"

    def service_principal(self, host: str = "exch01", service: str = "HTTP") -> str:
        return f"{service}/{host}.{self.domain}@{self.realm}"

    def user_principal(self, name: str) -> str:
        return f"{name}@{self.realm}"

    def write_config(self, *, kdc_port: int | None = None, realm: str | None = None, name: str = "krb5.conf") -> Path:
        """A client/acceptor krb5.conf: no DNS, no hostname canonicalisation, TCP to our KDC.

        ``kdc_port`` and ``realm`` make variants for the failure tests (a closed port; a realm nobody serves).
        """
        port = self.port if kdc_port is None else kdc_port
        default_realm = realm or self.realm
        text = f"""\
[libdefaults]
    default_realm = {default_realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    clockskew = {self.clockskew}
    kdc_timeout = 2s
    max_retries = 1
    default_ccache_name = FILE:{self.ccache}
    default_keytab_name = FILE:{self.service_keytab}
    forwardable = false

[realms]
    {self.realm} = {{
        kdc = 127.0.0.1:{port}
    }}

[domain_realm]
    .{self.domain} = {self.realm}
    {self.domain} = {self.realm}
"""
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def _write_kdc_conf(self) -> None:
        self.kdc_conf.write_text(
            f"""\
[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}

[realms]
    {self.realm} = {{
        database_name = {self.root / "principal"}
        key_stash_file = {self.root / "stash"}
        acl_file = {self.root / "kadm5.acl"}
        max_life = 10h
        max_renewable_life = 1d
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{self.log}
    admin_server = FILE:{self.root / "kadmin.log"}
    default = FILE:{self.root / "krb5lib.log"}
""",
            encoding="utf-8",
        )
        (self.root / "kadm5.acl").write_text("", encoding="utf-8")

    # --- environment ----------------------------------------------------------------------------------------------

    def env(self, base: Mapping[str, str] | None = None, **overrides: str | None) -> dict[str, str]:
        """``base`` (default: this process's environment) with every KRB5_* variable pointing into ``root``.

        ``overrides`` replace or (with None) remove variables, e.g. ``KRB5CCNAME=None``.
        """
        env = dict(os.environ if base is None else base)
        for name in list(env):
            if name.startswith("KRB5"):
                del env[name]
        env.update(
            KRB5_CONFIG=str(self.krb5_conf),
            KRB5_KDC_PROFILE=str(self.kdc_conf),
            KRB5CCNAME=f"FILE:{self.ccache}",
            KRB5_KTNAME=f"FILE:{self.service_keytab}",
            KRB5_CLIENT_KTNAME=f"FILE:{self.root / 'client-default.keytab'}",
            KRB5RCACHEDIR=str(self.rcache_dir),
        )
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def _run(self, args: list[str], *, stdin: str | None = None, timeout: float = 20.0) -> str:
        result = subprocess.run(
            args, input=stdin, capture_output=True, text=True, env=self.env(), timeout=timeout, cwd=self.root,
        )
        if result.returncode != 0:
            raise KDCError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        missing = missing_tools()
        if missing:
            raise KDCError(f"missing {', '.join(missing)}")
        started = time.perf_counter()
        self.root.mkdir(parents=True, exist_ok=True)
        self.rcache_dir.mkdir(exist_ok=True)
        last = ""
        for _ in range(5):  # the port is chosen free, then bound by krb5kdc: retry if something took it meanwhile
            self.port = free_port()
            self._write_kdc_conf()
            self.write_config()
            if not (self.root / "principal").exists():
                master = os.urandom(12).hex()  # the database's master key password: stashed, used nowhere else
                self._run([str(tool("kdb5_util")), "create", "-s", "-r", self.realm, "-P", master])
            self.process = subprocess.Popen(
                [str(tool("krb5kdc")), "-n", "-r", self.realm],
                env=self.env(), cwd=self.root, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    self.timings["setup"] = time.perf_counter() - started
                    return
                time.sleep(0.005)
            last = self._reap()
        raise KDCError(f"krb5kdc did not start: {last}")

    def _reap(self, timeout: float = 5.0) -> str:
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        return stderr.strip()

    def stop(self) -> None:
        started = time.perf_counter()
        self._reap()
        self.timings["teardown"] = time.perf_counter() - started

    # --- principals and tickets -----------------------------------------------------------------------------------

    def kadmin(self, *queries: str) -> None:
        for query in queries:
            self._run([str(tool("kadmin.local")), "-r", self.realm, "-q", query])

    def add_user(self, name: str, password: str) -> str:
        principal = self.user_principal(name)
        # kadmin.local reads the new password from standard input (twice) when -pw is not given
        self._run([str(tool("kadmin.local")), "-r", self.realm, "-q", f"addprinc +requires_preauth {principal}"],
                  stdin=f"{password}\n{password}\n")
        return principal

    def add_service(self, principal: str, keytab: Path | None = None) -> str:
        self.kadmin(f"addprinc -randkey {principal}", f"ktadd -k {keytab or self.service_keytab} {principal}")
        return principal

    def keytab_for(self, principal: str, keytab: Path) -> Path:
        """Export ``principal``'s keys into ``keytab`` (with -norandkey: its password keeps working)."""
        self.kadmin(f"ktadd -norandkey -k {keytab} {principal}")
        return keytab

    def kinit(self, principal: str, password: str, *args: str, ccache: Path | None = None) -> None:
        self._run([str(tool("kinit")), *args, "-c", f"FILE:{ccache or self.ccache}", principal],
                  stdin=password + "\n")


@contextlib.contextmanager
def running_kdc(root: Path, **options: object) -> Iterator[KDC]:
    kdc = KDC(root, **options)  # type: ignore[arg-type]
    try:
        kdc.start()
        yield kdc
    finally:
        kdc.stop()
