"""Secrets: the admin password never reaches an output, a log, a file the tool writes, the process list or an
exception text; the files the tool writes are owner-only; unsafe transport settings are refused or warned about.

Every command runs as the real CLI (a subprocess) with ``-v`` (DEBUG logs of provisioner, pypsrp,
requests/urllib3 and spnego) against a lab whose only user has a known, distinctive password, over NTLM and
over Basic (``--insecure-lab``), on success and on wrong-password paths. The password is searched for as text
and in the forms the protocols transform it into: UTF-16LE (NTLM), base64 of ``user:password`` (Basic), base64
and hex of each, and the NT hash.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from provisioner_lab.ntlmhash import nt_hash as ntowfv1
from provisioner_lab.run import Lab, running_lab
from typer.testing import CliRunner

from provisioner.cli import app
from provisioner.errors import ConnectionFailure, InputError
from provisioner.inputs.config import Connection
from provisioner.transport.psrp import connect as session

ROOT = Path(__file__).parent.parent
USER = "lab-admin"
SECRET = "Zq8!Prov-Sentinel-Pa55phrase-4471"
WRONG = "Wr0ng!Prov-Sentinel-Guess-9902"
SERVICE, ADMIN = "svc-codetwo@contoso.com", "sync.admin@contoso.com"


def _base64_cores(data: bytes) -> list[bytes]:
    """Base64 of ``data`` at each of the three alignments it can have inside a longer value, minus the edge
    characters that depend on the neighbouring bytes: whichever way it was embedded, one of these appears."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data)
        start = 4 if shift else 0
        cores.append(encoded[start : len(encoded) - 4])
    return cores


def secret_forms(secret: str) -> list[bytes]:
    utf8, utf16 = secret.encode("utf-8"), secret.encode("utf-16-le")
    forms = [utf8, utf16, utf8.hex().encode(), utf16.hex().encode(), utf8.hex().upper().encode()]
    forms += _base64_cores(utf8) + _base64_cores(utf16)
    forms.append(base64.b64encode(f"{USER}:{secret}".encode()))  # exactly what Basic sends
    nt_hash = ntowfv1(secret)
    forms += [nt_hash, nt_hash.hex().encode(), nt_hash.hex().upper().encode()]
    return forms


FORMS = {secret: secret_forms(secret) for secret in (SECRET, WRONG)}


def leaks(data: bytes | str) -> list[str]:
    """Which secret forms ``data`` contains (none, we hope)."""
    blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    found = []
    for secret, forms in FORMS.items():
        for form in forms:
            if form in blob:
                found.append(f"{secret!r} as {form[:24]!r}")
    return found


def test_the_leak_detector_sees_every_form() -> None:
    basic = f"Authorization: Basic {base64.b64encode(f'{USER}:{SECRET}'.encode()).decode()}"
    assert leaks(basic)
    assert leaks(b"xx" + SECRET.encode("utf-16-le") + b"yy")
    for prefix in (b"", b"a", b"ab", b"abc"):
        assert leaks(base64.b64encode(prefix + SECRET.encode()))
        assert leaks(base64.b64encode(prefix + SECRET.encode("utf-16-le")))
    assert leaks(ntowfv1(SECRET).hex())
    assert not leaks("Zq8!Prov-Sentinel" + " " + "Pa55phrase-4471")


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(users={USER: SECRET}) as running:
        running.password = SECRET
        yield running


def env_with(password: str | None, extra_path: Path | None = None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != session.PASSWORD_ENV}
    if password is not None:
        env[session.PASSWORD_ENV] = password
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (extra_path, ROOT) if p is not None)
    return env


@dataclass
class Started:
    args: tuple[str, ...]
    process: subprocess.Popen[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]

    @staticmethod
    def text(handle: IO[bytes]) -> str:
        handle.seek(0)
        data = handle.read()
        handle.close()
        return data.decode("utf-8", "surrogateescape")


