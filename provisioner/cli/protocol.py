"""The run protocol at the command line (:mod:`provisioner.runs.protocol`): every changing command (grant, revoke,
reapply, apply, journal undo) starts one :class:`ChangeRun` with :func:`change_run` and follows it, so that none can
forget a step:

1. before anything is asked or sent: the journal and lock are decided, and every file the run will write (journal,
   lock, report, HTML, lists, script) is proven writable; ``--no-journal`` is said;
2. :meth:`ChangeRun.locked`: the lock for the run and for writing its report (dry-runs and plans take none: they change
   nothing);
3. :meth:`ChangeRun.recorded`: the journal line that undo, reconciliation and prune will read is named.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provisioner.cli.common import check_run_outputs, err
from provisioner.errors import InputError
from provisioner.inputs.config import Config, RunSettings
from provisioner.runs.protocol import NO_JOURNAL_NOTE, Guard, guard_of
from provisioner.runs.result import RunResult


@dataclass(frozen=True)
class ChangeRun:
    """One changing command's journal and lock (``dry_run``: it takes neither)."""

    guard: Guard
    dry_run: bool

    def settings(self, settings: RunSettings) -> RunSettings:
        """``settings`` with this run's journal (None: ``--no-journal``)."""
        return self.guard.settings(settings)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The run lock for the block, which runs the job and writes its report (exit 5 if another run holds it)."""
        if self.dry_run:
            yield
            return
        with self.guard.held():
            yield

    def recorded(self, result: RunResult) -> None:
        """Say where the run was journaled (nothing when it wrote no journal)."""
        if result.run_id is not None and self.guard.journal is not None and not self.dry_run:
            err(f"run {result.run_id} recorded in {self.guard.journal}")


def change_run(
    config: Config,
    *,
    dry_run: bool,
    journal: Path | None,
    no_journal: bool = False,
    lock_file: Path | None = None,
    reads: Path | None = None,
    report: Path | None = None,
    html: Path | None = None,
    profile_list: Path | None = None,
    script: Path | None = None,
    plan_out: Path | None = None,
    extra: tuple[tuple[str, Path | None], ...] = (),
) -> ChangeRun:
    """Step 1 of the protocol. ``journal``, ``no_journal`` and ``lock_file`` are the options as given; ``reads``: the
    journal a ``journal undo`` reads (and writes), already resolved."""
    if journal is not None and not journal.name:  # "", "." or "/"
        raise InputError("is a folder, not a journal file (an empty path means the current folder)",
                         where=f"--journal {journal}")
    guard = guard_of(config, reads or journal, no_journal, lock_file)
    check_run_outputs(report=report, html=html, profile_list=profile_list, script=script, plan_out=plan_out,
                      extra=extra, guard=None if dry_run else guard, settings=config, journal=journal,
                      lock_file=lock_file)
    if guard.journal is None and not dry_run:
        err(f"warning: {NO_JOURNAL_NOTE}")
    return ChangeRun(guard, dry_run)
