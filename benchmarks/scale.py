"""Scale series: the no-op re-apply of N mailboxes x 2 trustees, client CPU seconds, peak RSS and requests.

    python benchmarks/scale.py                         # 1,000 / 10,000 / 50,000 mailboxes (make bench-scale)
    python benchmarks/scale.py --sizes 1000,10000 --profile exchange2010

For each size: a lab in this process (the generated org of ``provisioner lab --mailboxes N``; no cost model, no
injected latency: this measures the client), every target already granted to both trustees straight through the
lab's engine (no wire), then the real CLI, ``provisioner grant --users-file ... --format json``, as a child
process: its wall seconds, CPU seconds and peak RSS (os.wait4), the WS-Management requests the lab counted, the
lab's CPU meanwhile (this process), and a check that every (mailbox, trustee) came back ``already-present``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

from clients import TRUSTEES
from methods import NOOP, RUNS, command, compile_product, isolated_env, outcome, run_child
from provisioner_lab.api import Argument, Invocation, Statement
from provisioner_lab.exchange import EngineOptions, ExchangeEngine
from provisioner_lab.profiles import get_profile
from provisioner_lab.run import running_lab

GRANT_CHUNK = 5000
TARGETS = {"client CPU s": 40.0, "peak MB": 200.0}  #: at 50,000 mailboxes (the issue's targets)


def pregrant(engine: ExchangeEngine, mailboxes: list[str]) -> None:
    """Every mailbox granted to both trustees, through the engine's own pipeline (no wire, no client)."""
    for trustee in TRUSTEES:
        for start in range(0, len(mailboxes), GRANT_CHUNK):
            chain = (Invocation("Get-Mailbox"),
                     Invocation("Add-MailboxPermission", (Argument("User", trustee), Argument("AccessRights",
                                                                                             ["FullAccess"]))))
            result = engine.run([Statement(chain)], mailboxes[start:start + GRANT_CHUNK], user=None)
            if result.failure is not None or result.errors:
                raise SystemExit(f"pre-granting failed: {result.failure or result.errors[0]}")


def lab_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(size: int, profile: str) -> list[str]:
    mailboxes = [f"user{index:06d}" for index in range(1, size + 1)]
    engine = ExchangeEngine.generated(size, EngineOptions(profile=get_profile(profile)))
    pregrant(engine, mailboxes)
    with running_lab(engine=engine) as lab, tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        users = folder / "users.txt"
        users.write_text("".join(f"{mailbox}\n" for mailbox in mailboxes), encoding="utf-8")
        env = isolated_env(name)
        before, cpu = lab.server.counters["total"], lab_cpu()
        automapping = ("Add-MailboxPermission", "AutoMapping") not in get_profile(profile).removed_parameters
        child = run_child(command("provisioner", NOOP, lab.port, users, automapping), None, env, folder)
        requests, server_cpu = lab.server.counters["total"] - before, lab_cpu() - cpu
    found = outcome("provisioner", NOOP, child, mailboxes)
    pairs = size * len(TRUSTEES)
    check = "; ".join(found.problems) or "every pair already-present"
    marks = []
    if size >= 50_000:
        for name, limit in TARGETS.items():
            value = child.cpu if name == "client CPU s" else child.peak_mb
            marks.append(f"{'met' if value <= limit else 'MISSED'} {name} <= {limit:g}")
    return [f"| {size:,} | {pairs:,} | {child.wall:.1f} | {child.cpu:.1f} | {child.peak_mb:.0f} | {requests:,} | "
            f"{requests / pairs:.4f} | {server_cpu:.1f} | {check} | {', '.join(marks)} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="mailbox counts, comma separated")
    parser.add_argument("--profile", default="exchange2019")
    args = parser.parse_args()
    sizes = [int(value) for value in args.sizes.split(",") if value.strip()]
    get_profile(args.profile)
    compile_product()
    started = time.monotonic()
    print(f"$ {shlex.join(sys.orig_argv)}", flush=True)
    print(f"no-op re-apply, {len(TRUSTEES)} trustees, profile {args.profile}, lab in the benchmark process (no cost "
          f"model, 0 ms), {os.cpu_count()} CPUs; runs: {RUNS[1]} only, everything pre-granted\n")
    print("| mailboxes | pairs | wall s | client CPU s | peak MB | requests | req/pair | lab CPU s | outcomes | "
          "targets |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |", flush=True)
    for size in sizes:
        for line in measure(size, args.profile):
            print(line, flush=True)
    print(f"\nbenchmark wall time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
