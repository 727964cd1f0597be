"""The real CLI (a subprocess) against a running lab: one helper for the tests that drive it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from provisioner_lab.run import Lab


def run(lab: Lab, cwd: Path, *args: str, auth: str = "ntlm") -> subprocess.CompletedProcess[str]:
    """``provisioner ARGS`` with the lab's endpoint options and password, in ``cwd``, with its own timeout."""
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *lab.cli_args(auth)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120, stdin=subprocess.DEVNULL)


def targets(mailboxes: Sequence[str]) -> list[str]:
    """``-m`` for each mailbox."""
    return [arg for mailbox in mailboxes for arg in ("-m", mailbox)]
