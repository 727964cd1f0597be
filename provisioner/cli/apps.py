"""The Typer applications (the top level, ``plan`` and ``journal``), the global options and the entry point."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from provisioner.version import describe

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    help="Grant, audit and revoke Exchange Full Access for mailbox-sync accounts, from desired state.",
)

plan_app = typer.Typer(no_args_is_help=True, help="Save a change for review and a later exact `provisioner apply`.")
app.add_typer(plan_app, name="plan")
journal_app = typer.Typer(no_args_is_help=True, help="The change journal of re-apply runs.")
app.add_typer(journal_app, name="journal")


def _version(value: bool) -> None:
    if value:
        typer.echo(describe())
        raise typer.Exit(0)


DEBUG_LOGGERS = ("provisioner", "pypsrp", "requests", "urllib3", "spnego")


def _debug_logging() -> None:
    """DEBUG logs of the tool and its transport stack (pypsrp, requests/urllib3, spnego) to stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging to stderr (never shows passwords)")
    ] = False,
) -> None:
    """Exchange Full Access for mailbox-sync accounts: grant, audit, revoke, check, lab."""
    if verbose:
        _debug_logging()


def main() -> None:
    app()
