"""The CLI's outputs on a fixed set of journeys, as one text per journey: every command's exit code, stdout and
stderr, then every file the journey wrote (reports, HTML, CSV, review scripts, plan files, journals), with only what
differs from run to run masked (times, durations, run ids, digests, ports, temporary paths, the commit).

``tests/test_golden.py`` compares each journey with ``tests/data/golden/<journey>.txt``: a refactoring that changes
none of the CLI's behaviour leaves them byte-identical. ``PROVISIONER_GOLDEN_UPDATE=1`` rewrites them, for a change
that means to alter an output (review the diff)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from provisioner_lab.exo.run import running_exo_lab
from provisioner_lab.run import running_lab

GOLDEN = Path(__file__).parent / "data" / "golden"
HOSTILE = Path(__file__).parent / "data" / "hostile-names.txt"
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"


@dataclass
class Journey:
    """One journey's commands (``{conf}``, ``{dir}`` and ``{run}`` — the last run id — are filled in)."""

    name: str
    commands: list[list[str]]
    lab: str = "psrp"  # psrp | exo | none
    profile: str = "exchange2019"
    targets: list[str] = field(default_factory=list)
    extra_config: str = ""


def _mask(text: str, work: Path, port: int) -> str:
    text = text.replace(str(work), "<dir>")
    if port:
        text = re.sub(rf"\b{port}\b", "<port>", text)
    rules: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
        (r"https://127\.0\.0\.1:\d+", "https://127.0.0.1:<port>"),
        (r"\b\d{8}T\d{6}Z?-[0-9a-f]{4,}(-[0-9a-f]{8})?\b", "<run>"),
        (r"\b[0-9a-f]{64}\b", "<digest>"),
        (r"\b[0-9a-f]{40}\b", "<commit>"),
        (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?", "<time>"),
        (r"\b\d+(\.\d+)? ?(s|ms|seconds)\b", "<dur>"),
        (r"\"duration(_seconds)?\": [\d.e-]+", '"duration": <dur>'),
        (r"(provisioner[_a-z]*_seconds(\{[^}]*\})?) [\d.e+-]+", r"\1 <dur>"),
        (r"(provisioner_last_run_timestamp[^ ]*) [\d.e+-]+", r"\1 <time>"),
        (r"\bpid[ =]\d+", "pid <pid>"),
        (r"duration_seconds=[\d.e-]+", "duration_seconds=<dur>"),
        (r"\"commit\": \"[0-9a-f]+(-dirty)?\"", '"commit": "<commit>"'),
        (r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", "<uuid4>"),
        (r"TimeStamp=[^\]]*\]", "TimeStamp=<time>]"),
        (r"\+g[0-9a-f]{7,}", "+g<commit>"),
    ]
    for pattern, repl in rules:
        text = re.sub(pattern, repl, text)
    return text


@contextmanager
def _lab(journey: Journey, work: Path) -> Iterator[tuple[str, int]]:
    """The journey's [connection] TOML and port."""
    if journey.lab == "psrp":
        with running_lab(profile=journey.profile) as lab:
            yield lab.config_toml(), lab.port
    elif journey.lab == "exo":
        with running_exo_lab(mailboxes=12) as exo:
            yield exo.config_toml(retry_base_seconds=0.01), 0
    else:
        yield '[connection]\nserver = "exch01.contoso.com"\n', 0


def run(journey: Journey, work: Path) -> str:
    """The journey's masked transcript."""
    out: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
    env.update(PYTHONIOENCODING="utf-8", PROVISIONER_PASSWORD="Lab-Passw0rd!", COLUMNS="100", NO_COLOR="1",
               XDG_STATE_HOME=str(work / "state"), TERM="dumb")
    with _lab(journey, work) as (connection, port):
        users = work / "users.txt"
        users.write_text("".join(f"{t}\n" for t in journey.targets), encoding="utf-8")
        conf = work / "provisioner.toml"
        conf.write_text(connection + f'[trustees]\nadmin_user = "{ADMIN}"\nservice_account = "{SERVICE}"\n'
                        f'[targets]\nusers_file = "{users}"\n'
                        f'[reapply]\njournal = "{work / "journal.jsonl"}"\nverify_delay_seconds = 0\n'
                        + journey.extra_config, encoding="utf-8")
        last_run = ""
        for command in journey.commands:
            args = [a.format(conf=conf, dir=work, run=last_run) for a in command]
            done = subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True,
                                  cwd=work, env=env, timeout=180, stdin=subprocess.DEVNULL)
            found = re.findall(r"\brun (\S+) recorded", done.stderr)
            last_run = found[0] if found else last_run
            out.append(f"$ provisioner {' '.join(command)}\nexit {done.returncode}\n"
                       f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}")
        for path in sorted(work.rglob("*")):
            if path.is_file() and path.name not in {"provisioner.toml", "users.txt"} and "lock" not in path.name:
                body = path.read_text(encoding="utf-8", errors="replace")
                out.append(f"=== file {path.relative_to(work)}\n{body}")
    return _mask("\n".join(out), work, port)


