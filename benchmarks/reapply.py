"""Benchmark: the naive way (one pipeline per call) against provisioner, on the lab endpoint.

    python benchmarks/reapply.py                      # 1,000 mailboxes x 2 trustees, 0 and 10 ms latency
    python benchmarks/reapply.py --mailboxes 200 --latencies 0 --dry-run-mailboxes 0

The lab endpoint (a fake Exchange over real WinRM/PSRP on 127.0.0.1) runs as its own process, as a real server
would: ``provisioner lab --mailboxes N --latency-ms L``, a fresh one for every method and latency so each starts
from the same state, and the server's CPU is not taken from the client's. HTTP requests are counted on the client.
For each injected per-request latency it runs, one after the other:

* naive: one pipeline per (mailbox, trustee) through pypsrp: ``Get-MailboxPermission -Identity M -User T``,
  then ``Add-MailboxPermission`` when the read found no grant (the usual script);
* provisioner: ``jobs.run`` with the command-mode executor (BatchExecutor), as the CLI runs it, with the defaults
  (``--batch-size 100 --parallel 1``) and tuned (``--tuned``, default ``250,2``: batch size 250, two sessions);

each for a first grant (5% of the targets do not exist, ``--missing``) and a no-op re-apply. It prints WS-Management
requests per (mailbox, trustee), wall seconds, naive/provisioner, and peak memory of this process (the client).
The naive way costs the same per pair whatever the size (one pipeline after the other), so by default
it runs on the first 250 targets (rounded down to whole periods of the missing targets: 240 at 5%, so the sample
has the same share of missing targets) and its seconds are scaled to all of them (``--naive-sample 0``: all).
With ``--dry-run-mailboxes N`` (default 100,000) it also measures the peak memory of the CLI writing a dry-run
script for N mailboxes x 2 trustees (``grant --dry-run --offline --script``), in a child process.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from pypsrp.powershell import PowerShell, RunspacePool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provisioner_lab.run import LAB_PASSWORD, LAB_USER  # noqa: E402

from provisioner.config import Connection  # noqa: E402
from provisioner.executors import records  # noqa: E402
from provisioner.jobs import Job, run  # noqa: E402
from provisioner.model import Action, Identity, Result, Trustee  # noqa: E402
from provisioner.session import open_pool  # noqa: E402

TRUSTEES = ("svc-codetwo@contoso.com", "sync.admin@contoso.com")


@dataclass
class Measure:
    method: str
    run: str
    latency: int
    seconds: float
    requests: int
    pairs: int
    results: dict[str, int]
    scale: float = 1.0  # naive measured on a sample of the targets: seconds are scaled to all of them

    @property
    def total_seconds(self) -> float:
        return self.seconds * self.scale


def targets(count: int, missing: float) -> list[str]:
    every = round(1 / missing) if missing > 0 else 0
    return [f"nobody{index:06d}" if every and index % every == 0 else f"user{index:06d}"
            for index in range(1, count + 1)]


@dataclass
class LabProcess:
    port: int
    username: str = LAB_USER
    password: str = LAB_PASSWORD


@contextmanager
def lab_process(mailboxes: int, latency: int) -> Iterator[LabProcess]:
    """``provisioner lab`` in a child process, stopped on exit."""
    with tempfile.TemporaryDirectory() as folder:
        ready = Path(folder, "port")
        command = [sys.executable, "-m", "provisioner", "lab", "--mailboxes", str(mailboxes),
                   "--latency-ms", str(latency), "--ready-file", str(ready)]
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not (ready.exists() and ready.read_text().strip()):
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the lab endpoint did not start")
                time.sleep(0.05)
            yield LabProcess(int(ready.read_text()))
        finally:
            child.terminate()
            child.wait(timeout=30)


class RequestCounter:
    """HTTP requests sent by this process (every WS-Management request is one)."""

    def __init__(self) -> None:
        self.count = 0
        original = requests.Session.send

        def send(session: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
            self.count += 1
            return original(session, request, **kwargs)

        requests.Session.send = send  # type: ignore[method-assign,assignment]


COUNTER = RequestCounter()


def connection(lab: LabProcess, batch_size: int, parallel: int) -> Connection:
    return Connection(server="127.0.0.1", port=lab.port, auth="basic", username=lab.username, insecure_lab=True,
                      batch_size=batch_size, parallel=parallel)


def naive(pool: RunspacePool, mailboxes: list[str]) -> dict[str, int]:
    """What the usual script does: read each pair, grant if missing; one pipeline per call."""
    results: dict[str, int] = {}
    for mailbox in mailboxes:
        for trustee in TRUSTEES:
            ps = PowerShell(pool)
            ps.add_cmdlet("Get-MailboxPermission").add_parameter("Identity", mailbox).add_parameter("User", trustee)
            output = ps.invoke()
            if ps.streams.error or ps.had_errors:
                outcome = "failed"
            elif any(entry is not None and entry.grants_full_access
                     for entry in map(records.permission_entry, output)):
                outcome = "already-present"
            else:
                ps = PowerShell(pool)
                ps.add_cmdlet("Add-MailboxPermission").add_parameter("Identity", mailbox)
                ps.add_parameter("User", trustee).add_parameter("AccessRights", ["FullAccess"])
                ps.add_parameter("InheritanceType", "All").add_parameter("AutoMapping", False)
                ps.invoke()
                outcome = "failed" if ps.streams.error or ps.had_errors else "granted"
            results[outcome] = results.get(outcome, 0) + 1
    return results


def provisioner(lab: LabProcess, mailboxes: list[str], batch_size: int, parallel: int) -> dict[str, int]:
    job = Job(Action.GRANT, tuple(Identity(m) for m in mailboxes), tuple(Trustee(Identity(t)) for t in TRUSTEES),
              connection(lab, batch_size, parallel))
    result = run(job, password=lab.password)
    return result.counts


def measure(method: str, label: str, latency: int, action: Callable[[], dict[str, int]],
            scale: float = 1.0) -> Measure:
    before = COUNTER.count
    started = time.perf_counter()
    results = action()
    seconds = time.perf_counter() - started
    pairs = sum(results.values())
    return Measure(method, label, latency, seconds, COUNTER.count - before, pairs, results, scale)


def runner(lab: LabProcess, settings: tuple[int, int] | None, mailboxes: list[str],
           sample: list[str]) -> Callable[[], dict[str, int]]:
    """One run of a method: the naive way on the sample (settings None), else provisioner on every target."""
    def run_naive() -> dict[str, int]:
        with open_pool(connection(lab, 1, 1), lab.password) as pool:
            return naive(pool, sample)

    def run_provisioner() -> dict[str, int]:
        assert settings is not None
        return provisioner(lab, mailboxes, *settings)

    return run_naive if settings is None else run_provisioner


def naive_sample_size(wanted: int, total: int, missing: float) -> int:
    """The naive way's sample: ``wanted`` targets (0: all) rounded down to whole periods of missing targets, so
    the sample has the same share of missing targets as the whole list and its counts scale exactly."""
    if wanted <= 0 or wanted >= total:
        return total
    every = round(1 / missing) if missing > 0 else 1
    return max(every, wanted - wanted % every)


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def dry_run_memory(count: int) -> tuple[float, float]:
    """Peak RSS (MB) and seconds of the CLI writing the dry-run script for ``count`` mailboxes x 2 trustees."""
    with tempfile.TemporaryDirectory() as folder:
        users = Path(folder, "users.txt")
        users.write_text("".join(f"user{index:06d}\n" for index in range(1, count + 1)), encoding="utf-8")
        command = [sys.executable, "-m", "provisioner", "grant", "--dry-run", "--offline", "--users-file", str(users),
                   "--service-account", TRUSTEES[0], "--admin-user", TRUSTEES[1],
                   "--script", str(Path(folder, "out.ps1")), "--server", "exchange.contoso.com"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ}, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"dry-run failed ({done.returncode}): {done.stderr[-2000:]}")
        return peak_mb(resource.RUSAGE_CHILDREN), seconds



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--latencies", default="0,10", help="injected ms per request, comma separated")
    parser.add_argument("--missing", type=float, default=0.05, help="fraction of targets that do not exist")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--tuned", default="250,2", help="batch size,parallel of the tuned provisioner run")
    parser.add_argument("--naive-sample", type=int, default=250,
                        help="run the naive way on the first N targets and scale its seconds (0: all targets)")
    parser.add_argument("--dry-run-mailboxes", type=int, default=100_000, help="0: skip the dry-run memory run")
    args = parser.parse_args()
    latencies = [int(value) for value in args.latencies.split(",") if value.strip()]
    mailboxes = targets(args.mailboxes, args.missing)
    sample = mailboxes[:naive_sample_size(args.naive_sample, len(mailboxes), args.missing)]
    scale = len(mailboxes) / len(sample)
    tuned_batch, tuned_parallel = (int(value) for value in args.tuned.split(","))
    variants = {
        "naive": None,
        "provisioner": (args.batch_size, args.parallel),
        f"prov {tuned_batch}x{tuned_parallel}": (tuned_batch, tuned_parallel),
    }
    measures: list[Measure] = []
    for latency in latencies:
        for method, settings in variants.items():
            with lab_process(args.mailboxes, latency) as lab:
                for label in ("first grant", "no-op re-apply"):
                    measures.append(measure(method, label, latency, runner(lab, settings, mailboxes, sample),
                                            scale if settings is None else 1.0))
            print(f"  ... {method} at {latency} ms done", file=sys.stderr, flush=True)
    peak = peak_mb()
    report(measures, args, peak)
    if args.dry_run_mailboxes:
        cli_peak, seconds = dry_run_memory(args.dry_run_mailboxes)
        print(f"\nCLI dry-run script, {args.dry_run_mailboxes:,} mailboxes x {len(TRUSTEES)} trustees: "
              f"peak RSS {cli_peak:.0f} MB, {seconds:.1f} s")


def report(measures: list[Measure], args: argparse.Namespace, peak: float) -> None:
    print(f"\n{args.mailboxes:,} mailboxes x {len(TRUSTEES)} trustees ({args.missing:.0%} of targets missing), "
          f"batch size {args.batch_size}, parallel {args.parallel}")
    naive_scale = next((m.scale for m in measures if m.scale != 1.0), None)
    if naive_scale:
        print(f"naive: measured on the first {round(args.mailboxes / naive_scale):,} targets, seconds scaled "
              f"x{naive_scale:.1f} (its cost per pair is constant: one pipeline after the other)")
    header = f"{'run':<16}{'latency':>8}{'method':>17}{'req/pair':>10}{'seconds':>9}{'naive/prov':>11}  results"
    print(header)
    print("-" * len(header))
    by_key = {(m.method, m.run, m.latency): m for m in measures}
    for m in measures:
        ratio = ""
        if m.method != "naive":
            base = by_key[("naive", m.run, m.latency)]
            ratio = f"{base.total_seconds / m.total_seconds:.1f}x"
        results = ", ".join(f"{name} {count}" for name, count in sorted(m.results.items()))
        print(f"{m.run:<16}{m.latency:>6}ms{m.method:>17}{m.requests / max(m.pairs, 1):>10.3f}{m.total_seconds:>9.2f}"
              f"{ratio:>11}  {results}")
    print(f"peak RSS of this process (the client; the lab runs in its own process): {peak:.0f} MB")
    granted = {m.method: round(m.results.get(Result.GRANTED.value, 0) * m.scale, 1)
               for m in measures if m.run == "first grant"}
    if len(set(granted.values())) > 1:
        print(f"note: granted counts differ between methods (naive counts are of its sample): {granted}")


if __name__ == "__main__":
    main()
