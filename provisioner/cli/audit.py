"""``provisioner audit``: read-only, who has, lacks or is blocked from Full Access (and the MAPI-profile list)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from provisioner.cli.apps import app
from provisioner.cli.common import (
    check_output,
    check_run_outputs,
    connection_of,
    credentials,
    discover,
    edge,
    wanted_from,
)
from provisioner.cli.options import (
    BATCHES,
    CONNECT,
    NO_CONNECTION,
    NO_TARGETS,
    ConfigOpt,
    ConnectionArgs,
    FormatOpt,
    HtmlOpt,
    ReportOpt,
    TargetArgs,
    connection_options,
    target_options,
)
from provisioner.cli.running import Finish, progress_factory
from provisioner.domain.model import Action
from provisioner.output.report import profile_rows
from provisioner.runs.context import Hooks
from provisioner.runs.jobs import run
from provisioner.runs.mapi_profile import AUDIT_CHANGES, ProfileList, require_admin
from provisioner.runs.result import Job

AUDIT_HELP = (
    "Read-only: which targets have, lack, block or could not be read for each trustee.\n\n"
    "Exit 0: every pair is present. Exit 3 (drift): at least one pair is missing or blocked, even when others "
    "failed or are unknown: the drift is proven and the report lists the rest. Exit 1: no drift was proven, but "
    "some pairs failed or are unknown, so compliance could not be established."
)


@app.command(help=AUDIT_HELP)
@connection_options(*CONNECT, "domain_controller", *BATCHES, "insecure_lab")
@target_options
def audit(
    config: ConfigOpt = None,
    targets: TargetArgs = NO_TARGETS,
    output_format: FormatOpt = "table",
    for_profile: Annotated[bool, typer.Option(
        "--for-profile", help="List the targets the admin-console user can open, with display name, primary SMTP "
        "address and LegacyExchangeDN: what its MAPI profile must list")] = False,
    report: ReportOpt = None,
    html: HtmlOpt = None,
    metrics_file: Annotated[Path | None, typer.Option(
        "--metrics-file", help="Write Prometheus gauges here (node_exporter textfile; job=\"audit\")")] = None,
    connection_args: ConnectionArgs = NO_CONNECTION,
) -> None:
    """Read-only: which targets have, lack, block or could not be read for each trustee (see AUDIT_HELP)."""
    with edge():
        check_output(output_format)
        settings = discover(config)
        connection = connection_of(settings, connection_args)
        wanted = wanted_from(settings, targets, targets.trustee_options(), connection=connection)
        check_run_outputs(report=report, html=html)
        profile = None
        if for_profile:
            require_admin(wanted.trustees, "--for-profile")
            profile = ProfileList(AUDIT_CHANGES)
        job = Job(Action.AUDIT, wanted.mailboxes, wanted.trustees, connection, sources=wanted.sources)
        password = credentials(job)
        with progress_factory() as progress:
            result = run(job, password=password, progress=progress, hooks=Hooks(profile=profile))
        finish = Finish(result)
        finish.notes()
        finish.lost()
        finish.report(report)
        if profile is not None:  # the MAPI profile's list instead of the items (the report and --html keep those)
            if html is not None:
                finish.items(None, html)
            sys.stdout.write(profile_rows(profile.entries).render(output_format or "table"))
        else:
            finish.items(output_format, html)
        finish.metrics("audit", metrics_file)
        finish.summary()
        finish.exit(result.exit_code)
