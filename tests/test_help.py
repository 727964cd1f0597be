"""--help reads as an admin expects: no Python types, brackets kept, -h works, and each command says what is true
for it (a plan's --script is its review script)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from provisioner.cli import app
from provisioner.cli.helptext import tidy

ROOT = Path(__file__).parent.parent


def commands() -> list[list[str]]:
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def help_of(*path: str, flag: str = "--help") -> str:
    done = subprocess.run([sys.executable, "-m", "provisioner", *path, flag], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("path", commands(), ids=lambda path: " ".join(path) or "provisioner")
def test_no_python_type_placeholders_in_any_options_help(path: list[str]) -> None:
    text = help_of(*path)
    options = text[text.index("Options"):] if "Options" in text else ""  # (Typer types its arguments' column)
    assert not re.search(r"<(bool|str|int|float|path|list\[[^\]]*\])( range)?>", options), text
    assert not re.search(r"\{[a-z_]+\}", text), text  # arguments in capitals: {PLAN_FILE}, not {plan_file}


def test_minus_h_is_help_and_square_brackets_survive() -> None:
    text = help_of("reapply", flag="-h")
    assert "Usage: provisioner reapply" in text
    assert "[reapply] prune_unowned" in text


def test_a_plans_script_and_format_say_what_they_are_for_a_plan() -> None:
    text = help_of("plan", "grant")
    assert "review script" in text and "dry-run" not in text


def test_tidy_leaves_choices_and_gives_flags_no_word() -> None:
    root = tidy(typer.main.get_command(app))
    grant = root.commands["grant"]
    words = {param.name: param.metavar for param in grant.params}
    assert words["dry_run"] == "" and words["report"] == "FILE" and words["mailbox"] == "TEXT"
