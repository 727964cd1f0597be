"""Benchmark: provisioner against the naive loop and the expert admin's one-liner, on a lab that costs like Exchange.

    python benchmarks/reapply.py                      # 1,000 mailboxes x 2 trustees; exchange2010 and exchange2019;
                                                      # 0 and 10 ms per request; the server cost model on
    python benchmarks/reapply.py --mailboxes 100 --latencies 0 --dry-run-mailboxes 0
    python benchmarks/reapply.py --profiles all --markdown perf.md

Server: ``provisioner lab --mailboxes N --latency-ms L --profile P --cost`` in its own process, a fresh one for
every (profile, latency, method) so each method starts from the same state. ``--cost`` charges Exchange-like
server time (per pipeline, cmdlet invocation, pipeline record and write) as sleeps, so wall time reflects what a
real server costs; ``--no-cost`` leaves only the lab's own CPU. ``--profile`` picks the PSRP protocol (2.1 runs
only the first statement of a multi-statement pipeline).

Methods, each a child process, each run twice on its lab: the first grant (``--missing``, default 5%, of the
targets do not exist), then a no-op re-apply (every grant present):

* naive: one pipeline per (mailbox, trustee) through pypsrp: ``Get-MailboxPermission -Identity M -User T``, then
  ``Add-MailboxPermission`` when absent; the same script both times. Its cost per pair is constant, so it runs
  on the first ``--naive-sample`` targets (whole periods of the missing ones) and is scaled (marked ``*``);
* expert: one pipeline per trustee with the identities as input: ``ids | Get-Mailbox | Add-MailboxPermission
  -User T ...`` (grant, no read first), ``ids | Get-Mailbox | Get-MailboxPermission -User T`` (no-op: the read).
  It gets no per-item outcomes: it is the reference for speed only;
* expert-client: the same one-liner through the tool's own client (psrpcore, pypsrp's WSMan, the tool's CLIXML
  reader: :mod:`provisioner.transport.psrp`);
* provisioner: the real CLI, ``provisioner grant ... --report`` both times; every (mailbox, trustee) must get
  its exact outcome in the report.

Columns: ``req/pair`` WS-Management requests (HTTP requests with a body; the empty-bodied requests of the NTLM
handshake are left out, as the lab's own counter does) per (mailbox, trustee). They are counted by a TCP
forwarder in this process (:mod:`proxy`) between the client and the lab, during the timed runs: the lab's
counters cannot be read from another process, and the forwarder costs each request well under a millisecond,
which disappeared in the run-to-run noise when measured (naive, ~4 requests a pair, with and without it: within
3%; provisioner and expert send a few dozen requests a run). ``--separate-count`` counts in separate runs on a
fresh lab instead (naive: on ``--naive-count-sample`` targets), so the timed runs go straight to the lab.
``wall s``: the client process from start to exit (interpreter start, imports, connection, work); for the
sampled naive method, the start-up once plus the work scaled. ``server CPU s``: user + system CPU of the lab
process meanwhile, from /proc/<pid>/stat (the cost model's sleeps are not CPU; the lab prints no counters, so
its cost seconds, invocations and records are not shown). ``client CPU s`` and ``peak MB``: rusage of the client
process (os.wait4). ``naive/prov`` and ``prov/expert``: ratios of wall seconds in the same profile, latency and
run. ``limit s``: the server-only limit of provisioner's run (:mod:`limit`: the cost model's seconds for the work
it made the server do, counted on a lab in this process, plus its requests x the latency: the wall time if the
client cost nothing), and ``wall/limit`` provisioner's wall as a multiple of it. ``outcomes``: results counted
(scaled for naive; expert: records and errors returned). Timings vary by about 10% from run to run on a small
machine: ``--repeat N`` keeps the fastest of N runs, each on a fresh lab.

With ``--dry-run-mailboxes N`` (default 100,000; 0 skips it) it also measures the CLI writing a dry-run script
for N mailboxes x 2 trustees (``grant --dry-run --offline --script``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from clients import TRUSTEES
from labproc import LabSettings, lab_process
from limit import server_work
from methods import METHODS, PRODUCT, RUNS, ChildRun, Outcome, cli_path, compile_product, run_child, run_method
from provisioner_lab.profiles import PROFILES, get_profile
from proxy import counting_proxy
from table import Row, markdown_table, target_lines, text_table

DEFAULT_PROFILES = "exchange2010,exchange2019"


@dataclass(frozen=True)
class Users:
    """A users file and the identities in it."""

    path: Path
    mailboxes: list[str]

    @property
    def pairs(self) -> int:
        return len(self.mailboxes) * len(TRUSTEES)


@dataclass(frozen=True)
class Pass:
    """One run of a method on its lab: the child, its outcome, and the requests it sent (counted passes)."""

    run: str
    child: ChildRun
    outcome: Outcome
    requests: int | None = None
    chunked: int = 0


def targets(count: int, missing: float) -> list[str]:
    every = round(1 / missing) if missing > 0 else 0
    return [f"nobody{index:06d}" if every and index % every == 0 else f"user{index:06d}"
            for index in range(1, count + 1)]


def sample_size(wanted: int, total: int, missing: float) -> int:
    """``wanted`` targets (0: all) rounded down to whole periods of the missing targets, so a sample has the same
    share of missing targets as the whole list and its figures scale exactly."""
    if wanted <= 0 or wanted >= total:
        return total
    every = round(1 / missing) if missing > 0 else 1
    return max(every, wanted - wanted % every)


def automapping(profile: str) -> bool:
    """Whether the server has ``Add-MailboxPermission -AutoMapping`` (Exchange 2010 SP2 and later)."""
    return ("Add-MailboxPermission", "AutoMapping") not in get_profile(profile).removed_parameters


def passes(settings: LabSettings, method: str, users: Users, counted: bool) -> list[Pass]:
    """The first grant and the no-op of ``method`` on a fresh lab; through the counting proxy if ``counted``."""
    with lab_process(settings) as lab, ExitStack() as stack:
        port, tally = lab.port, None
        if counted:
            port, tally = stack.enter_context(counting_proxy(lab.port))
        done = []
        for run in RUNS:
            before = (tally.with_body, tally.chunked) if tally else (0, 0)
            child, found = run_method(method, run, lab, port, users.path, users.mailboxes,
                                      automapping(settings.profile))
            if tally is None:
                done.append(Pass(run, child, found))
            else:
                done.append(Pass(run, child, found, tally.with_body - before[0], tally.chunked - before[1]))
        return done


def make_row(settings: LabSettings, method: str, timed: Pass, counted: Pass, scale: float,
             counted_pairs: int) -> Row:
    """A table row: the timed pass (scaled to all targets) with the requests of the counted pass."""
    child, found = timed.child, timed.outcome
    extra = scale - 1
    problems = [f"timed run: {text}" for text in found.problems]
    if counted is not timed:
        problems += [f"counting run: {text}" for text in counted.outcome.problems]
    if counted.chunked:
        problems.append(f"counting run: {counted.chunked} chunked requests (the request count is unreliable)")
    return Row(settings.profile, settings.latency_ms, method, timed.run,
               wall=child.wall + found.work_seconds * extra, client_cpu=child.cpu + found.work_cpu * extra,
               server_cpu=child.server_cpu * scale, peak_mb=child.peak_mb,
               summary={name: round(count * scale) for name, count in found.summary.items()},
               problems=problems, requests_per_pair=(counted.requests or 0) / max(counted_pairs, 1),
               sampled=scale != 1.0)


def progress(text: str, started: float) -> None:
    print(f"  [{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)


def best(groups: list[list[Pass]]) -> list[Pass]:
    """Per run, the pass with the least wall time of the repeats (the least disturbed by the rest of the machine)."""
    return [min(group, key=lambda one: one.child.wall) for group in zip(*groups, strict=True)]


def method_rows(args: argparse.Namespace, settings: LabSettings, method: str,
                users: dict[str, Users]) -> Iterator[Row]:
    timed_users = users["naive" if method == "naive" else "all"]
    inline = not args.separate_count
    timed = best([passes(settings, method, timed_users, counted=inline) for _ in range(args.repeat)])
    counted_users = timed_users if inline or method != "naive" else users["naive count"]
    counted = timed if inline else passes(settings, method, counted_users, counted=True)
    scale = len(users["all"].mailboxes) / len(timed_users.mailboxes)
    for timed_pass, counted_pass in zip(timed, counted, strict=True):
        yield make_row(settings, method, timed_pass, counted_pass, scale, counted_users.pairs)


def measure(args: argparse.Namespace, users: dict[str, Users], started: float) -> Iterator[Row]:
    for profile in args.profiles:
        work = None
        if args.cost and any(method in PRODUCT for method in args.methods):
            work = server_work(profile, args.mailboxes, users["all"].path, automapping(profile))
            progress(f"{profile}: the server-only limit counted", started)
        for latency in args.latencies:
            settings = LabSettings(args.mailboxes, latency, profile, args.cost)
            for method in args.methods:
                for row in method_rows(args, settings, method, users):
                    if work is not None and method in PRODUCT:
                        row.limit = work[row.run].limit(latency)
                    yield row
                progress(f"{profile} {latency} ms {method} done", started)


def write_users(folder: Path, name: str, mailboxes: list[str]) -> Users:
    path = folder / f"{name.replace(' ', '-')}.txt"
    path.write_text("".join(f"{mailbox}\n" for mailbox in mailboxes), encoding="utf-8")
    return Users(path, mailboxes)


def user_lists(folder: Path, args: argparse.Namespace) -> dict[str, Users]:
    everyone = targets(args.mailboxes, args.missing)
    naive = sample_size(args.naive_sample, len(everyone), args.missing)
    naive_count = sample_size(args.naive_count_sample, naive, args.missing)
    return {"all": write_users(folder, "all", everyone),
            "naive": write_users(folder, "naive", everyone[:naive]),
            "naive count": write_users(folder, "naive count", everyone[:naive_count])}


def startup_line() -> str:
    child = run_child([*cli_path(), "--version"], None)
    return (f"CLI start-up alone (provisioner --version): {child.wall:.2f} s wall, {child.cpu:.2f} s CPU, "
            f"peak {child.peak_mb:.0f} MB")


def dry_run_line(count: int) -> str:
    """Peak RSS and seconds of the CLI writing the dry-run script for ``count`` mailboxes x 2 trustees."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        users = write_users(folder, "dry-run", [f"user{index:06d}" for index in range(1, count + 1)])
        command = [*cli_path(), "grant", "--dry-run", "--offline", "--users-file", str(users.path),
                   "--service-account", TRUSTEES[0], "--admin-user", TRUSTEES[1],
                   "--script", str(folder / "out.ps1"), "--server", "exchange.contoso.com"]
        child = run_child(command, None, cwd=folder)
        if child.returncode != 0:
            return f"CLI dry-run script FAILED ({child.returncode}): {child.stderr.strip()[-1000:]}"
        return (f"CLI dry-run script, {count:,} mailboxes x {len(TRUSTEES)} trustees: peak RSS "
                f"{child.peak_mb:.0f} MB, {child.wall:.1f} s wall, {child.cpu:.1f} s CPU")


