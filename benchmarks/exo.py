"""Benchmark of the Exchange Online (REST) backend: requests per (mailbox, trustee), with and without ``$batch``.

    python benchmarks/exo.py                      # 1,000 mailboxes x 2 trustees, 5% missing; batch on and off
    python benchmarks/exo.py --mailboxes 200 --latency-ms 20 --markdown exo.md

A separate, quick entry (``make bench-exo``): ``make bench`` is unchanged. The lab's Exchange Online fake
(REST endpoint and token issuer over TLS, in this process, a fresh one per mode) serves the real CLI, which runs
in its own process with certificate auth: a first grant (``--missing`` of the targets do not exist), then a no-op
re-apply (every grant present). ``req/pair``: REST requests (InvokeCommand and $batch POSTs; the token and OIDC
discovery requests are shown apart) per (mailbox, trustee), counted by the fake; ``calls/pair``: cmdlet calls
(single requests plus $batch items). Every pair's outcome is checked in the CLI's JSON items.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provisioner_lab.exo.run import running_exo_lab

ROOT = Path(__file__).resolve().parent.parent
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"


def run_cli(config: Path) -> tuple[float, dict[str, int]]:
    """One grant; its items from ``--format json`` on stdout (a --report would also read the MAPI-profile names)."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "provisioner", "grant", "--config", str(config), "--format",
                             "json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800,
                            stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"provisioner failed ({result.returncode}): {result.stderr[-2000:]}")
    counts: dict[str, int] = {}
    for item in json.loads(result.stdout)["items"]:
        counts[item["result"]] = counts.get(item["result"], 0) + 1
    return wall, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--missing", type=float, default=0.05, help="fraction of targets that do not exist")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added per HTTP request by the fake")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    missing_every = round(1 / args.missing) if args.missing else 0
    targets = [f"nobody{i:06d}@contoso.com" if missing_every and i % missing_every == 0 else f"user{i:06d}@contoso.com"
               for i in range(1, args.mailboxes + 1)]
    pairs = len(targets) * 2
    lines = [f"{args.mailboxes:,} mailboxes x 2 trustees ({args.missing:.0%} of targets missing); Exchange Online "
             f"fake over TLS in the benchmark's process, {args.latency_ms:g} ms added per request",
             "", "| run | $batch | req/pair | calls/pair | token + discovery | wall s | outcomes |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    started = time.perf_counter()
    for batch in (True, False):
        with running_exo_lab(mailboxes=args.mailboxes, latency_ms=args.latency_ms) as lab, \
                tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            users = folder / "users.txt"
            users.write_text("\n".join(targets) + "\n", encoding="utf-8")
            config = folder / "provisioner.toml"
            config.write_text(lab.config_toml(batch=batch) + f'[trustees]\nadmin_user = "{ADMIN}"\n'
                              f'service_account = "{SERVICE}"\n[targets]\nusers_file = "{users}"\n',
                              encoding="utf-8")
            for run in ("first grant", "no-op"):
                lab.requests.reset()
                wall, outcomes = run_cli(config)
                counts = lab.requests.snapshot()
                rest = counts.get("invoke", 0) + counts.get("batch", 0)
                calls = counts.get("invoke", 0) + counts.get("batch_items", 0)
                auth = counts.get("token", 0) + counts.get("discovery", 0)
                shown = ", ".join(f"{name} {count:,}" for name, count in sorted(outcomes.items()))
                lines.append(f"| {run} | {'on' if batch else 'off'} | {rest / pairs:.3f} | {calls / pairs:.3f} | "
                             f"{auth} | {wall:.2f} | {shown} |")
                print(lines[-1], flush=True)
    lines += ["", f"benchmark wall time: {time.perf_counter() - started:.0f} s"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
