"""Which configuration file a run uses, and why: the one place the search order is written.

In order, the first that applies wins:

1. ``--config PATH`` (must exist);
2. the ``PROVISIONER_CONFIG`` environment variable (must exist when set);
3. ``provisioner.toml`` in the current folder;
4. the per-user configuration folder: ``$XDG_CONFIG_HOME/provisioner/provisioner.toml`` (default
   ``~/.config/provisioner/``) on Linux and macOS, ``%APPDATA%\\provisioner\\provisioner.toml`` on Windows;
5. the system location: ``/etc/provisioner/provisioner.toml``, ``%ProgramData%\\provisioner\\provisioner.toml``
   on Windows.

An explicit choice (1, 2) that names a missing file is an error, never a silent fall-through to another file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

ENV = "PROVISIONER_CONFIG"
FILENAME = "provisioner.toml"
FOLDER = "provisioner"


@dataclass(frozen=True)
class Candidate:
    """One place looked at: where (``origin``), the file (None: nothing to look at) and what was found."""

    origin: str  # --config, PROVISIONER_CONFIG, current folder, user folder, system
    path: Path | None
    state: str  # "used", "not found", "not set", "not checked" (an earlier one was used)

    def line(self) -> str:
        where = str(self.path) if self.path is not None else "-"
        return f"{self.state:<11}  {self.origin:<18}  {where}"


@dataclass(frozen=True)
class Located:
    """The search's outcome: the file to read (None: none found), why, and every candidate."""

    path: Path | None
    origin: str | None
    explicit: bool  # chosen by --config or PROVISIONER_CONFIG: a missing file is an error
    candidates: tuple[Candidate, ...]

    def describe(self) -> str:
        """``/etc/provisioner/provisioner.toml (system)`` or ``none found (looked in …)``."""
        if self.path is not None:
            return f"{self.path} ({self.origin})"
        looked = ", ".join(str(c.path) for c in self.candidates if c.path is not None)
        return f"none found (looked in {looked})"


def user_folder(environ: Mapping[str, str], platform: str, home: Path) -> Path | None:
    if platform == "win32":
        appdata = environ.get("APPDATA")
        return Path(PureWindowsPath(appdata) / FOLDER) if appdata else None
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"  # XDG: a relative value is ignored
    return base / FOLDER


def system_folder(environ: Mapping[str, str], platform: str) -> Path | None:
    if platform == "win32":
        data = environ.get("ProgramData") or environ.get("PROGRAMDATA")
        return Path(PureWindowsPath(data) / FOLDER) if data else None
    return Path("/etc") / FOLDER


def locate(
    explicit: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
    system: Path | None = None,
) -> Located:
    """Search in order (see the module's docstring); the keyword arguments stand in for the process's own."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    cwd = Path.cwd() if cwd is None else cwd
    home = Path.home() if home is None else home
    folder = system if system is not None else system_folder(environ, platform)
    user = user_folder(environ, platform, home)
    env_value = environ.get(ENV, "")
    searched = [
        ("--config", explicit, True),
        (ENV, Path(env_value) if env_value else None, True),
        ("current folder", cwd / FILENAME, False),
        ("user folder", user / FILENAME if user is not None else None, False),
        ("system", folder / FILENAME if folder is not None else None, False),
    ]
    candidates: list[Candidate] = []
    chosen: tuple[Path, str, bool] | None = None
    for origin, path, is_explicit in searched:
        if chosen is not None:
            candidates.append(Candidate(origin, path, "not checked"))
        elif path is None:
            candidates.append(Candidate(origin, None, "not set"))
        elif is_explicit or path.is_file():
            chosen = (path, origin, is_explicit)
            candidates.append(Candidate(origin, path, "used" if path.is_file() else "not found"))
        else:
            candidates.append(Candidate(origin, path, "not found"))
    if chosen is None:
        return Located(None, None, False, tuple(candidates))
    return Located(chosen[0], chosen[1], chosen[2], tuple(candidates))
