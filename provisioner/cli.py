"""The command line: parse, call, print. Exceptions become exit codes here and only here."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from provisioner import __version__
from provisioner import report as reports
from provisioner.config import AUTH_METHODS, Config, Connection, ReapplySettings, discover
from provisioner.desired import Desired, TrusteeOptions, desired
from provisioner.engine import Progress
from provisioner.errors import InputError, ProvisionerError
from provisioner.jobs import Job, RunResult, run
from provisioner.model import PROBLEM_RESULTS, Action
from provisioner.report import write_private
from provisioner.session import check_connection_settings, resolve_password

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Grant, audit and revoke Exchange Full Access for mailbox-sync accounts, from desired state.",
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config (default: ./provisioner.toml if present)")
]
MailboxOpt = Annotated[list[str] | None, typer.Option("--mailbox", "-m", help="Target mailbox (repeatable)")]
UsersFileOpt = Annotated[
    list[Path] | None, typer.Option("--users-file", "-u", help="Users file: one identity per line, or CSV")
]
AdminOpt = Annotated[str | None, typer.Option("--admin-user", help="The sync product's admin-console user")]
ServiceOpt = Annotated[str | None, typer.Option("--service-account", help="The sync service's account")]
TrusteeOpt = Annotated[list[str] | None, typer.Option("--trustee", help="Another trustee (repeatable)")]
AutomapOpt = Annotated[
    bool | None,
    typer.Option("--automapping/--no-automapping", help="Outlook AutoMapping for new grants (default: off)"),
]
ServerOpt = Annotated[str | None, typer.Option("--server", help="Exchange server FQDN")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port (default 80 for http, 443 for https)")]
SchemeOpt = Annotated[str | None, typer.Option("--scheme", help="http or https")]
AuthOpt = Annotated[str | None, typer.Option("--auth", help=f"One of: {', '.join(AUTH_METHODS)} (default kerberos)")]
UserOpt = Annotated[
    str | None, typer.Option("--username", help="Account to connect as (password: PROVISIONER_PASSWORD)")
]
DcOpt = Annotated[str | None, typer.Option("--domain-controller", help="Pin reads and writes to this DC")]
KeytabOpt = Annotated[
    str | None, typer.Option("--keytab", help="Kerberos client keytab for unattended runs (no kinit, no password)")
]
PrincipalOpt = Annotated[
    str | None, typer.Option("--principal", help="Kerberos principal (user@REALM) in the ticket cache or keytab")
]
SpnServiceOpt = Annotated[str | None, typer.Option("--spn-service", help="SPN service class (default HTTP)")]
SpnHostOpt = Annotated[
    str | None, typer.Option("--spn-hostname", help="SPN host when connecting by IP or a load-balanced name")
]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="command (NoLanguage endpoints) or script")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", min=1, max=5000, help="Steps per pipeline")]
ParallelOpt = Annotated[
    int | None, typer.Option("--parallel", min=1, max=16, help="Pipelines at once (default 1; mind throttling)")
]
LabOpt = Annotated[bool, typer.Option("--insecure-lab", help="Allow Basic over plain http (lab endpoint only)")]
FastWireOpt = Annotated[bool | None, typer.Option(
    "--fast-wire/--no-fast-wire",
    help="Client-side CLIXML fast path (only on the pypsrp versions it was verified on; default off)",
)]
NoAutomapOpt = Annotated[bool, typer.Option(
    "--automapping-unsupported-ok",
    help="On a server without -AutoMapping (Exchange 2010 before SP2): grant without it instead of refusing",
)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Change nothing; write the PowerShell that would run")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="With --dry-run: never connect; list every change")]
ScriptOpt = Annotated[Path | None, typer.Option("--script", help="Write the dry-run script here (default: stdout)")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write a JSON report here")]


def _err(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _edge() -> Iterator[None]:
    """Domain errors become a message and an exit code; nothing else is caught (a bug should show)."""
    try:
        yield
    except ProvisionerError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        _err("interrupted")
        raise typer.Exit(130) from None


def _connection(config: Config, **overrides: Any) -> Connection:
    for name, choices in (("scheme", ("http", "https")), ("auth", AUTH_METHODS), ("mode", ("command", "script"))):
        value = overrides.get(name)
        if value is not None and value not in choices:
            raise InputError(f"--{name} must be one of {', '.join(choices)}, not '{value}'")
    if overrides.get("insecure_lab") is False:
        overrides["insecure_lab"] = None  # a flag that is not given does not switch the config's setting off
    connection = config.connection.with_overrides(**overrides)
    if not connection.cert_validation:  # on every run, so that it is never forgotten
        _err("warning: TLS certificate validation is off (connection.cert_validation = false): "
             "anyone on the network path could pose as the server")
    return connection


def _desired(
    config: Config,
    mailbox: list[str] | None,
    users_file: list[Path] | None,
    options: TrusteeOptions,
    *,
    selectors_count: int = 0,
) -> Desired:
    wanted = desired(config, options, mailbox or [], users_file or [], selectors_count=selectors_count)
    for duplicate in wanted.targets.duplicates:
        _err(f"{duplicate.target.source}: duplicate of {duplicate.first.source} ({duplicate.first.identity}); folded")
    for warning in wanted.targets.warnings:
        _err(f"warning: {warning.source}: {warning.message}")
    for note in wanted.notes:
        _err(f"warning: {note}")
    return wanted


def _progress_factory() -> Callable[[str, int], Progress] | None:
    if not sys.stderr.isatty():
        return None

    def factory(label: str, total: int) -> Progress:
        done = 0
        started = time.monotonic()

        def tick(count: int) -> None:
            nonlocal done
            done += count
            rate = done / max(time.monotonic() - started, 1e-6)
            end = "\n" if done >= total else ""
            eta = f", ETA {max(total - done, 0) / rate:.0f}s" if rate and done < total else ""
            sys.stderr.write(f"\r{label}: {done}/{total} ({rate:.0f} items/s{eta})\x1b[K{end}")
            sys.stderr.flush()

        return tick

    return factory


def _execute(job: Job, report: Path | None, settings: ReapplySettings | None = None) -> RunResult:
    password = None
    if not job.offline:
        check_connection_settings(job.connection)  # refuse unsafe settings before asking for a password
        password = resolve_password(job.connection)
    result = run(job, password=password, progress=_progress_factory(), settings=settings)
    for note in result.notes:
        _err(f"warning: {note}")
    if report is not None:
        reports.write_report(result, report)
    return result


def _change_command(
    action: Action,
    *,
    config: Path | None,
    mailbox: list[str] | None,
    users_file: list[Path] | None,
    trustees: TrusteeOptions,
    dry_run: bool,
    offline: bool,
    script: Path | None,
    report: Path | None,
    overrides: dict[str, Any],
    automapping_unsupported_ok: bool = False,
) -> None:
    with _edge():
        if offline and not dry_run:
            raise InputError("--offline only makes sense with --dry-run (nothing can be applied without reading)")
        if script is not None and not dry_run:
            raise InputError("--script is written by --dry-run; add --dry-run")
        settings = discover(config)
        connection = _connection(settings, **overrides)
        wanted = _desired(settings, mailbox, users_file, trustees)
        job = Job(action, wanted.mailboxes, wanted.trustees, connection, dry_run=dry_run, offline=offline,
                  automapping_unsupported_ok=automapping_unsupported_ok)
        # the journal of [reapply] records grant and revoke runs too, so `journal undo` can reverse them (each batch
        # is one O_APPEND write, so a concurrent reapply's lines never interleave with these)
        result = _execute(job, report, settings.reapply)
        if result.run_id is not None:
            _err(f"run {result.run_id} recorded in {settings.reapply.journal}")
        _emit_script(result, script)
        _report_problems(result)
        _err(reports.summary_line(result))
        raise typer.Exit(int(result.exit_code))


def _change_cli(action: Action, help_text: str) -> Callable[..., None]:
    """grant and revoke share every option; revoke refuses --automapping (it only shapes new grants)."""

    def command(
        config: ConfigOpt = None,
        mailbox: MailboxOpt = None,
        users_file: UsersFileOpt = None,
        admin_user: AdminOpt = None,
        service_account: ServiceOpt = None,
        trustee: TrusteeOpt = None,
        automapping: AutomapOpt = None,
        dry_run: DryRunOpt = False,
        offline: OfflineOpt = False,
        script: ScriptOpt = None,
        report: ReportOpt = None,
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
        mode: ModeOpt = None,
        batch_size: BatchOpt = None,
        parallel: ParallelOpt = None,
        fast_wire: FastWireOpt = None,
        insecure_lab: LabOpt = False,
        automapping_unsupported_ok: NoAutomapOpt = False,
    ) -> None:
        if action is Action.REVOKE and automapping is not None:
            with _edge():
                raise InputError("--automapping shapes new grants; revoke does not take it")
        _change_command(
            action,
            config=config,
            mailbox=mailbox,
            users_file=users_file,
            trustees=TrusteeOptions(admin_user, service_account, trustee or (), automapping),
            dry_run=dry_run,
            offline=offline,
            script=script,
            report=report,
            overrides=dict(
                server=server, port=port, scheme=scheme, auth=auth, username=username,
                keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
                domain_controller=domain_controller, mode=mode, insecure_lab=insecure_lab, batch_size=batch_size,
                parallel=parallel, fast_wire=fast_wire,
            ),
            automapping_unsupported_ok=automapping_unsupported_ok,
        )

    command.__doc__ = help_text
    return command


app.command("grant")(
    _change_cli(Action.GRANT, "Give the trustees Full Access on every target mailbox (only what is missing).")
)
app.command("revoke")(
    _change_cli(
        Action.REVOKE,
        "Remove the trustees' explicit Full Access from the target mailboxes (inherited and Deny entries stay).",
    )
)


@app.command()
def audit(
    config: ConfigOpt = None,
    mailbox: MailboxOpt = None,
    users_file: UsersFileOpt = None,
    admin_user: AdminOpt = None,
    service_account: ServiceOpt = None,
    trustee: TrusteeOpt = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    report: ReportOpt = None,
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
    mode: ModeOpt = None,
    batch_size: BatchOpt = None,
    parallel: ParallelOpt = None,
    fast_wire: FastWireOpt = None,
    insecure_lab: LabOpt = False,
) -> None:
    """Read-only: which targets have, lack, block or could not be read for each trustee. Exit 3 on drift."""
    with _edge():
        formatters = {"table": reports.as_table, "csv": reports.as_csv, "json": _json}
        if output_format not in formatters:
            raise InputError(f"--format must be one of {', '.join(formatters)}, not '{output_format}'")
        settings = discover(config)
        connection = _connection(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            domain_controller=domain_controller, mode=mode, insecure_lab=insecure_lab, batch_size=batch_size,
            parallel=parallel, fast_wire=fast_wire,
        )
        wanted = _desired(settings, mailbox, users_file, TrusteeOptions(admin_user, service_account, trustee or ()))
        result = _execute(Job(Action.AUDIT, wanted.mailboxes, wanted.trustees, connection), report)
        sys.stdout.write(formatters[output_format](result))
        _err(reports.summary_line(result))
        raise typer.Exit(int(result.exit_code))


def _json(result: RunResult) -> str:
    import json

    return json.dumps(reports.report_document(result), indent=2, ensure_ascii=False) + "\n"


def _lock_path(settings: Config, explicit: Path | None, journal: Path | None) -> Path:
    if explicit is not None:
        return explicit
    if settings.reapply.lock_file is not None:
        return settings.reapply.lock_file
    if journal is not None:
        return journal.with_name(journal.name + ".lock")
    base = settings.source.parent if settings.source is not None else Path.cwd()
    return base / ".provisioner.lock"


@app.command()
def reapply(
    config: ConfigOpt = None,
    mailbox: MailboxOpt = None,
    users_file: UsersFileOpt = None,
    admin_user: AdminOpt = None,
    service_account: ServiceOpt = None,
    trustee: TrusteeOpt = None,
    automapping: AutomapOpt = None,
    prune: Annotated[bool, typer.Option("--prune", help="Remove managed trustees' explicit access from mailboxes "
                                        "no longer targeted")] = False,
    dry_run: DryRunOpt = False,
    script: ScriptOpt = None,
    max_changes: Annotated[
        int | None, typer.Option("--max-changes", min=0, help="Refuse larger plans (exit 6)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Apply even above --max-changes")] = False,
    report: ReportOpt = None,
    journal: Annotated[Path | None, typer.Option("--journal", help="JSON-lines change journal")] = None,
    metrics_file: Annotated[Path | None, typer.Option("--metrics-file", help="Prometheus textfile")] = None,
    lock_file: Annotated[Path | None, typer.Option("--lock-file", help="Lock (default: next to the journal)")] = None,
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
    batch_size: BatchOpt = None,
    parallel: ParallelOpt = None,
    fast_wire: FastWireOpt = None,
    insecure_lab: LabOpt = False,
    automapping_unsupported_ok: NoAutomapOpt = False,
) -> None:
    """The scheduled job: reconcile desired state (targets + selectors) with the live permissions, safely."""
    from dataclasses import replace as with_values

    from provisioner.lock import exclusive
    from provisioner.reapply import ReapplyJob, run_reapply, write_outputs

    with _edge():
        if script is not None and not dry_run:
            raise InputError("--script is written by --dry-run; add --dry-run")
        settings = discover(config)
        connection = _connection(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            domain_controller=domain_controller, insecure_lab=insecure_lab, batch_size=batch_size, parallel=parallel,
            fast_wire=fast_wire,
        )
        if connection.mode != "command":
            raise InputError("reapply runs in command mode (structured commands); remove connection.mode")
        wanted_selectors = settings.selectors if not (mailbox or users_file) else ()
        trustee_options = TrusteeOptions(admin_user, service_account, trustee or (), automapping)
        wanted = _desired(settings, mailbox, users_file, trustee_options, selectors_count=len(wanted_selectors))
        if not wanted.targets.targets and not wanted_selectors:
            raise InputError("no targets: give --mailbox/--users-file, or [targets] mailboxes/users_file/selector")
        reapply_settings = settings.reapply
        overrides: dict[str, Any] = {
            "max_changes": max_changes, "journal": journal, "metrics_file": metrics_file, "report": report,
        }
        reapply_settings = with_values(reapply_settings, **{k: v for k, v in overrides.items() if v is not None})
        job = ReapplyJob(
            connection, wanted.trustees, wanted.mailboxes, wanted_selectors, settings.exclude, reapply_settings,
            prune=prune, dry_run=dry_run, force=force, automapping_unsupported_ok=automapping_unsupported_ok,
        )
        check_connection_settings(connection)
        password = resolve_password(connection)
        with exclusive(_lock_path(settings, lock_file, reapply_settings.journal)):
            result = run_reapply(job, password=password, progress=_progress_factory())
            write_outputs(result, reapply_settings, None, None)
        for note in result.notes:
            _err(f"note: {note}")
        _emit_script(result, script)
        _report_problems(result)
        _err(f"run {result.run_id}: " + reports.summary_line(result))
        if result.refused is not None:
            _err(f"error: {result.refused}")
        raise typer.Exit(int(result.final_exit_code))


journal_app = typer.Typer(no_args_is_help=True, help="The change journal of re-apply runs.")
app.add_typer(journal_app, name="journal")
JournalOpt = Annotated[Path | None, typer.Option("--journal", help="Journal file (default: [reapply] journal)")]


def _journal_path(settings: Config, journal: Path | None) -> Path:
    path = journal or settings.reapply.journal
    if path is None:
        raise InputError("no journal: pass --journal or set [reapply] journal in the config")
    return path


@journal_app.command("list")
def journal_list(config: ConfigOpt = None, journal: JournalOpt = None) -> None:
    """The runs recorded in the journal, with how many changes each made."""
    from provisioner.journal import changes_of, run_ids

    with _edge():
        path = _journal_path(discover(config), journal)
        for run_id in run_ids(path):
            typer.echo(f"{run_id}  {len(changes_of(path, run_id))} changes")


@journal_app.command("undo")
def journal_undo(
    run_id: Annotated[str, typer.Argument(help="The run to undo (see 'provisioner journal list')")],
    config: ConfigOpt = None,
    journal: JournalOpt = None,
    dry_run: DryRunOpt = False,
    script: ScriptOpt = None,
    report: ReportOpt = None,
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
) -> None:
    """Apply (or with --dry-run, write) the inverse of every change a run made, newest first."""
    from provisioner.undo import run_undo

    with _edge():
        settings = discover(config)
        connection = _connection(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            domain_controller=domain_controller, insecure_lab=insecure_lab,
        )
        path = _journal_path(settings, journal)
        password = None
        if not dry_run:
            check_connection_settings(connection)
            password = resolve_password(connection)
        with exclusive_for(settings, path):
            result = run_undo(path, run_id, connection, settings.reapply, dry_run=dry_run, password=password,
                              automapping_unsupported_ok=automapping_unsupported_ok)
        _emit_script(result, script)
        if report is not None:
            reports.write_report(result, report)
        _report_problems(result)
        _err(reports.summary_line(result))
        raise typer.Exit(int(result.exit_code))


def exclusive_for(settings: Config, journal: Path) -> Any:
    from provisioner.lock import exclusive

    return exclusive(_lock_path(settings, None, journal))


def _emit_script(result: RunResult, script: Path | None) -> None:
    """A dry-run's script to ``--script`` (owner-only) or to stdout; nothing when the run wrote none."""
    if result.script is None:
        return
    if script is None:
        sys.stdout.write(result.script)
    else:
        write_private(script, result.script)
        _err(f"script written to {script}")


