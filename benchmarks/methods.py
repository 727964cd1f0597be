"""The three methods as child processes: how each is started, measured (os.wait4) and checked.

* ``provisioner``: the real CLI, ``provisioner grant ... --format json``, both runs (the first grant, then
  the same command again: it reads, finds every grant present and writes nothing); outcomes from the JSON items
  on stdout (the same document as ``--report``; a report or ``--profile-list`` would also read the names of the
  admin-console user's newly granted mailboxes for the MAPI-profile list, work the one-liner does not do).
* ``naive`` and ``expert``: :mod:`clients` (pypsrp's public API); ``expert-client``: the same one-liner through the
  tool's own client (:mod:`provisioner.transport.psrp`).

Every (mailbox, trustee) should end as expected: ``granted`` (first grant) or ``already-present`` (no-op) for
the mailboxes that exist, ``failed`` with a not-found reason for the identities that do not.
"""

from __future__ import annotations

import compileall
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients import TRUSTEES
from labproc import ROOT, LabProcess
from provisioner_lab.run import LAB_PASSWORD, LAB_USER

HERE = Path(__file__).resolve().parent
METHODS = ("naive", "expert", "expert-client", "provisioner")
PRODUCT = ("provisioner",)  #: the CLI
FIRST, NOOP = "first grant", "no-op"
RUNS = (FIRST, NOOP)
SERVICE_ACCOUNT, ADMIN_USER = TRUSTEES
NO_AUTOMAPPING_OK = "--accept-automapping"  #: the CLI's consent to automapped grants (no -AutoMapping)


@dataclass(frozen=True)
class ChildRun:
    """One child process from start to exit: wall seconds, its CPU and peak RSS, the lab's CPU meanwhile."""

    wall: float
    cpu: float
    peak_mb: float
    server_cpu: float
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Outcome:
    """What a run reports: counts by result (expert: records and errors) and any difference from the expected."""

    summary: dict[str, int]
    problems: list[str] = field(default_factory=list)
    work_seconds: float = 0.0  #: clients only: opening the pool to closing it (what grows with the targets)
    work_cpu: float = 0.0


def compile_product() -> None:
    """Byte-compile the product (and the lab) as pip does when it installs a wheel. A source checkout run with
    PYTHONDONTWRITEBYTECODE set, as on this project's machines, would otherwise compile every module of the CLI from
    source at each start (about 0.15 s of CPU a run) and time that instead of the product."""
    for package in ("provisioner", "lab/provisioner_lab"):
        compileall.compile_dir(ROOT / package, quiet=1)


