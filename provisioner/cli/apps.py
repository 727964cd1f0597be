"""The Typer applications (the top level, ``plan``, ``journal`` and ``config``), the global options and the entry
point (which ends the run log with the exit code)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from provisioner.cli.helptext import HELP_NAMES
from provisioner.output.runlog import FORMATS, RUN, SYSLOG_SOCKET, LogSetupError
from provisioner.version import describe

app = typer.Typer(
    add_completion=True,
    context_settings={"help_option_names": HELP_NAMES},
    no_args_is_help=True,
    help="Grant, audit and revoke Exchange Full Access for mailbox-sync accounts, from desired state.",
)

plan_app = typer.Typer(no_args_is_help=True, help="Save a change for review and a later exact `provisioner apply`.")
app.add_typer(plan_app, name="plan")
journal_app = typer.Typer(no_args_is_help=True, help="The change journal of re-apply runs.")
app.add_typer(journal_app, name="journal")
config_app = typer.Typer(no_args_is_help=True, help="Which configuration file runs use.")
app.add_typer(config_app, name="config")


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


def _command(ctx: typer.Context) -> None:
    """The run log's action: the words of the subcommand (``plan grant``), one group at a time."""
    if ctx.invoked_subcommand:
        RUN.command.append(ctx.invoked_subcommand)


for _group in (plan_app, journal_app, config_app):
    _group.callback()(_command)


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging to stderr (never shows passwords)")
    ] = False,
    log_format: Annotated[str, typer.Option(
        "--log-format", envvar="PROVISIONER_LOG_FORMAT",
        help=f"The run log's start and summary lines: {' or '.join(FORMATS)}")] = "text",
    log_file: Annotated[Path | None, typer.Option(
        "--log-file", envvar="PROVISIONER_LOG_FILE",
        help="Append the run log here instead of stderr (scheduled jobs)")] = None,
    log_syslog: Annotated[bool, typer.Option(
        "--log-syslog", help="Send the run log to syslog/journald (Linux) instead of stderr")] = False,
    log_syslog_socket: Annotated[str, typer.Option(
        "--log-syslog-socket", help="The syslog datagram socket")] = SYSLOG_SOCKET,
) -> None:
    """Exchange Full Access for mailbox-sync accounts: grant, audit, revoke, check, lab."""
    try:
        RUN.configure(log_format, log_file, log_syslog, log_syslog_socket)
    except LogSetupError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    _command(ctx)
    if verbose:
        _debug_logging()


@config_app.command("path")
def config_path(
    config: Annotated[Path | None, typer.Option("--config", help="As a run would be given it")] = None,
) -> None:
    """Print the configuration file a run would use and why: every place looked at, in order (exit 2: none found,
    or the file --config or PROVISIONER_CONFIG names is missing)."""
    from provisioner.inputs.discovery import locate

    found = locate(config)
    for candidate in found.candidates:
        typer.echo(candidate.line())
    if found.path is None or not found.path.is_file():
        typer.echo(f"error: no configuration file: {found.describe()}", err=True)
        raise typer.Exit(2)
    typer.echo(f"using {found.path} ({found.origin})")


def main() -> None:
    """The ``provisioner`` command: the run log's summary line carries the exit code the process ends with."""
    from typer.main import get_command

    from provisioner.cli.helptext import tidy

    try:
        tidy(get_command(app))(prog_name="provisioner")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        RUN.end(code)
        RUN.close()
        raise
    except BaseException:
        RUN.end(1)
        RUN.close()
        raise
