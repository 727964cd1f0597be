"""Prometheus text-format gauges for node_exporter's textfile collector, written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from provisioner.model import Result

_HELP = {
    "provisioner_last_run_timestamp_seconds": "Unix time at which the last run finished.",
    "provisioner_last_run_duration_seconds": "Wall-clock duration of the last run.",
    "provisioner_last_run_exit_code": "Exit code of the last run (0 means done and compliant).",
    "provisioner_last_run_items": "(mailbox, trustee) items of the last run, by result.",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(job: str, finished: float, duration: float, exit_code: int, counts: Mapping[str, int]) -> str:
    labels = f'job="{_label(job)}"'
    lines: list[str] = []
    for name, value in (
        ("provisioner_last_run_timestamp_seconds", f"{finished:.3f}"),
        ("provisioner_last_run_duration_seconds", f"{duration:.3f}"),
        ("provisioner_last_run_exit_code", str(exit_code)),
    ):
        lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge", f"{name}{{{labels}}} {value}"]
    name = "provisioner_last_run_items"
    lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge"]
    for result in Result:  # every result, zero included, so alerts see a value even when nothing happened
        lines.append(f'{name}{{{labels},result="{result.value}"}} {counts.get(result.value, 0)}')
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (node_exporter must never read half a file); world-readable, no secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