def _demo_targets() -> list[str]:
    return ["alice.wong@contoso.com", "bob.meyer@contoso.com", "carol.diaz@contoso.com", "frank.oconnor@contoso.com",
            "nobody@contoso.com"]


def journeys() -> list[Journey]:
    c = ["--config", "{conf}"]
    hostile = [line for line in HOSTILE.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    return [
        Journey("demo-2019", [
            ["audit", *c],
            ["plan", "grant", *c, "--out", "{dir}/change.plan"],
            ["apply", "{dir}/change.plan", *c, "--report", "{dir}/apply.json", "--html", "{dir}/apply.html",
             "--profile-list", "{dir}/profile.csv"],
            ["grant", *c],
            ["audit", *c, "--format", "csv"],
            ["journal", "list", *c],
            ["revoke", "--yes", *c, "-m", "alice.wong@contoso.com", "--report", "{dir}/revoke.json"],
            ["journal", "undo", "{run}", "--yes", *c],
            ["audit", *c, "--format", "json"],
            ["journal", "list", *c, "--format", "csv"],
            ["journal", "list", *c, "--format", "json"],
            ["audit", *c, "--for-profile", "--format", "csv"],
            ["audit", *c, "--for-profile", "--format", "json"],
            ["audit", *c, "--for-profile"],
            ["check", *c, "--format", "csv"],
            ["check", *c, "--format", "json"],
        ], targets=_demo_targets()),
        Journey("protocol21-2010", [
            ["grant", "--dry-run", *c],
            ["grant", *c, "--report", "{dir}/grant.json", "--html", "{dir}/grant.html"],
            ["reapply", *c, "--metrics-file", "{dir}/metrics.prom"],
            ["reapply", *c, "--report", "{dir}/reapply.json"],
            ["revoke", "--yes", *c, "--report", "{dir}/revoke.json"],
            ["audit", *c],
        ], profile="exchange2010", targets=_demo_targets()),
        Journey("hostile-offline", [
            ["grant", "--dry-run", "--offline", *c],
            ["revoke", "--dry-run", "--offline", *c, "--script", "{dir}/revoke.ps1"],
        ], lab="none", targets=hostile),
        Journey("exo", [
            ["grant", *c, "--report", "{dir}/grant.json"],
            ["audit", *c, "--format", "json"],
            ["revoke", "--yes", *c, "--report", "{dir}/revoke.json"],
        ], lab="exo", targets=[f"user{i:06d}@contoso.com" for i in range(1, 6)] + ["nobody000001@contoso.com"]),
        Journey("bad-inputs", [
            ["grant", *c, "-m", "a*b@contoso.com"],
            ["grant", *c, "--batch-size", "0"],
            ["reapply", *c, "--format", "xml"],
            ["apply", "{dir}/missing.plan", *c],
        ], lab="none", targets=["alice.wong@contoso.com"]),
    ]
