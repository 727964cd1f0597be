"""Writing a run's files: each replaces its path atomically (a reader never sees half a file), and a file that cannot
be written is an :class:`~provisioner.errors.OutputError` naming it (the one place an ``OSError`` of an output
becomes a message, never a traceback)."""

from __future__ import annotations

import os
from pathlib import Path

from provisioner.errors import OutputError


def write_private(path: Path, text: str, encoding: str = "utf-8", *, what: str = "the file") -> None:
    """Write ``text`` to ``path``, readable and writable by the owner only, replacing any earlier file."""
    _replace(path, text, encoding, 0o600, what)


def write_shared(path: Path, text: str, *, what: str = "the file") -> None:
    """Write ``text`` to ``path`` world-readable (no secrets: e.g. metrics for node_exporter), creating its folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.writing(what, path, exc) from None
    _replace(path, text, "utf-8", 0o644, what)


def _replace(path: Path, text: str, encoding: str, mode: int, what: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fchmod(handle.fileno(), mode)  # whatever the umask
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError.writing(what, path, exc) from None
