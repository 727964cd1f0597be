"""Presenting a run's items: ``--format table|json|csv`` on stdout, ``--html`` for a manager, progress on stderr.

- ``table``: a rich table (problem items first, colour unless NO_COLOR) when stdout is a terminal and the run has
  at most :data:`RICH_ROWS` items; otherwise the plain aligned text of :func:`provisioner.output.report.as_table` (also
  the items needing attention first). Both carry a short reason per item
  (:func:`provisioner.output.report.short_reason`).
- ``json``: the report document (:func:`provisioner.output.report.report_document`, the same as ``--report``).
- ``csv``: :func:`provisioner.output.report.as_csv`, one row per item.

rich is imported only when a terminal is involved (:mod:`provisioner.output.terminal`); runs with stdout and stderr
redirected (scheduled jobs) never import it. Tests reach the rich paths by passing a console made by
:func:`provisioner.output.terminal.console` with ``force_terminal=True``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from provisioner import __version__
from provisioner.engine.apply import ProgressFactory
from provisioner.output import report as reports
from provisioner.output.files import write_private
from provisioner.output.records import FORMATS, Rows, check_format
from provisioner.runs.result import RunResult

if TYPE_CHECKING:
    from rich.console import Console

    from provisioner.runs.findings import Findings

__all__ = ["FORMATS", "check_format", "present", "progress"]

RICH_ROWS = 2000  # above this a terminal gets the plain table too: rich lays out about 3,000 rows a second


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def present(
    result: RunResult, output_format: str, *, out: TextIO | None = None, console: Console | None = None
) -> None:
    """Write ``result``'s items in ``output_format`` to ``out`` (stdout); a table on ``console`` when given."""
    out = out or sys.stdout
    if output_format == "table" and (console is not None or is_terminal(out)) and len(result.outcomes) <= RICH_ROWS:
        from provisioner.output import terminal

        terminal.print_table(result, console or terminal.console(out))
    else:
        reports.rows(result).write(output_format, out)
    out.flush()


def write_html(result: RunResult, path: Path) -> None:
    """The manager's HTML report, owner-only (see :mod:`provisioner.output.html`)."""
    from provisioner.output.html import render_html

    write_private(path, render_html(result), what="the HTML report")


@contextmanager
def progress(stream: TextIO | None = None, *, console: Console | None = None) -> Iterator[ProgressFactory | None]:
    """The engine's progress factory: rich bars on ``stream`` (stderr) when it is a terminal (or on ``console``);
    None otherwise, so stderr stays quiet in logs. The display is stopped when the block ends."""
    stream = stream or sys.stderr
    if console is None and not is_terminal(stream):
        yield None
        return
    from provisioner.output import terminal

    with terminal.ProgressBars(console or terminal.console(stream)) as bars:
        yield bars.factory


def findings_document(findings: Findings, server: str | None) -> dict[str, Any]:
    return {
        "tool": "provisioner",
        "version": __version__,
        "action": "check",
        "server": server,
        "exit_code": int(findings.exit_code),
        "findings": [{"status": status, "text": text} for status, text in findings.entries],
    }


def present_findings(findings: Findings, output_format: str, server: str | None, out: TextIO | None = None) -> None:
    """``check``'s findings: the lines as today (table), a JSON document, or CSV (status,text)."""
    out = out or sys.stdout
    records = [{"status": status, "text": text} for status, text in findings.entries]
    rows = Rows(("status", "text"), records, lambda: "".join(f"{line}\n" for line in findings.lines),
                lambda: findings_document(findings, server))
    out.write(rows.render(output_format))
    out.flush()