def heading(args: argparse.Namespace, users: dict[str, Users]) -> list[str]:
    naive = len(users["naive"].mailboxes)
    counted = len(users["naive count" if args.separate_count else "naive"].mailboxes)
    where = "in separate runs" if args.separate_count else "by the forwarder in front of the lab, in the timed runs"
    repeats = f"; fastest of {args.repeat} runs, each on a fresh lab" if args.repeat > 1 else ""
    lines = [
        f"{args.mailboxes:,} mailboxes x {len(TRUSTEES)} trustees ({args.missing:.0%} of targets missing); "
        f"server cost model {'on' if args.cost else 'off'}; {os.cpu_count()} CPUs{repeats}",
        f"requests counted {where}",
    ]
    if "naive" in args.methods:
        lines.append(f"* naive: timed on the first {naive:,} targets and scaled x{args.mailboxes / naive:.2f}; "
                     f"requests counted on the first {counted:,}")
    return lines


def profile_title(profile: str) -> str:
    server = get_profile(profile)
    return f"{profile} (PSRP protocol {server.protocol_version}): {server.description}"


def report(rows: list[Row], args: argparse.Namespace, users: dict[str, Users], extra: list[str]) -> str:
    """The text output after the command line; writes the markdown file if asked."""
    lines = heading(args, users)
    markdown = [f"`{command_line()}`", "", *lines]
    for profile in args.profiles:
        title = profile_title(profile)
        lines += ["", title, text_table(rows, profile)]
        markdown += ["", f"**{title}**", "", markdown_table(rows, profile)]
        if goals := target_lines(rows, profile, get_profile(profile).protocol_version):
            lines += ["targets:", *goals]
            markdown += ["", "Targets:", "", *(f"- {' '.join(goal.split())}" for goal in goals)]
    checks = [f"CHECK {row.profile} {row.latency} ms {row.method} {row.run}: {problem}"
              for row in rows for problem in row.problems]
    lines += ["", *(checks or ["checks: every method's outcomes are as expected"]), *extra]
    markdown += ["", *(f"- {line}" for line in [*checks, *extra])]
    if args.markdown:
        args.markdown.write_text("\n".join(markdown) + "\n", encoding="utf-8")
    return "\n".join(lines)