def _report_problems(result: RunResult) -> None:
    for outcome in result.outcomes:
        if outcome.result in PROBLEM_RESULTS:
            detail = f": {outcome.error}" if outcome.error else (f": {outcome.detail}" if outcome.detail else "")
            _err(f"{outcome.result.value}: {outcome.mailbox} / {outcome.trustee.identity}{detail}")


@app.command()
def check(
    config: ConfigOpt = None,
    server: ServerOpt = None,
    port: PortOpt = None,
    scheme: SchemeOpt = None,
    auth: AuthOpt = None,
    username: UserOpt = None,
    keytab: KeytabOpt = None,
    principal: PrincipalOpt = None,
    spn_service: SpnServiceOpt = None,
    spn_hostname: SpnHostOpt = None,
    mode: ModeOpt = None,
    insecure_lab: LabOpt = False,
) -> None:
    """Connect and report: reachable, authenticated, configuration, language mode, cmdlets available."""
    from provisioner.check import run_check

    with _edge():
        settings = discover(config)
        connection = _connection(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username, mode=mode,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            insecure_lab=insecure_lab,
        )
        check_connection_settings(connection)
        findings = run_check(connection, resolve_password(connection))
        for finding in findings.lines:
            typer.echo(finding)
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
            _err("the lab endpoint is a separate distribution: pip install -e ./lab (make demo installs it)")
            raise typer.Exit(2) from None
        with _edge():
            serve_exo(port=port, mailboxes=mailboxes, echo=_err, ready_file=ready_file, latency_ms=latency_ms)
        return
    try:
        from provisioner_lab.profiles import get_profile
        from provisioner_lab.run import serve
    except ImportError:
        _err("the lab endpoint is a separate distribution: pip install -e ./lab (make demo installs it)")
        raise typer.Exit(2) from None

    try:
        server_profile = get_profile(profile)
    except ValueError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    with _edge():
        serve(
            port=port, mailboxes=mailboxes, seed=seed, full_language=full_language, latency_ms=latency_ms,
            ready_file=ready_file, echo=_err, profile=server_profile, cost=cost,
        )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"provisioner {__version__}")
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
