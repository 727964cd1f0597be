"""The release (the one place it is written) and the commit the build was made from.

The release is what a saved plan, a report, a review script's header and ``--version`` carry; ``apply`` compares it
(and the plan format), never the commit. The commit is stamped into the wheel and the sdist at build time
(``hatch_build.py`` writes :data:`STAMP` beside this module); a source checkout asks git instead; anything else
(a copy without ``.git``) says ``unknown``.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.2.0"
DISTRIBUTION = "exchange-provisioner"
STAMP = "build_commit.txt"


@functools.cache
def commit() -> str:
    """The build's commit (``abc123def456``, ``…-dirty`` when built from a modified tree), or ``unknown``."""
    here = Path(__file__).resolve().parent
    stamp = here / STAMP
    if stamp.is_file():
        return stamp.read_text(encoding="ascii").strip() or "unknown"
    return git_commit(here.parent) or "unknown"


def git_commit(root: Path) -> str | None:
    """``root``'s checked-out commit (short), ``-dirty`` appended when tracked files differ; None without git."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "diff-index", "--quiet", "HEAD", "--"], capture_output=True,
                               timeout=5).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def describe() -> str:
    """One line for ``--version``: release, distribution and commit."""
    return f"provisioner {__version__} ({DISTRIBUTION}, commit {commit()})"
