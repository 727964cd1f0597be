"""Build hook: stamp the commit the sdist or wheel is made from into ``provisioner/build_commit.txt``.

In a git checkout the commit comes from git (``-dirty`` when tracked files differ). A wheel built from an sdist has no
``.git``: the sdist already carries the stamp, which is kept. Without either (a copy of the tree without ``.git``)
nothing is stamped and the installed tool says ``commit unknown``. Editable installs are not stamped (they ask git at run
time, see :func:`provisioner.version.commit`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

STAMPED = "provisioner/build_commit.txt"


class CommitStamp(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        sys.path.insert(0, str(root))
        try:
            from provisioner.version import git_commit
        finally:
            sys.path.pop(0)
        commit = git_commit(root)
        if commit is None:  # from an sdist: keep its stamp (the file is git-ignored, so named explicitly)
            if (root / STAMPED).is_file():
                build_data["force_include"][str(root / STAMPED)] = STAMPED
            return
        stamp = Path(tempfile.mkdtemp(prefix="provisioner-build-")) / "build_commit.txt"
        stamp.write_text(commit + "\n", encoding="ascii")
        build_data["force_include"][str(stamp)] = STAMPED
