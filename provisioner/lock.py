"""One run at a time: an exclusive OS file lock (flock), released by the kernel if the process dies."""

from __future__ import annotations

import fcntl
import json
import os
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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise LockHeld(
                f"another run holds {path} (pid {holder.get('pid', '?')}, started {holder.get('started', '?')}); "
                "not starting a second one"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": datetime.now(UTC).isoformat()}).encode(), 0)
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays (removing it would race with a waiting run)


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
