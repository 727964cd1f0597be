"""One fault run: the real CLI (a subprocess with its own timeout) through a :class:`FaultProxy` in front of the lab,
then the checks every run must pass, whatever the faults: no lie in the report (every outcome it claims matches the
lab's state), no traceback, a report written, an exit code from the README's table, no hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provisioner_lab.run import Lab

from tests.faults.proxy import FaultProxy, Schedule

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "svc-codetwo@contoso.com"
ADMIN = "sync.admin@contoso.com"
MAILBOXES = ("alice.wong", "bob.meyer", "carol.diaz", "dave.okafor", "erin.lindqvist", "frank.oconnor",
             "grace.hopper", "heidi.schmidt")
EXIT_CODES = frozenset(range(10))  # the README's table: 0..9
CLAIMS_PRESENT = frozenset({"granted", "already-present"})
CLAIMS_ABSENT = frozenset({"removed", "absent", "failed", "blocked"})
RUN_TIMEOUT = 90.0  # seconds per CLI subprocess: a run that takes longer is a hang


def config(tmp: Path, *, deadline: int = 45) -> Path:
    """Short timeouts and millisecond backoff: faults cost seconds, not minutes."""
    path = tmp / "faults.toml"
    path.write_text(
        "[connection]\noperation_timeout = 1\nconnection_timeout = 2\n"
        f"run_deadline_seconds = {deadline}\n"
        "[reapply]\nretry_attempts = 4\nretry_base_seconds = 0.05\nretry_max_seconds = 2\n",
        encoding="utf-8",
    )
    return path


@dataclass
class Run:
    action: str
    auth: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    report: dict[tuple[str, str], str] | None
    injected: list[tuple[int, str]] = field(default_factory=list)
    requests: int = 0
    busy_answers: int = 0  # Receives the proxy answered with a timeout fault in "busy" mode

    def problems(self, lab: Lab) -> list[str]:
        """Everything this run did wrong (empty: it passed every check)."""
        found: list[str] = []
        where = f"{self.action}/{self.auth} faults {self.injected}"
        if self.returncode is None:
            return [f"{where}: hung (no exit within {RUN_TIMEOUT:g} s)"]
        if "Traceback" in self.stderr or "Traceback" in self.stdout:
            found.append(f"{where}: traceback: {self.stderr[-2000:]}")
        if self.returncode not in EXIT_CODES:
            found.append(f"{where}: exit {self.returncode} is not in the README's table: {self.stderr[-500:]}")
        if self.report is None:
            found.append(f"{where}: no report (exit {self.returncode}): {self.stderr[-800:]}")
            return found
        for (mailbox, trustee), result in self.report.items():
            present = lab.engine.directory.has_full_access(mailbox, trustee)
            if result in CLAIMS_PRESENT and not present:
                found.append(f"{where}: lie: {mailbox}/{trustee} reported {result}, absent in the lab")
            if result in CLAIMS_ABSENT and present:
                found.append(f"{where}: lie: {mailbox}/{trustee} reported {result}, present in the lab")
        return found


def run_cli(lab: Lab, proxy: FaultProxy, tmp: Path, action: str, auth: str, mailboxes: Sequence[str] = MAILBOXES,
            *, deadline: int = 45, batch_size: int = 3, timeout: float = RUN_TIMEOUT) -> Run:
    report = tmp / f"report-{time.monotonic_ns()}.json"
    args = [sys.executable, "-m", "provisioner", action, "--config", str(config(tmp, deadline=deadline))]
    for mailbox in mailboxes:
        args += ["-m", mailbox]
    args += ["--service-account", SERVICE, "--batch-size", str(batch_size), "--report", str(report)]
    if action == "revoke":
        args.append("--yes")
    args += ["--server", "127.0.0.1", "--port", str(proxy.port), "--auth", auth, "--username", lab.username]
    if auth == "basic":
        args.append("--insecure-lab")
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    try:
        done = subprocess.run(args, capture_output=True, text=True, cwd=tmp, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        code: int | None = done.returncode
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.monotonic() - started
    results = None
    if report.exists():
        document = json.loads(report.read_text(encoding="utf-8"))
        results = {(item["mailbox"], item["trustee"]): item["result"] for item in document["items"]}
    return Run(action, auth, code, stdout, stderr, seconds, results, list(proxy.injected), proxy.requests,
               proxy.busy_answers)


def through_proxy(lab: Lab, tmp: Path, action: str, auth: str, schedule: Schedule, **options: object) -> Run:
    with FaultProxy(("127.0.0.1", lab.port), schedule) as proxy:
        return run_cli(lab, proxy, tmp, action, auth, **options)  # type: ignore[arg-type]