class Runs:
    """Runs the CLI, keeping everything it printed."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        self.outputs: list[tuple[tuple[str, ...], str]] = []

    def start(self, *args: str, auth: str | None = "ntlm", password: str | None = SECRET,
              extra_path: Path | None = None) -> Started:
        connection = self.lab.cli_args(auth) if auth else []
        # Output to files, not pipes: a -v run writes more than a pipe holds while other runs are waited for.
        stdout, stderr = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish)
        process = subprocess.Popen(
            (sys.executable, "-m", "provisioner", "-v", *args, *connection), stdout=stdout, stderr=stderr,
            cwd=self.workdir, env=env_with(password, extra_path), stdin=subprocess.DEVNULL,
        )
        return Started(args, process, stdout, stderr)

    def finish(self, started: Started, expect: int) -> subprocess.CompletedProcess[str]:
        started.process.wait(timeout=120)
        stdout, stderr = (started.text(handle) for handle in (started.stdout, started.stderr))
        self.outputs.append((started.args, stdout + stderr))
        assert started.process.returncode == expect, (started.args, stderr[-3000:])
        assert "Traceback" not in stderr, stderr[-3000:]
        return subprocess.CompletedProcess(started.args, expect, stdout, stderr)

    def __call__(self, *args: str, expect: int = 0, **options: Any) -> subprocess.CompletedProcess[str]:
        return self.finish(self.start(*args, **options), expect)


def written_files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def reapply_config(lab: Lab, workdir: Path) -> Path:
    config = workdir / "provisioner.toml"
    config.write_text(lab.config_toml("ntlm") + f'''
[trustees]
admin_user = "{ADMIN}"
service_account = "{SERVICE}"
[targets]
mailboxes = ["heidi.schmidt", "carol.diaz"]
[reapply]
journal = "state/journal.jsonl"
report = "state/reapply-report.json"
metrics_file = "state/metrics.prom"
retry_base_seconds = 0.05
verify_delay_seconds = 0.1
''', encoding="utf-8")
    return config


# ------------------------------------------------------------------------------------------ every command
def test_no_command_leaks_the_password_anywhere(lab: Lab, tmp_path: Path) -> None:
    run = Runs(lab, tmp_path)
    config = reapply_config(lab, tmp_path)
    secret_free_before = written_files(tmp_path)
    assert not any(leaks(data) for data in secret_free_before.values())

    # Independent runs, started together: reads, dry-runs and the failure paths (a wrong password over each
    # auth; no password at all, non-interactive, is refused before connecting).
    independent = [
        (run.start("check"), 0),
        (run.start("grant", "-m", "bob.meyer", "--service-account", SERVICE, "--dry-run", "--script", "grant.ps1",
                   auth="basic"), 0),
        (run.start("audit", "-m", "alice.wong", "-m", "bob.meyer", "--service-account", SERVICE, "--format", "json",
                   "--report", "audit.json", auth="basic"), 3),
        (run.start("grant", "-m", "bob.meyer", "--service-account", SERVICE, password=WRONG), 4),
        (run.start("check", auth="basic", password=WRONG), 4),
        (run.start("grant", "-m", "bob.meyer", "--service-account", SERVICE, password=None), 2),
    ]
    check, _, _, wrong, _, missing = (run.finish(process, expect) for process, expect in independent)
    assert "NoLanguage" in check.stdout
    assert "DEBUG" in check.stderr and "pypsrp" in check.stderr  # -v really logs the transport
    assert "authentication" in wrong.stderr
    assert session.PASSWORD_ENV in missing.stderr

    # Changes, in order: grant (NTLM), revoke (Basic), the scheduled job and the undo of its run.
    run("grant", "-m", "alice.wong", "--service-account", SERVICE, "--report", "grant.json")
    run("revoke", "--yes", "-m", "alice.wong", "--service-account", SERVICE, "--report", "revoke.json", auth="basic")
    run("reapply", "--config", str(config), "--dry-run", "--script", "reapply.ps1", auth=None)
    run("reapply", "--config", str(config), auth=None)
    run_id = json.loads((tmp_path / "state" / "reapply-report.json").read_text())["run_id"]
    run("reapply", "--config", str(config), "--report", "failed.json", auth=None, password=WRONG, expect=4)
    run("journal", "undo", run_id, "--config", str(config), "--yes", password=WRONG, expect=4)
    listed = run("journal", "list", "--config", str(config), auth=None)
    assert run_id in listed.stdout
    run("journal", "undo", run_id, "--config", str(config), "--dry-run", "--offline", "--script", "undo.ps1",
        auth=None)
    run("journal", "undo", run_id, "--config", str(config), "--yes", "--report", "undo.json")

    assert len(run.outputs) == 15
    for args, output in run.outputs:
        assert not leaks(output), (args, leaks(output))
    files = written_files(tmp_path)
    names = {path.relative_to(tmp_path).as_posix() for path in files}
    assert {"grant.json", "grant.ps1", "audit.json", "revoke.json", "reapply.ps1", "undo.ps1",
            "undo.json", "state/journal.jsonl", "state/journal.jsonl.lock", "state/reapply-report.json",
            "state/metrics.prom"} <= names, names
    assert not [name for name in names if name.endswith(".tmp")]
    for path, data in files.items():
        assert not leaks(data), (path, leaks(data))

    # Owner-only files, except the metrics (read by node_exporter; counts only).
    for path in files:
        if path.name in ("provisioner.toml",):
            continue  # written by this test
        expected = 0o644 if path.name == "metrics.prom" else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, (path, oct(path.stat().st_mode))


@pytest.mark.parametrize(
    "command", [["grant"], ["revoke"], ["audit"], ["reapply"], ["check"], ["journal", "undo", "x"]], ids=" ".join
)
def test_there_is_no_password_option(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--password", "not-the-secret"])
    assert result.exit_code == 2, result.output
    assert "No such option" in result.output and "--password" in result.output
    assert "not-the-secret" not in result.output


def test_a_running_cli_shows_no_password_in_the_process_list(lab: Lab, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "provisioner", "-v", "audit", "-m", "alice.wong", "-m", "bob.meyer",
               "--service-account", SERVICE, "--admin-user", ADMIN, "--batch-size", "1", *lab.cli_args("ntlm")]
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed by Started.text)
    process = subprocess.Popen(command, cwd=tmp_path, env=env_with(SECRET), stdout=out, stderr=err,
                               stdin=subprocess.DEVNULL)
    seen: list[bytes] = []
    try:
        polls = 0
        while process.poll() is None:
            try:
                seen.append(Path(f"/proc/{process.pid}/cmdline").read_bytes())
            except OSError:
                break
            if polls % 10 == 0:
                seen.append(subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, timeout=30).stdout)
            polls += 1
            time.sleep(0.02)
        process.wait(timeout=60)
        stdout, stderr = (Started.text(handle).encode("utf-8", "surrogateescape") for handle in (out, err))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, stderr[-2000:].decode()
    assert len(seen) >= 4
    assert any(b"audit" in snapshot for snapshot in seen)  # the snapshots did catch the running CLI
    for snapshot in [*seen, stdout, stderr]:
        assert not leaks(snapshot)


# ------------------------------------------------------------------------------------------ exception texts
def _all_texts(exc: BaseException) -> str:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    texts = ["".join(traceback.format_exception(item)) for item in chain]
    texts += [repr(item) + repr(getattr(item, "args", ())) for item in chain]
    return "\n".join(texts)


@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_connection_failures_carry_no_password(lab: Lab, auth: str) -> None:
    connection = Connection(server="127.0.0.1", port=lab.port, auth=auth, username=USER,
                            insecure_lab=True, configuration_name=lab.server.configuration_name)
    with pytest.raises(ConnectionFailure) as caught, session.open_pool(connection, WRONG):
        pass
    assert "authentication" in str(caught.value)
    assert not leaks(_all_texts(caught.value))
    wrong_path = Connection(server="127.0.0.1", port=lab.port, auth=auth, username=USER,
                            insecure_lab=True, path="wsman-nowhere")
    with pytest.raises(ConnectionFailure) as caught, session.open_pool(wrong_path, SECRET):
        pass
    assert not leaks(_all_texts(caught.value))


# ------------------------------------------------------------------------------------------------ keyring
class FakeKeyring:
    def __init__(self, store: dict[tuple[str, str], str], error: Exception | None = None) -> None:
        self.store = store
        self.error = error
        self.calls: list[tuple[str, str]] = []

    def get_password(self, service: str, username: str) -> str | None:
        self.calls.append((service, username))
        if self.error is not None:
            raise self.error
        return self.store.get((service, username))


KEYRING_CONNECTION = Connection(server="x", auth="ntlm", username=USER, keyring_service="provisioner")


def test_the_password_comes_from_the_keyring_when_the_environment_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKeyring({("provisioner", USER): SECRET})
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.delenv(session.PASSWORD_ENV, raising=False)
    assert session.resolve_password(KEYRING_CONNECTION, prompt=None) == SECRET
    assert fake.calls == [("provisioner", USER)]
    monkeypatch.setenv(session.PASSWORD_ENV, "from-env")
    assert session.resolve_password(KEYRING_CONNECTION) == "from-env"  # the environment wins
    assert len(fake.calls) == 1
    monkeypatch.delenv(session.PASSWORD_ENV)
    assert session.resolve_password(Connection(server="x", auth="ntlm", username=USER), prompt=lambda _: "typed") == (
        "typed"
    )  # no keyring_service: the keyring is not asked
    assert len(fake.calls) == 1


def test_keyring_problems_are_clean_input_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(session.PASSWORD_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "keyring", None)  # not installed: import fails
    with pytest.raises(InputError, match=r"'keyring' package is not installed"):
        session.resolve_password(KEYRING_CONNECTION)
    monkeypatch.setitem(sys.modules, "keyring", FakeKeyring({}, error=RuntimeError(f"backend said {SECRET}")))
    with pytest.raises(InputError) as caught:
        session.resolve_password(KEYRING_CONNECTION)
    assert "OS keyring" in str(caught.value) and not leaks(_all_texts(caught.value))
    monkeypatch.setitem(sys.modules, "keyring", FakeKeyring({}))  # no entry, not interactive
    with pytest.raises(InputError, match="needs a password"):
        session.resolve_password(KEYRING_CONNECTION)


def test_the_cli_reads_the_keyring_and_warns_while_tls_validation_is_off(lab: Lab, tmp_path: Path) -> None:
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "keyring.py").write_text(
        "def get_password(service, username):\n"
        f"    return {SECRET!r} if (service, username) == ('provisioner-lab', {USER!r}) else None\n",
        encoding="utf-8",
    )
    work = tmp_path / "work"
    work.mkdir()
    config = work / "provisioner.toml"
    config.write_text(lab.config_toml("ntlm") + 'keyring_service = "provisioner-lab"\ncert_validation = false\n',
                      encoding="utf-8")
    run = Runs(lab, work)
    checked = run("check", "--config", str(config), auth=None, password=None, extra_path=stub)
    assert "NoLanguage" in checked.stdout
    offline = run("grant", "--config", str(config), "--offline", "--dry-run", "-m", "a", "--service-account", "b",
                  auth=None, password=None)
    for result in (checked, offline):
        assert "warning: TLS certificate validation is off" in result.stderr
    for args, output in run.outputs:
        assert not leaks(output), args
    for path, data in written_files(work).items():
        assert not leaks(data), path


# ------------------------------------------------------------------------------------------- transport rules
def test_basic_over_http_is_refused_without_the_lab_flag(lab: Lab, tmp_path: Path) -> None:
    requests_before = lab.server.counters["http_requests"]
    args: list[Any] = [sys.executable, "-m", "provisioner", "grant", "-m", "alice.wong", "--service-account",
                       SERVICE, "--server", "127.0.0.1", "--port", str(lab.port), "--auth", "basic",
                       "--username", USER]
    result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env_with(SECRET), timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "Basic authentication over plain http" in result.stderr
    assert lab.server.counters["http_requests"] == requests_before  # nothing was sent at all


def test_tls_validation_is_on_by_default() -> None:
    connection = Connection(server="exch01.contoso.com", scheme="https", auth="ntlm", username=USER)
    assert connection.cert_validation is True
    wsman = session.build_wsman(connection, SECRET)
    assert wsman.transport.cert_validation is True
