"""The lab endpoint in its own process (``provisioner lab``), and that process's CPU time read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provisioner_lab.run import LAB_PASSWORD, LAB_USER

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class LabSettings:
    mailboxes: int
    latency_ms: int
    profile: str
    cost: bool

    def command(self, ready_file: Path) -> list[str]:
        return [sys.executable, "-m", "provisioner", "lab", "--mailboxes", str(self.mailboxes),
                "--latency-ms", str(self.latency_ms), "--profile", self.profile,
                "--cost" if self.cost else "--no-cost", "--ready-file", str(ready_file)]


@dataclass(frozen=True)
class LabProcess:
    port: int
    pid: int
    username: str = LAB_USER
    password: str = LAB_PASSWORD

    def cpu_seconds(self) -> float:
        """User + system CPU of the lab process so far (all its threads), from /proc/<pid>/stat."""
        return process_cpu_seconds(self.pid)


def process_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name, in parentheses, may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted from 1 with pid
    return (utime + stime) / CLOCK_TICKS


def wait_ready(child: subprocess.Popen[bytes], ready: Path, log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while not (ready.exists() and ready.read_text().strip()):
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the lab endpoint did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return int(ready.read_text())


@contextmanager
def lab_process(settings: LabSettings) -> Iterator[LabProcess]:
    """A fresh ``provisioner lab`` child (the same generated org every time), stopped on exit."""
    with tempfile.TemporaryDirectory() as folder:
        ready, log = Path(folder, "port"), Path(folder, "lab.log")
        with log.open("wb") as output:
            child = subprocess.Popen(settings.command(ready), cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield LabProcess(wait_ready(child, ready, log), child.pid)
        finally:
            child.terminate()
            child.wait(timeout=30)
