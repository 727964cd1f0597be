"""``provisioner apply FILE``: a saved plan's changes, exactly, or exit 7."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provisioner.cli.apps import app
from provisioner.cli.common import check_options, check_output, connection_of, discover, edge, err
from provisioner.cli.confirm import Confirmation, changes_question
from provisioner.cli.options import (
    NO_CONNECTION,
    ConfigOpt,
    ConnectionArgs,
    FormatOpt,
    HtmlOpt,
    JournalOpt,
    LockFileOpt,
    NoJournalOpt,
    ProfileListOpt,
    ReportOpt,
    YesOpt,
    connection_options,
)
from provisioner.cli.protocol import change_run
from provisioner.cli.running import Finish, profile_for, progress_factory
from provisioner.domain.wording import counted
from provisioner.errors import InputError
from provisioner.inputs.config import Connection
from provisioner.runs.context import Hooks
from provisioner.transport.psrp.connect import check_connection_settings, resolve_password


@app.command("apply")
@connection_options("auth", "username", "keytab", "principal", "spn_service", "spn_hostname", "parallel",
                    "insecure_lab")
def apply_plan(
    plan_file: Annotated[Path, typer.Argument(help="The plan `provisioner plan … --out FILE` saved")],
    config: ConfigOpt = None,
    allow_drift: Annotated[bool, typer.Option(
        "--allow-drift", help="If the state moved since the plan, apply the changes that are still valid")] = False,
    expect_digest: Annotated[str | None, typer.Option(
        "--expect-digest", help="The approved plan's digest (sha256:…, from the review script's header): any "
        "other plan is refused")] = None,
    yes: YesOpt = False,
    journal: JournalOpt = None,
    no_journal: NoJournalOpt = False,
    lock_file: LockFileOpt = None,
    report: ReportOpt = None,
    output_format: FormatOpt = None,
    html: HtmlOpt = None,
    profile_list: ProfileListOpt = None,
    server: Annotated[str | None, typer.Option("--server", help="Must be the plan's (default: the plan's)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Must be the plan's (default: the plan's)")] = None,
    scheme: Annotated[str | None, typer.Option("--scheme", help="Must be the plan's (default: the plan's)")] = None,
    connection_args: ConnectionArgs = NO_CONNECTION,
) -> None:
    """Apply exactly a saved plan's changes, after reading again what they depend on: if anything moved (a grant
    already there, a mailbox gone, another server), nothing is changed (exit 7) unless --allow-drift. Asks for
    confirmation when the plan removes access (--yes without a terminal)."""
    from provisioner.runs.apply import PlanDrift, connection_for, run_apply
    from provisioner.runs.planfile import load

    with edge():
        check_output(output_format)
        saved = load(plan_file)
        if expect_digest is not None and expect_digest.strip().casefold() != saved.digest:
            raise InputError(f"the plan's digest is {saved.digest}, not the approved {expect_digest.strip()}: "
                             "nothing was sent", where=str(plan_file))
        check_options(Connection, server=server, port=port, scheme=scheme)
        given = {"server": server, "port": port, "scheme": scheme}
        moved = [f"{name}: the plan is for {saved.endpoint.get(name)}, --{name} says {value}"
                 for name, value in given.items() if value is not None and not _same(name, value, saved.endpoint)]
        if moved:
            raise PlanDrift(moved, 0, len(saved.changes), hard=True)
        err(f"plan {saved.digest}: {saved.action.value}, {counted(len(saved.changes), 'change')} "
            f"({counted(saved.removals, 'removal')}), made {saved.created} for {saved.endpoint.get('server')}")
        profile = profile_for(saved.trustees, profile_list, False, report)
        settings = discover(config)
        connection = connection_of(settings, connection_args, server=server)
        connection = connection_for(saved, connection)
        change = change_run(settings, dry_run=False, journal=journal, no_journal=no_journal, lock_file=lock_file,
                            report=report, html=html, profile_list=profile_list)
        if saved.removals:  # asked once every input and output is known to be usable
            confirmation = Confirmation.from_terminal(yes)
            confirmation.require("applying a plan that removes access")
            question = changes_question(f"apply {plan_file}", saved.plan())
            if question is not None:
                confirmation.confirm(question)
        check_connection_settings(connection)
        password = resolve_password(connection)
        with change.locked():
            with progress_factory() as progress:
                result = run_apply(saved, connection, change.settings(settings.reapply), password=password,
                                   allow_drift=allow_drift, progress=progress, hooks=Hooks(profile=profile))
            finish = Finish(result)
            finish.report(report)
        finish.notes("note")
        finish.lost()
        change.recorded(result)
        finish.items(output_format, html)
        finish.profile(profile, profile_list)
        finish.summary()
        finish.exit(result.exit_code)


def _same(name: str, given: object, endpoint: dict[str, object]) -> bool:
    planned = endpoint.get(name)
    if name == "server":  # host names compare as DNS does
        return str(given).casefold().rstrip(".") == str(planned or "").casefold().rstrip(".")
    return given == planned