def cli_path() -> list[str]:
    """The installed ``provisioner`` console script next to this interpreter, else ``python -m provisioner``."""
    script = Path(sys.executable).with_name("provisioner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "provisioner"]


@functools.cache
def cli_grant_options() -> str:
    """``provisioner grant --help``, wide enough that no option name is cut short."""
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb", "NO_COLOR": "1"}
    return subprocess.run([*cli_path(), "grant", "--help"], capture_output=True, text=True, env=env,
                          check=False).stdout


def command(method: str, run: str, port: int, users_file: Path, automapping: bool) -> list[str]:
    if method in PRODUCT:
        cli = [*cli_path(), "grant", "--users-file", str(users_file), "--admin-user", ADMIN_USER,
               "--service-account", SERVICE_ACCOUNT, "--server", "127.0.0.1", "--port", str(port),
               "--auth", "ntlm", "--username", LAB_USER, "--format", "json"]
        if not automapping and NO_AUTOMAPPING_OK in cli_grant_options():
            cli.append(NO_AUTOMAPPING_OK)  # as naive and expert, grant without it where the server lacks it
        return cli
    client = [sys.executable, str(HERE / "clients.py"), method, "grant" if run == FIRST else "read",
              "--port", str(port), "--users-file", str(users_file)]
    return client if automapping else [*client, "--no-automapping"]


def isolated_env(folder: str) -> dict[str, str]:
    """The children's environment: the lab's password, and the CLI's state (journal on, as by default; its lock)
    in ``folder``, so that no other run on the machine shares them."""
    return {**os.environ, "PROVISIONER_PASSWORD": LAB_PASSWORD, "XDG_STATE_HOME": folder}


def run_child(args: Sequence[str], lab: LabProcess | None, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> ChildRun:
    """Run ``args`` to completion; its own rusage comes from os.wait4 (not the sum of all children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        server_before = lab.cpu_seconds() if lab else 0.0
        started = time.perf_counter()
        child = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        server_cpu = lab.cpu_seconds() - server_before if lab else 0.0
        out.seek(0)
        err.seek(0)
        return ChildRun(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, server_cpu, child.returncode,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def run_method(method: str, run: str, lab: LabProcess, port: int, users_file: Path, mailboxes: list[str],
               automapping: bool) -> tuple[ChildRun, Outcome]:
    """One measured run of ``method`` against ``port`` (the lab, or the counting proxy in front of it)."""
    with tempfile.TemporaryDirectory() as folder:  # the CLI's working directory: no stray provisioner.toml
        env = isolated_env(folder)
        child = run_child(command(method, run, port, users_file, automapping), lab, env, Path(folder))
        return child, outcome(method, run, child, mailboxes)


def outcome(method: str, run: str, child: ChildRun, mailboxes: list[str]) -> Outcome:
    try:
        if method in PRODUCT:
            document = json.loads(child.stdout)
            return item_outcome(report_items(document["items"]), mailboxes, run)
        result = json.loads(child.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, KeyError, IndexError) as exc:
        return Outcome({}, [f"no result ({exc}); exit code {child.returncode}: {child.stderr.strip()[-600:]}"])
    if method == "naive":
        found = item_outcome([tuple(item) for item in result["items"]], mailboxes, run)
    else:
        found = expert_outcome(result, mailboxes, run)
    found.work_seconds, found.work_cpu = result["work_seconds"], result["work_cpu_seconds"]
    return found


def report_items(items: Iterable[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(mailbox, trustee, result, error reason) of each item of a provisioner JSON report."""
    return [(item["mailbox"], item["trustee"], item["result"], (item.get("error") or {}).get("reason") or "")
            for item in items]


def missing(mailbox: str) -> bool:
    return mailbox.startswith("nobody")


def expected_result(mailbox: str, run: str) -> str:
    if missing(mailbox):
        return "failed"
    return "granted" if run == FIRST else "already-present"


def not_found(reason: str) -> bool:
    return "NotFound" in reason or "couldn't be found" in reason


def item_outcome(items: Sequence[tuple[Any, ...]], mailboxes: list[str], run: str) -> Outcome:
    """Per-item outcomes against the expected: every pair exactly once, with its expected result."""
    expected = {(mailbox, trustee): expected_result(mailbox, run) for mailbox in mailboxes for trustee in TRUSTEES}
    seen = Counter((mailbox, trustee) for mailbox, trustee, *_ in items)
    problems = []
    if twice := [pair for pair, count in seen.items() if count > 1]:
        problems.append(f"{len(twice)} pairs reported more than once, e.g. {twice[0]}")
    if absent := sorted(expected.keys() - seen.keys()):
        problems.append(f"{len(absent)} pairs without an outcome, e.g. {absent[0]}")
    if unknown := sorted(seen.keys() - expected.keys()):
        problems.append(f"{len(unknown)} outcomes for pairs not asked for, e.g. {unknown[0]}")
    wrong = [item for item in items if (item[0], item[1]) in expected and not as_expected(item, expected)]
    if wrong:
        problems.append(f"{len(wrong)} unexpected outcomes, e.g. {wrong[0]}")
    return Outcome(dict(Counter(item[2] for item in items)), problems)


def as_expected(item: tuple[Any, ...], expected: dict[tuple[str, str], str]) -> bool:
    mailbox, trustee, result, reason = item
    wanted = expected[(mailbox, trustee)]
    return result == wanted and (wanted != "failed" or not_found(reason))


def expert_outcome(result: dict[str, Any], mailboxes: list[str], run: str) -> Outcome:
    """The expert gets no per-item outcomes: one record per existing pair, one error per missing one."""
    absent = sum(missing(mailbox) for mailbox in mailboxes) * len(TRUSTEES)
    present = len(mailboxes) * len(TRUSTEES) - absent
    summary = {"records": result["records"], "errors": result["errors"]}
    problems = []
    if summary != {"records": present, "errors": absent}:
        problems.append(f"{run}: {summary['records']} records and {summary['errors']} errors, expected "
                        f"{present} and {absent}")
    return Outcome(summary, problems)
