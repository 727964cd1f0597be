"""``provisioner journal list|undo``: the change journal."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from provisioner import report as reports
from provisioner.cli.apps import journal_app
from provisioner.cli.common import (
    check_output,
    connection_of,
    discover,
    edge,
    emit_profile,
    emit_script,
    err,
    exclusive_for,
    journal_path,
    present,
    profile_for,
    progress_factory,
    summary_line,
)
from provisioner.cli.options import (
    AuthOpt,
    ConfigOpt,
    DcOpt,
    DryRunOpt,
    FormatOpt,
    HtmlOpt,
    JournalOpt,
    KeytabOpt,
    LabOpt,
    NoAutomapOpt,
    PortOpt,
    PrincipalOpt,
    ProfileListOpt,
    ReportOpt,
    SchemeOpt,
    ScriptOpt,
    ServerOpt,
    SpnHostOpt,
    SpnServiceOpt,
    UserOpt,
    YesOpt,
)
from provisioner.confirm import Confirmation, changes_question
from provisioner.jobs import Hooks
from provisioner.session import check_connection_settings, resolve_password


@journal_app.command("list")
def journal_list(config: ConfigOpt = None, journal: JournalOpt = None, output_format: FormatOpt = "table") -> None:
    """The runs recorded in the journal, with how many changes each made."""
    from provisioner.journal import changes_of, run_ids

    with edge():
        check_output(output_format)
        path = journal_path(discover(config), journal)
        runs = [{"run_id": run_id, "changes": len(changes_of(path, run_id))} for run_id in run_ids(path)]
        if output_format == "json":
            typer.echo(json.dumps(runs, indent=2))
        elif output_format == "csv":
            import csv

            writer = csv.DictWriter(sys.stdout, fieldnames=("run_id", "changes"), lineterminator="\n")
            writer.writeheader()
            writer.writerows(runs)
        else:
            for run in runs:
                typer.echo(f"{run['run_id']}  {run['changes']} changes")


@journal_app.command("undo")
def journal_undo(
    run_id: Annotated[str, typer.Argument(help="The run to undo (see 'provisioner journal list')")],
    config: ConfigOpt = None,
    journal: JournalOpt = None,
    dry_run: DryRunOpt = False,
    script: ScriptOpt = None,
    report: ReportOpt = None,
    output_format: FormatOpt = None,
    html: HtmlOpt = None,
    server: ServerOpt = None,
    port: PortOpt = None,
    scheme: SchemeOpt = None,
    auth: AuthOpt = None,
    username: UserOpt = None,
    keytab: KeytabOpt = None,
    principal: PrincipalOpt = None,
    spn_service: SpnServiceOpt = None,
    spn_hostname: SpnHostOpt = None,
    domain_controller: DcOpt = None,
    insecure_lab: LabOpt = False,
    automapping_unsupported_ok: NoAutomapOpt = False,
    yes: YesOpt = False,
    profile_list: ProfileListOpt = None,
) -> None:
    """Apply (or with --dry-run, write) the inverse of every change a run made, newest first. Asks for
    confirmation (--yes without a terminal)."""
    from provisioner.undo import run_undo, undo_plan

    with edge():
        check_output(output_format, dry_run, script)
        settings = discover(config)
        connection = connection_of(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            domain_controller=domain_controller, insecure_lab=insecure_lab,
        )
        path = journal_path(settings, journal)
        plan = undo_plan(path, run_id)
        profile = profile_for(plan.trustees, profile_list, dry_run, report)
        password = None
        if not dry_run:
            confirmation = Confirmation.from_terminal(yes)
            confirmation.require("journal undo")
            question = changes_question(f"undo {run_id}", plan)
            if question is not None:
                confirmation.confirm(question)
            check_connection_settings(connection)
            password = resolve_password(connection)
        with exclusive_for(settings, path), progress_factory() as progress:
            result = run_undo(path, run_id, connection, settings.reapply, dry_run=dry_run, password=password,
                              automapping_unsupported_ok=automapping_unsupported_ok, progress=progress,
                              hooks=Hooks(finished=profile))
        if profile is not None:
            result.profile = tuple(profile.entries)
        emit_script(result, script)
        if report is not None:
            reports.write_report(result, report)
        present(result, output_format, html)
        emit_profile(profile, profile_list)
        err(summary_line(result))
        raise typer.Exit(int(result.exit_code))
