"""The rich side of the output: a table that fits the terminal and a progress bar with rate and ETA.

Imported only when output goes to a terminal (:mod:`provisioner.output.emit` decides), so a scheduled run's start-up
never pays for rich. Every cell is a :class:`rich.text.Text` built from :func:`provisioner.domain.text.marked` text:
no rich markup in a name is interpreted, and no control, format or bidi character reaches the terminal.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from provisioner.domain.model import Result
from provisioner.domain.text import marked
from provisioner.domain.wording import counted
from provisioner.engine.apply import Progress
from provisioner.output.report import short_reason
from provisioner.output.summary import Summary, attention_first, breakdown
from provisioner.runs.result import RunResult

STYLES = {
    Result.FAILED: "bold red",
    Result.BLOCKED: "bold red",
    Result.UNKNOWN: "bold yellow",
    Result.MISSING: "yellow",
    Result.PLANNED: "cyan",
    Result.GRANTED: "green",
    Result.REMOVED: "green",
    Result.PRESENT: "green",
}


def no_color() -> bool:
    """https://no-color.org: a NO_COLOR that is set and not empty turns colour off."""
    return bool(os.environ.get("NO_COLOR"))


def console(stream: TextIO, *, force_terminal: bool | None = None, width: int | None = None) -> Console:
    """The one way a console is made (the CLI on sys.stdout/sys.stderr; tests force a terminal on a buffer)."""
    return Console(file=stream, force_terminal=force_terminal, width=width, no_color=no_color(), highlight=False,
                   emoji=False, markup=False)


def result_table(result: RunResult) -> Table:
    """The items, those needing attention first, as a rich table (columns wrap to the console's width); the caption
    is the run's headline (:class:`provisioner.output.summary.Summary`)."""
    summary = Summary.of(result)
    counts = f" ({breakdown(summary.counts)})" if summary.counts else ""
    title = f"{result.job.action.value}{' (dry run)' if result.job.dry_run else ''}: {counted(summary.total, 'item')}"
    table = Table(title=Text(title + counts), caption=Text(summary.headline), expand=False)
    table.add_column("MAILBOX", overflow="fold")
    table.add_column("TRUSTEE", overflow="fold")
    table.add_column("RESULT", no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    for outcome in attention_first(result.outcomes):
        style = STYLES.get(outcome.result, "")
        table.add_row(
            Text(marked(outcome.mailbox.value)),
            Text(marked(outcome.trustee.identity.value)),
            Text(outcome.result.value, style=style),
            Text(marked(short_reason(outcome))),
        )
    return table


def print_table(result: RunResult, out: Console) -> None:
    out.print(result_table(result))


class _Rate(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text("- items/s" if speed is None else f"{speed:,.0f} items/s")


class ProgressBars:
    """A rich progress display on a terminal console: one bar per engine phase (reading, applying).

    Use as a context manager; :meth:`factory` is the engine's ``ProgressFactory``. Leaving the context stops the
    display (the last frame stays), so the summary lines that follow never mix with a live bar.
    """

    def __init__(self, out: Console) -> None:
        self.display = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=out,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live = False  # the display starts with the first bar and rests when all bars are done

    def factory(self, label: str, total: int) -> Progress:
        if not self.live:
            self.display.start()
            self.live = True
        task = self.display.add_task(marked(label), total=total)

        def tick(count: int) -> None:
            self.display.advance(task, count)
            if self.display.finished:
                self._rest()

        return tick

    def _rest(self) -> None:
        """Between phases no bar is live (the last frame stays on screen): a confirmation prompt between reading and
        applying is never redrawn over, and the next phase's bar starts below it."""
        if self.live:
            self.display.stop()
            self.live = False
        for task in list(self.display.task_ids):
            self.display.remove_task(task)

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._rest()
