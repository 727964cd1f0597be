"""The run protocol every changing command follows (grant, revoke, reapply, apply, journal undo):

1. **lock**: one changing run per journal at a time, whoever runs it (:mod:`provisioner.runs.lock`); taken before
   connecting, so a second run exits 5 having sent nothing;
2. **reconcile**: every journal intent left in doubt by an earlier, killed run is settled against the live state
   (:mod:`provisioner.engine.reconcile`), inside the run's session, before planning;
3. **plan and apply**, journaled per batch (:class:`provisioner.engine.apply.Engine`).

The journal is on by default, at ``$XDG_STATE_HOME/provisioner/journal.jsonl`` (``~/.local/state/...``; on Windows
``%LOCALAPPDATA%\\provisioner\\journal.jsonl``), so that every run can be undone; ``[reapply] journal`` or
``--journal`` moves it (system jobs use a shared path such as ``/var/lib/provisioner/journal.jsonl``), and
``--no-journal`` turns it off for one run, giving up undo, reconciliation of killed runs and prune ownership.
Dry-runs, plans and audits change nothing: they take no lock and write no journal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from provisioner.errors import InputError
from provisioner.inputs.config import Config, RunSettings

JOURNAL_NAME = "journal.jsonl"
NO_JOURNAL_NOTE = ("--no-journal: this run is not recorded: it cannot be undone, a kill leaves its changes "
                   "unreconciled, and prune cannot tell its grants from anyone else's")


def state_dir() -> Path:
    """Where provisioner keeps its state for this user (the journal and its lock)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "provisioner"
    xdg = os.environ.get("XDG_STATE_HOME")
    base_path = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base_path / "provisioner"


def default_journal() -> Path:
    return state_dir() / JOURNAL_NAME


@dataclass(frozen=True)
class Guard:
    """The journal (None: --no-journal) and lock of one changing run."""

    journal: Path | None
    lock: Path

    @contextmanager
    def held(self) -> Iterator[None]:
        """The run lock for the block (exit 5 if held; exit 2 if its path cannot be used)."""
        from provisioner.runs.lock import exclusive

        if self.journal is not None:
            _make_state_dir(self.journal.parent)
        with exclusive(self.lock, key=self.journal or self.lock):
            yield

    def settings(self, reapply: RunSettings) -> RunSettings:
        """``reapply`` with this run's journal (the one place the effective journal is decided)."""
        return replace(reapply, journal=self.journal)


def guard_of(config: Config, journal: Path | None = None, no_journal: bool = False,
             lock_file: Path | None = None) -> Guard:
    """The journal and lock of a changing run: options first, then the config, then the defaults."""
    if no_journal and journal is not None:
        raise InputError("--journal and --no-journal contradict each other")
    path = None if no_journal else (journal or config.reapply.journal or default_journal())
    return Guard(path, lock_path(config, lock_file, path))


def journal_of(config: Config, journal: Path | None = None) -> Path:
    """The journal that ``journal list``/``undo`` read: the option, the config's, else the default."""
    return journal or config.reapply.journal or default_journal()


def lock_path(config: Config, explicit: Path | None, journal: Path | None) -> Path:
    if explicit is not None:
        return explicit
    if config.reapply.lock_file is not None:
        return config.reapply.lock_file
    if journal is not None:
        return journal.with_name(journal.name + ".lock")
    base = config.source.parent if config.source is not None else Path.cwd()
    return base / ".provisioner.lock"


def _make_state_dir(folder: Path) -> None:
    """The journal's folder is created if missing (owner-only), as the journal itself would be."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the state folder: {exc.strerror or exc}", where=str(folder)) from None
