"""``provisioner journal list|undo``: the change journal."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from provisioner.cli.apps import journal_app
from provisioner.cli.common import check_output, connection_of, discover, edge, err, readable_journal
from provisioner.cli.confirm import Confirmation, removals_question
from provisioner.cli.options import (
    CONNECT,
    NO_CONNECTION,
    NO_CONSENT,
    NO_REVIEW,
    ConfigOpt,
    ConnectionArgs,
    ConsentArgs,
    FormatOpt,
    JournalOpt,
    LockFileOpt,
    ReviewArgs,
    connection_options,
    consent_options,
    review_options,
)
from provisioner.cli.protocol import change_run
from provisioner.cli.running import Finish, profile_for, progress_factory
from provisioner.errors import InputError
from provisioner.output.records import Rows
from provisioner.runs.context import Hooks
from provisioner.runs.protocol import journal_of
from provisioner.transport.psrp.connect import check_connection_settings, resolve_password


@journal_app.command("list")
def journal_list(config: ConfigOpt = None, journal: JournalOpt = None, output_format: FormatOpt = "table") -> None:
    """The runs recorded in the journal: when each started, what it changed, and what is still in doubt (a killed
    run's changes that the next changing run settles)."""
    from provisioner.engine.journal import summaries

    with edge():
        check_output(output_format)
        path = readable_journal(journal_of(discover(config), journal), journal is not None)
        runs = [run.as_dict() for run in summaries(path)]
        if (output_format or "table") == "table" and not runs:
            err(f"no runs recorded in {path}")
        fields = ("run_id", "started", "changes", "granted", "removed", "in_doubt")
        rows = Rows(fields, runs, lambda: "".join(f"{_line(run)}\n" for run in runs))
        typer.echo(rows.render(output_format or "table"), nl=False)


def _line(run: dict[str, Any]) -> str:
    doubt = f", {run['in_doubt']} in doubt" if run["in_doubt"] else ""
    return (f"{run['run_id']}  {run['changes']} {_plural(run['changes'], 'change')} "
            f"(granted {run['granted']}, removed {run['removed']}{doubt})  started {run['started']}")


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


@journal_app.command("undo")
@connection_options(*CONNECT, "domain_controller", "insecure_lab")
@review_options
@consent_options
def journal_undo(
    run_id: Annotated[str, typer.Argument(help="The run to undo (see 'provisioner journal list')")],
    config: ConfigOpt = None,
    journal: JournalOpt = None,
    review: ReviewArgs = NO_REVIEW,
    connection_args: ConnectionArgs = NO_CONNECTION,
    consent: ConsentArgs = NO_CONSENT,
    lock_file: LockFileOpt = None,
) -> None:
    """Reverse what a run changed, newest first, reading the current state first: only what still needs reversing
    is sent (--dry-run writes it as a script). Asks for confirmation when it removes access (--yes without a
    terminal)."""
    from provisioner.runs.undo import run_undo, scope

    dry_run, offline, script, report = review.dry_run, review.offline, review.script, review.report
    with edge():
        check_output(review.output_format, dry_run, script)
        settings = discover(config)
        connection = connection_of(settings, connection_args)
        path = readable_journal(journal_of(settings, journal), journal is not None)
        run = scope(path, run_id)
        profile = profile_for(run.trustees, consent.profile_list, dry_run, report)
        change = change_run(settings, dry_run=dry_run, journal=journal, lock_file=lock_file, reads=path, report=report,
                            html=review.html, profile_list=consent.profile_list, script=script)
        confirmation = Confirmation.from_terminal(consent.yes)
        if not dry_run and run.removes:  # an undo that can only grant again asks nothing
            confirmation.require("journal undo")
        if offline and not dry_run:
            raise InputError("--offline only makes sense with --dry-run (nothing can be undone without reading)")
        password = None
        if not offline:
            check_connection_settings(connection)
            password = resolve_password(connection)
        planned = confirmation.hook(removals_question(f"undo {run_id}")) if not dry_run else None
        with change.locked():
            with progress_factory() as progress:
                result = run_undo(path, run_id, connection, change.settings(settings.reapply), dry_run=dry_run,
                                  offline=offline, password=password,
                                  automapping_unsupported_ok=consent.accept_automapping,
                                  progress=progress, hooks=Hooks(planned, profile=profile))
            finish = Finish(result)
            finish.report(report)
        finish.lost()
        change.recorded(result)
        finish.script(script)
        finish.items(review.output_format, review.html)
        finish.profile(profile, consent.profile_list)
        finish.summary()
        finish.exit(result.exit_code)
