"""One run at a time: an exclusive OS file lock (flock; msvcrt.locking on Windows), released if the process dies."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from provisioner.errors import ExitCode, ProvisionerError


class LockHeld(ProvisionerError):
    exit_code = ExitCode.LOCKED


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold ``path`` locked for the block; another holder makes this raise LockHeld naming its pid and start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            raise LockHeld(
                f"another run holds {path} (pid {holder.get('pid', '?')}, started {holder.get('started', '?')}); "
                "not starting a second one"
            ) from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "started": datetime.now(UTC).isoformat()}).encode())
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays (removing it would race with a waiting run)


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 1 << 20, os.SEEK_SET)  # lock a byte past the holder record, so it stays readable
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
