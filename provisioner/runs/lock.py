"""One changing run at a time per journal: a lock that cannot be bypassed by what happens to a file.

Two locks are taken, in this order:

1. **The run key** (Linux): a Unix socket bound in the abstract namespace under a name derived from the journal's
   real path (or, with no journal, the lock file's). It has no file to delete, replace or symlink; the kernel frees it
   when the holder dies, kill -9 included; anyone on the machine who uses the same journal, whatever their account,
   is excluded. A second run learns the holder's pid from the socket (SO_PEERCRED).
2. **The lock file** (every platform): ``flock`` (``msvcrt.locking`` on Windows) on the file, which also holds the
   holder's pid and start time for people to read. On Windows the held file cannot be deleted or renamed (Python
   opens files without FILE_SHARE_DELETE), so the file lock alone is sound there. On macOS/BSD (no abstract sockets)
   only the file lock exists: deleting the file while a run holds it lets a second run in; documented.

With no holder, a lock path that cannot be used (a directory, a missing folder, no permission) is an input error
(exit 2) before anything is sent; a held run key is exit 5 whatever the file's state.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from provisioner.errors import ExitCode, InputError, ProvisionerError


class LockHeld(ProvisionerError):
    exit_code = ExitCode.LOCKED


def run_key(path: Path) -> str:
    """The abstract socket name for runs on ``path`` (the journal, else the lock file): its real path hashed."""
    real = os.path.realpath(path)
    return "provisioner-run/" + hashlib.sha256(os.fsencode(real)).hexdigest()


@contextmanager
def exclusive(path: Path, key: Path | None = None) -> Iterator[None]:
    """Hold the run key of ``key`` (default: ``path``) and the file lock on ``path`` for the block; another holder
    makes this raise :class:`LockHeld` naming its pid (and start, when the file still says)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_run_key(path, key or path))
        stack.enter_context(_file_lock(path))
        yield


@contextmanager
def _run_key(path: Path, key: Path) -> Iterator[None]:
    if not sys.platform.startswith("linux"):
        yield
        return
    name = "\0" + run_key(key)
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            holder.bind(name)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            pid = _peer_pid(name)
            raise LockHeld(f"another run holds the lock of {key} (pid {pid if pid else '?'}{_started(path, pid)}); "
                           "not starting a second one") from None
        holder.listen(8)  # only so that a second run can ask who holds it (SO_PEERCRED); nothing is ever accepted
        yield
    finally:
        holder.close()


def _peer_pid(name: str) -> int | None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(name)
        pid, _uid, _gid = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                               struct.calcsize("3i")))
        return int(pid)
    except OSError:
        return None
    finally:
        probe.close()


def _started(path: Path, pid: int | None) -> str:
    """", started <time>" when the lock file's holder record is that pid's."""
    try:
        with path.open("rb") as handle:
            record = json.loads(handle.read(4096) or b"{}")
    except (OSError, ValueError):
        return ""
    if isinstance(record, dict) and record.get("pid") == pid and record.get("started"):
        return f", started {record['started']}"
    return ""


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = _open(path)
    try:
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            raise LockHeld(
                f"another run holds {path} (pid {holder.get('pid', '?')}, started {holder.get('started', '?')}); "
                "not starting a second one"
            ) from None
        with contextlib.suppress(OSError):  # a lock file we may only read still locks; the record is a courtesy
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps({"pid": os.getpid(), "started": datetime.now(UTC).isoformat()}).encode())
            os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays (removing it would race with a waiting run)


def _open(path: Path) -> int:
    """The lock file, created if missing (owner-only); an unusable path is an input error naming it."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        try:
            return os.open(path, flags, 0o600)
        except PermissionError:
            return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # another account's file: flock works
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"cannot use the lock file: {reason}", where=str(path)) from None


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
