"""How ``--help`` reads: words an admin knows (FILE, TEXT, N) instead of Python types (``<list[Path]>``), no type on
flags, and square brackets shown as written (``[reapply] journal``) rather than taken as rich markup."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperOption

#: The word shown after an option, by the type Typer would show (``<path>``, ``<list[str]>``, ``<int range>``).
WORDS = {"bool": "", "path": "FILE", "Path": "FILE", "str": "TEXT", "int": "N", "float": "NUMBER"}


def word_for(option: TyperOption) -> str:
    label = option.display_type(None).removeprefix("<").removesuffix(">")  # type: ignore[arg-type]
    base = label.removeprefix("list[").removesuffix("]").removesuffix(" range")
    return WORDS.get(base, base)  # choices (a|b) as they are


def plain(text: str | None) -> str | None:
    """``text`` with its square brackets escaped, so the help renderer prints them instead of reading markup."""
    return text.replace("[", "\\[") if text else text


HELP_NAMES = ["-h", "--help"]


def tidy(command: Any) -> Any:
    """``command`` (Typer's built command tree) with every option's word and every help text made readable."""
    command.help = plain(command.help)
    shown = command.get_help_option(typer.Context(command, help_option_names=HELP_NAMES))  # made once, then kept
    if shown is not None:
        shown.metavar = ""
    for param in command.params:
        if isinstance(param, TyperOption):
            if param.metavar is None:
                param.metavar = word_for(param)
            param.help = plain(param.help)
        elif isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()  # Usage: provisioner apply [OPTIONS] {PLAN_FILE} (required: braces)
            param.help = plain(param.help)
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
    return command
