"""Opening the files a user names as input (configuration, users files, saved plans): regular files only, bounded.

A FIFO, a device, a socket or a directory is refused without blocking (the file is opened with ``O_NONBLOCK``,
then checked with ``fstat``), and a file larger than its kind's limit is refused before it is read, so neither a
named pipe nor ``/dev/zero`` can hang a run or exhaust its memory. Every refusal is an ``InputError`` naming the
file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from provisioner.errors import InputError

_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def size_text(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def too_large(what: str, limit: int) -> str:
    return f"larger than {size_text(limit)}, the most a {what} may be"


def open_regular(path: Path, what: str, limit: int) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file of at most ``limit`` bytes. ``what`` names the
    kind of file in messages ("configuration file", "users file", "plan file")."""
    where = str(path)
    if not where:
        raise InputError(f"empty path for the {what}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"{what} not found", where=where) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, not a {what}", where=where) from None
    except PermissionError:
        raise InputError("permission denied", where=where) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot open the {what}: {reason}", where=where) from None
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise InputError(f"is a directory, not a {what}", where=where)
        for test, kind in _NOT_REGULAR:
            if test(status.st_mode):
                raise InputError(f"is {kind}, not a regular file: give the {what} itself", where=where)
        if not stat.S_ISREG(status.st_mode):
            raise InputError(f"is not a regular file: give the {what} itself", where=where)
        if status.st_size > limit:
            raise InputError(too_large(what, limit), where=where)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, what: str, limit: int) -> bytes:
    """The whole content of ``path`` (see :func:`open_regular`); a file that grew past ``limit`` meanwhile is
    refused too."""
    with open_regular(path, what, limit) as stream:
        try:
            data = stream.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read the {what}: {exc.strerror or exc}", where=str(path)) from None
    if len(data) > limit:
        raise InputError(too_large(what, limit), where=str(path))
    return data
