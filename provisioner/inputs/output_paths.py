"""Every file a run will write, proven writable before anything is sent to Exchange.

The rule (docs/inputs.md): each output path is checked right after the options and the configuration are read,
by doing what the write will do, not by asking ``os.access``:

- A file written at the end (report, HTML, MAPI-profile list, dry-run script, saved plan and its review script,
  metrics file) is written as a temporary file in its folder and then renamed over the path. So the folder must
  exist and take a new file: one is created there (``O_CREAT | O_EXCL``) and removed at once. The path itself
  must not be a directory, a FIFO or a device.
- The journal is appended to: if it exists it must be a regular file that opens for writing (without blocking),
  else its folder must take a new file (created and removed).
- The lock file is checked by :mod:`provisioner.runs.lock` itself when the run takes it, which is before connecting:
  with no holder an unusable lock path is exit 2 there, and a held lock is exit 5 whatever happened to its file
  (checking it here first would turn a tampered, held lock into exit 2). Here it only takes part in the next rule.
- **Folders are never created for outputs**, except the journal's and the lock's: they hold the tool's own state
  and the run creates them when missing (so existing configurations keep working). For those the check proves
  that the nearest existing folder above takes a new entry; it creates nothing itself.
- Two outputs may not be the same file.

A refusal is an ``InputError`` (exit 2) naming the option or key, the path and what is wrong.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import InputError

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class Output:
    """A file the run writes: ``name`` is how the user gave it (``--report``, ``reapply.metrics_file``)."""

    name: str
    path: Path
    appended: bool = False  # the journal and the lock: opened in place, not replaced


def check_outputs(files: Iterable[tuple[str, Path | None]], *, journal: Path | None = None,
                  lock: Path | None = None, journal_name: str = "journal", lock_name: str = "lock file") -> None:
    """Refuse (``InputError``) any output that cannot be written. ``files``: (option or key, path or None) of the
    files replaced at the end; ``journal`` and ``lock``: the paths the run will use (None: not used; the caller
    computes defaults), named in messages by ``journal_name`` and ``lock_name`` (e.g. ``--journal``)."""
    outputs = [Output(name, path) for name, path in files if path is not None]
    if journal is not None:
        outputs.append(Output(journal_name, journal, appended=True))
    seen: dict[Path, Output] = {}
    for output in [*outputs, *([Output(lock_name, lock, appended=True)] if lock is not None else [])]:
        key = _identity(output.path)
        if key in seen:
            raise InputError(f"{seen[key].name} and {output.name} name the same file ({output.path}): give each "
                             "its own")
        seen[key] = output
    for output in outputs:
        _check(output)


def _identity(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


def _fail(output: Output, problem: str) -> InputError:
    return InputError(f"{problem}; nothing was sent", where=f"{output.name} {output.path}")


def _check(output: Output) -> None:
    path = output.path
    if "\0" in str(path):
        raise _fail(output, "the path contains a NUL character")
    try:
        status: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        status = None
    except NotADirectoryError:
        raise _fail(output, f"a part of the path is a file, not a folder ({_file_part(path)})") from None
    except OSError as exc:
        raise _fail(output, f"cannot use the path: {exc.strerror or exc}") from None
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            empty = " (an empty path means the current folder)" if str(path) == "." else ""
            raise _fail(output, f"is a directory, not a file{empty}")
        for test, kind in _KINDS:
            if test(status.st_mode):
                raise _fail(output, f"is {kind}, not a regular file")
        if output.appended:
            _open_in_place(output)
            return
    folder = path.parent
    if not folder.is_dir():
        if output.appended and _file_part(path) is None:  # the run creates the state folders: probe the nearest
            folder = _nearest_folder(folder)
        elif folder.exists():
            raise _fail(output, f"{folder} is a file, not a folder")
        elif _file_part(path) is not None:
            raise _fail(output, f"a part of the path is a file, not a folder ({_file_part(path)})")
        else:
            raise _fail(output, f"the folder {folder} does not exist (provisioner does not create folders: "
                        "create it first)")
    _probe(output, folder)


def _file_part(path: Path) -> Path | None:
    """The first existing non-folder among ``path``'s parents."""
    for parent in reversed(path.absolute().parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _nearest_folder(folder: Path) -> Path:
    """The nearest existing folder at or above ``folder``."""
    for candidate in (folder, *folder.absolute().parents):
        if candidate.is_dir():
            return candidate
    return Path(folder.absolute().anchor)


def _open_in_place(output: Output) -> None:
    """An existing journal: it must open for appending (O_NONBLOCK: a FIFO put there never blocks)."""
    try:
        fd = os.open(output.path, os.O_WRONLY | os.O_APPEND | _NONBLOCK)
    except OSError as exc:
        raise _fail(output, f"cannot open it for writing: {exc.strerror or exc}") from None
    os.close(fd)


def _probe(output: Output, folder: Path) -> None:
    """Create a file in ``folder`` (as the write's temporary file will be) and remove it."""
    probe = folder / f".{output.path.name}.{os.getpid()}.probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NONBLOCK, 0o600)
    except FileExistsError:
        return  # a leftover probe of this very process id: the folder takes files
    except OSError as exc:
        raise _fail(output, f"cannot create a file in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        probe.unlink()
    except OSError as exc:
        raise _fail(output, f"cannot remove a file from {folder}: {exc.strerror or exc}") from None