def command_line() -> str:
    return shlex.join(sys.orig_argv)


def comma_list(text: str) -> list[str]:
    return [value.strip() for value in text.split(",") if value.strip()]


def profile_list(text: str) -> list[str]:
    names = list(PROFILES) if text.strip().lower() == "all" else comma_list(text)
    for name in names:
        get_profile(name)  # unknown names fail here, before any lab starts
    return names


def method_list(text: str) -> list[str]:
    names = comma_list(text)
    if unknown := set(names) - set(METHODS):
        raise argparse.ArgumentTypeError(f"unknown methods: {', '.join(sorted(unknown))}")
    return [method for method in METHODS if method in names]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--profiles", type=profile_list, default=DEFAULT_PROFILES,
                        help=f"comma separated, or all ({', '.join(PROFILES)}); default {DEFAULT_PROFILES}")
    parser.add_argument("--latencies", type=lambda text: [int(v) for v in comma_list(text)], default="0,10",
                        help="injected ms per request, comma separated")
    parser.add_argument("--cost", action=argparse.BooleanOptionalAction, default=True,
                        help="the lab's Exchange-like server cost model (default on)")
    parser.add_argument("--missing", type=float, default=0.05, help="fraction of targets that do not exist")
    parser.add_argument("--methods", type=method_list, default=",".join(METHODS), help="comma separated")
    parser.add_argument("--naive-sample", type=int, default=100,
                        help="time the naive way on the first N targets and scale it (0: all targets)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time every method N times (a fresh lab each) and keep the fastest run")
    parser.add_argument("--separate-count", action="store_true",
                        help="count requests in separate runs, so the timed runs go straight to the lab")
    parser.add_argument("--naive-count-sample", type=int, default=20,
                        help="with --separate-count: count the naive way's requests on the first N targets")
    parser.add_argument("--dry-run-mailboxes", type=int, default=100_000, help="0: skip the dry-run memory run")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(f"$ {command_line()}", flush=True)
    compile_product()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        users = user_lists(Path(folder), args)
        rows = list(measure(args, users, started))
    extra = [startup_line()]
    if args.dry_run_mailboxes:
        extra.append(dry_run_line(args.dry_run_mailboxes))
    extra.append(f"benchmark wall time: {time.monotonic() - started:.0f} s")
    print(report(rows, args, users, extra))


if __name__ == "__main__":
    main()
