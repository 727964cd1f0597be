"""``provisioner check`` and ``provisioner lab``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provisioner.cli.apps import app
from provisioner.cli.common import check_output, connection_of, discover, edge, err
from provisioner.cli.options import (
    CONNECT,
    NO_CONNECTION,
    AdminOpt,
    ConfigOpt,
    ConnectionArgs,
    FormatOpt,
    ServiceOpt,
    TrusteeOpt,
    connection_options,
)
from provisioner.inputs.desired import TrusteeOptions
from provisioner.inputs.desired import trustees as trustees_from
from provisioner.transport.psrp.connect import check_connection_settings, resolve_password
from provisioner.version import DISTRIBUTION

LAB_MISSING = (f"error: the lab's dependencies are not installed: pip install '{DISTRIBUTION}[lab]' "
               "(in a source checkout, make demo installs them)")


@app.command()
@connection_options(*CONNECT, "mode", "insecure_lab")
def check(
    config: ConfigOpt = None,
    connection_args: ConnectionArgs = NO_CONNECTION,
    output_format: FormatOpt = "table",
    admin_user: AdminOpt = None,
    service_account: ServiceOpt = None,
    trustee: TrusteeOpt = None,
) -> None:
    """Connect and report: reachable, authenticated, configuration, language mode, cmdlets available, and what each
    trustee (from the options or the config) resolves to."""
    from provisioner.output.emit import present_findings
    from provisioner.runs.check import run_check

    with edge():
        check_output(output_format)
        settings = discover(config)
        connection = connection_of(settings, connection_args)
        given = TrusteeOptions(admin_user, service_account, trustee or (), None)
        named = admin_user or service_account or trustee or settings.trustees
        trustees = trustees_from(settings, given)[0] if named else ()
        check_connection_settings(connection)
        findings = run_check(connection, resolve_password(connection), trustees)
        present_findings(findings, output_format or "table", connection.server)
        raise typer.Exit(int(findings.exit_code))


@app.command()
def lab(
    port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1 (0: any free port)")] = 0,
    mailboxes: Annotated[int, typer.Option("--mailboxes", help="Generate N mailboxes instead of the demo org")] = 0,
    seed: Annotated[Path | None, typer.Option("--seed", help="Organisation seed file (TOML)")] = None,
    full_language: Annotated[bool, typer.Option("--full-language", help="Accept script text (script mode)")] = False,
    latency_ms: Annotated[int, typer.Option("--latency-ms", help="Added latency per HTTP request")] = 0,
    ready_file: Annotated[Path | None, typer.Option("--ready-file", help="Write the port here once listening")] = None,
    profile: Annotated[str, typer.Option(
        "--profile", help="Server to model: exchange2010, exchange2010sp1, exchange2013 or exchange2019")
    ] = "exchange2019",
    cost: Annotated[bool, typer.Option(
        "--cost/--no-cost", help="Charge Exchange-like server time per pipeline, invocation, record and write")
    ] = False,
    exo: Annotated[bool, typer.Option(
        "--exo", help="Serve a fake Exchange Online instead (REST endpoint and token issuer over TLS)")] = False,
) -> None:
    """Run the built-in lab endpoint (a fake Exchange on 127.0.0.1) until interrupted."""
    if exo:
        try:
            from provisioner_lab.exo.run import serve_exo
        except ImportError:
            err(LAB_MISSING)
            raise typer.Exit(2) from None
        with edge():
            serve_exo(port=port, mailboxes=mailboxes, echo=err, ready_file=ready_file, latency_ms=latency_ms)
        return
    try:
        from provisioner_lab.profiles import get_profile
        from provisioner_lab.run import serve
    except ImportError:
        err(LAB_MISSING)
        raise typer.Exit(2) from None

    try:
        server_profile = get_profile(profile)
    except ValueError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    with edge():
        serve(
            port=port, mailboxes=mailboxes, seed=seed, full_language=full_language, latency_ms=latency_ms,
            ready_file=ready_file, echo=err, profile=server_profile, cost=cost,
        )
