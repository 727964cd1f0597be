"""Prometheus text-format gauges for node_exporter's textfile collector, written atomically.

Every figure comes from the run's :class:`provisioner.output.summary.Summary`, so the metrics say what the reports say.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.domain.model import Result
from provisioner.output.files import write_shared
from provisioner.output.summary import Summary

if TYPE_CHECKING:
    from provisioner.runs.result import RunResult

_HELP = {
    "provisioner_last_run_timestamp_seconds": "Unix time at which the last run finished.",
    "provisioner_last_run_duration_seconds": "Wall-clock duration of the last run.",
    "provisioner_last_run_exit_code": "Exit code of the last run (0 means done and compliant).",
    "provisioner_last_run_attention_items": "Items of the last run that need attention (missing, failed, blocked, "
                                            "unknown).",
    "provisioner_last_run_items": "(mailbox, trustee) items of the last run, by result.",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(job: str, summary: Summary, finished: float, duration: float) -> str:
    labels = f'job="{_label(job)}"'
    lines: list[str] = []
    for name, value in (
        ("provisioner_last_run_timestamp_seconds", f"{finished:.3f}"),
        ("provisioner_last_run_duration_seconds", f"{duration:.3f}"),
        ("provisioner_last_run_exit_code", str(summary.exit_code)),
        ("provisioner_last_run_attention_items", str(summary.attention)),
    ):
        lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge", f"{name}{{{labels}}} {value}"]
    name = "provisioner_last_run_items"
    lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge"]
    for result in Result:  # every result, zero included, so alerts see a value even when nothing happened
        lines.append(f'{name}{{{labels},result="{result.value}"}} {summary.counts.get(result, 0)}')
    return "\n".join(lines) + "\n"


def of_run(job: str, result: RunResult) -> str:
    """The gauges of ``result`` under the label ``job`` (the command: ``reapply``, ``audit``)."""
    duration = (result.finished - result.started).total_seconds()
    return render(job, Summary.of(result), result.finished.timestamp(), duration)


def write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (node_exporter must never read half a file); world-readable, no secrets."""
    write_shared(path, text, what="the metrics file")
