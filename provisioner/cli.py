"""The command line: parse, call, print. Exceptions become exit codes here and only here."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from provisioner import __version__
from provisioner import report as reports
from provisioner.applyplan import PlanCapture
from provisioner.config import AUTH_METHODS, Config, Connection, ReapplySettings, discover
from provisioner.confirm import Confirmation, changes_question, removals_question
from provisioner.desired import Desired, TrusteeOptions, desired
from provisioner.engine import ProgressFactory
from provisioner.errors import InputError, ProvisionerError
from provisioner.jobs import Hooks, Job, RunResult, run
from provisioner.model import PROBLEM_RESULTS, Action, Trustee, visible
from provisioner.profile import AUDIT_CHANGES, ProfileList, admin_users, require_admin
from provisioner.profile import as_csv as profile_csv
from provisioner.profile import as_table as profile_table
from provisioner.report import write_private
from provisioner.session import check_connection_settings, resolve_password

app = typer.Typer(
    add_completion=True,
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
YesOpt = Annotated[bool, typer.Option(
    "--yes", "-y", help="Answer yes to the confirmation (needed without a terminal: scripts, scheduled jobs)")]
ProfileListOpt = Annotated[Path | None, typer.Option(
    "--profile-list", help="CSV of the mailboxes to add to (or remove from) the admin-console user's MAPI profile")]
PlanOutOpt = Annotated[Path, typer.Option(
    "--out", help="Write the saved plan here (and its review script to --script, default FILE.ps1)")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="Items on stdout: table, json or csv (with --dry-run, needs --script FILE)")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here (for a manager)")]


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


def _progress_factory() -> AbstractContextManager[ProgressFactory | None]:
    """rich progress bars on stderr when it is a terminal, stopped when the block ends (before any summary line);
    None otherwise: stderr stays quiet in a scheduled job's log."""
    from provisioner.output import progress

    return progress()


def _check_output(output_format: str | None, dry_run: bool = False, script: Path | None = None) -> None:
    """--format is table, json or csv; its items go to stdout, so not beside a dry-run's script there."""
    from provisioner.output import check_format

    check_format(output_format)
    if output_format is not None and dry_run and script is None:
        raise InputError("--dry-run writes its script to stdout: with --format, put the script in a file "
                         "(--script FILE)")


def _present(result: RunResult, output_format: str | None, html: Path | None) -> None:
    """The items: --html to a file; --format on stdout (problem items first in a table); without --format the
    problem lines on stderr, as always."""
    from provisioner import output

    if html is not None:
        output.write_html(result, html)
        _err(f"HTML report written to {html}")
    if output_format is None:
        _report_problems(result)
    else:
        output.present(result, output_format)


def _execute(job: Job, report: Path | None, settings: ReapplySettings | None = None,
             hooks: Hooks | None = None, profile: ProfileList | None = None) -> RunResult:
    password = None
    if not job.offline:
        check_connection_settings(job.connection)  # refuse unsafe settings before asking for a password
        password = resolve_password(job.connection)
    with _progress_factory() as progress:
        result = run(job, password=password, progress=progress, settings=settings, hooks=hooks or Hooks())
    for note in result.notes:
        _err(f"warning: {note}")
    if profile is not None:
        result.profile = tuple(profile.entries)
    if report is not None:
        reports.write_report(result, report)
    return result


def _profile_for(trustees: tuple[Trustee, ...], path: Path | None, dry_run: bool, *shown_in: Path | None
                 ) -> ProfileList | None:
    """The MAPI-profile list of a run that changes the admin-console user's access (None: nothing to list). The
    mailboxes' names are read from Exchange only when a list or report (``path``, ``shown_in``) will show them."""
    if path is not None:
        require_admin(trustees, "--profile-list")
        if dry_run:
            raise InputError("--profile-list lists what a run granted or removed; a dry-run changes nothing")
    names = any(target is not None for target in (path, *shown_in))
    return ProfileList(names=names) if admin_users(trustees) and not dry_run else None


def _emit_profile(profile: ProfileList | None, path: Path | None) -> None:
    if profile is None:
        return
    line = profile.summary()
    if path is not None:
        write_private(path, profile_csv(profile.entries))
        _err(f"{line or 'MAPI profile of the admin-console user: no change'}: list written to {path}")
    elif line is not None:
        _err(f"{line} (list them with --profile-list FILE)")


def _save_plan(capture: PlanCapture, out: Path, script: Path | None) -> None:
    """Write the saved plan and its review script (owner-only), and say how to apply it."""
    from provisioner.applyplan import review_script

    saved = capture.saved
    if saved is None:  # the run stopped before planning (e.g. the session was lost): nothing to save
        raise ProvisionerError("no plan was made, so none was saved")
    text = review_script(saved)
    script_path = script or out.with_name(out.name + ".ps1")
    write_private(script_path, text)
    write_private(out, saved.dumps(hashlib.sha256(text.encode("utf-8")).hexdigest()))
    counts = ", ".join(f"{state} {n}" for state, n in sorted(saved.unchanged.items()))
    _err(f"plan {saved.digest}: {len(saved.changes)} changes ({saved.removals} removals)"
         + (f"; unchanged: {counts}" if counts else ""))
    _err(f"plan written to {out}, review script to {script_path}; apply it with: provisioner apply {out}")


def _hide(command: Callable[..., None], *names: str) -> Callable[..., None]:
    """``command`` as Typer shows it: without the parameters ``names`` (they keep their defaults)."""
    signature = inspect.signature(command, eval_str=True)

    @functools.wraps(command)
    def shown(**values: Any) -> None:
        command(**values)

    shown.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name not in names])
    return shown


def _planning(command: Callable[..., None], help_text: str) -> Callable[..., None]:
    """``provisioner plan <command>``: the command's dry-run, saved as a plan file (``--out``) for ``apply``."""
    signature = inspect.signature(command, eval_str=True)
    dropped = ("dry_run", "offline", "plan_out", "yes", "profile_list")
    kept = [p for p in signature.parameters.values() if p.name not in dropped]
    out = inspect.Parameter("out", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=PlanOutOpt)

    def planned(**values: Any) -> None:
        command(dry_run=True, plan_out=values.pop("out"), **values)

    planned.__doc__ = help_text
    planned.__signature__ = signature.replace(parameters=[out, *kept])  # type: ignore[attr-defined]
    return planned


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
    yes: bool = False,
    profile_list: Path | None = None,
    plan_out: Path | None = None,
    output_format: str | None = None,
    html: Path | None = None,
) -> None:
    with _edge():
        _check_output(output_format, dry_run and plan_out is None, script)  # a plan's script goes to a file
        if offline and not dry_run:
            raise InputError("--offline only makes sense with --dry-run (nothing can be applied without reading)")
        if script is not None and not dry_run:
            raise InputError("--script is written by --dry-run; add --dry-run")
        confirmation = Confirmation.from_terminal(yes)
        if action is Action.REVOKE and not dry_run:
            confirmation.require("revoke")
        settings = discover(config)
        connection = _connection(settings, **overrides)
        wanted = _desired(settings, mailbox, users_file, trustees)
        job = Job(action, wanted.mailboxes, wanted.trustees, connection, dry_run=dry_run, offline=offline,
                  automapping_unsupported_ok=automapping_unsupported_ok)
        profile = _profile_for(wanted.trustees, profile_list, dry_run, report, html)
        capture = PlanCapture(connection) if plan_out is not None else None
        planned = capture if capture is not None else (
            confirmation.hook(removals_question("revoke")) if action is Action.REVOKE and not dry_run else None)
        # the journal of [reapply] records grant and revoke runs too, so `journal undo` can reverse them (each batch
        # is one O_APPEND write, so a concurrent reapply's lines never interleave with these)
        result = _execute(job, report, settings.reapply, Hooks(planned, profile), profile)
        if result.run_id is not None:
            _err(f"run {result.run_id} recorded in {settings.reapply.journal}")
        if capture is not None and plan_out is not None:
            _save_plan(capture, plan_out, script)
        else:
            _emit_script(result, script)
        _present(result, output_format, html)
        _emit_profile(profile, profile_list)
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
        mode: ModeOpt = None,
        batch_size: BatchOpt = None,
        parallel: ParallelOpt = None,
        fast_wire: FastWireOpt = None,
        insecure_lab: LabOpt = False,
        automapping_unsupported_ok: NoAutomapOpt = False,
        yes: YesOpt = False,
        profile_list: ProfileListOpt = None,
        plan_out: Path | None = None,
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
            yes=yes,
            profile_list=profile_list,
            plan_out=plan_out,
            output_format=output_format,
            html=html,
        )

    command.__doc__ = help_text
    return command


_grant = _change_cli(Action.GRANT, "Give the trustees Full Access on every target mailbox (only what is missing).")
_revoke = _change_cli(
    Action.REVOKE,
    "Remove the trustees' explicit Full Access from the target mailboxes (inherited and Deny entries stay). "
    "Asks for confirmation (--yes without a terminal).",
)
app.command("grant")(_hide(_grant, "plan_out", "yes"))
app.command("revoke")(_hide(_revoke, "plan_out"))
plan_app = typer.Typer(no_args_is_help=True, help="Save a change for review and a later exact `provisioner apply`.")
app.add_typer(plan_app, name="plan")
plan_app.command("grant")(_planning(_grant, "Plan a grant: read, then save the changes and their review script."))
plan_app.command("revoke")(_planning(_revoke, "Plan a revoke: read, then save the changes and their review script."))


@app.command()
def audit(
    config: ConfigOpt = None,
    mailbox: MailboxOpt = None,
    users_file: UsersFileOpt = None,
    admin_user: AdminOpt = None,
    service_account: ServiceOpt = None,
    trustee: TrusteeOpt = None,
    output_format: FormatOpt = "table",
    for_profile: Annotated[bool, typer.Option(
        "--for-profile", help="List the targets the admin-console user can open, with display name, primary SMTP "
        "address and LegacyExchangeDN: what its MAPI profile must list")] = False,
    report: ReportOpt = None,
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
    mode: ModeOpt = None,
    batch_size: BatchOpt = None,
    parallel: ParallelOpt = None,
    fast_wire: FastWireOpt = None,
    insecure_lab: LabOpt = False,
) -> None:
    """Read-only: which targets have, lack, block or could not be read for each trustee. Exit 3 on drift."""
    with _edge():
        _check_output(output_format)
        settings = discover(config)
        connection = _connection(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            domain_controller=domain_controller, mode=mode, insecure_lab=insecure_lab, batch_size=batch_size,
            parallel=parallel, fast_wire=fast_wire,
        )
        wanted = _desired(settings, mailbox, users_file, TrusteeOptions(admin_user, service_account, trustee or ()))
        profile = None
        if for_profile:
            require_admin(wanted.trustees, "--for-profile")
            profile = ProfileList(AUDIT_CHANGES)
        job = Job(Action.AUDIT, wanted.mailboxes, wanted.trustees, connection)
        result = _execute(job, report, hooks=Hooks(finished=profile), profile=profile)
        if profile is not None:  # the MAPI profile's list instead of the items (the report and --html keep those)
            if html is not None:
                _present(result, None, html)
            sys.stdout.write(_profile_formats[output_format or "table"](profile))
        else:
            _present(result, output_format, html)
        _err(reports.summary_line(result))
        raise typer.Exit(int(result.exit_code))


_profile_formats: dict[str, Callable[[ProfileList], str]] = {
    "table": lambda profile: profile_table(profile.entries),
    "csv": lambda profile: profile_csv(profile.entries),
    "json": lambda profile: json.dumps([e.record() for e in profile.entries], indent=2, ensure_ascii=False) + "\n",
}


def _lock_path(settings: Config, explicit: Path | None, journal: Path | None) -> Path:
    if explicit is not None:
        return explicit
    if settings.reapply.lock_file is not None:
        return settings.reapply.lock_file
    if journal is not None:
        return journal.with_name(journal.name + ".lock")
    base = settings.source.parent if settings.source is not None else Path.cwd()
    return base / ".provisioner.lock"


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
    output_format: FormatOpt = None,
    html: HtmlOpt = None,
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
    yes: YesOpt = False,
    profile_list: ProfileListOpt = None,
    plan_out: Path | None = None,
) -> None:
    """The scheduled job: reconcile desired state (targets + selectors) with the live permissions, safely. With
    --prune it asks for confirmation before removing (--yes without a terminal)."""
    from dataclasses import replace as with_values

    from provisioner.lock import exclusive
    from provisioner.reapply import ReapplyJob, run_reapply, write_outputs

    with _edge():
        _check_output(output_format, dry_run and plan_out is None, script)  # a plan's script goes to a file
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
        confirmation = Confirmation.from_terminal(yes)
        if prune and not dry_run:
            confirmation.require("reapply --prune")
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
        profile = _profile_for(wanted.trustees, profile_list, dry_run, reapply_settings.report, html)
        capture = PlanCapture(connection) if plan_out is not None else None
        planned = capture if capture is not None else (
            confirmation.hook(removals_question("reapply --prune")) if prune and not dry_run else None)
        check_connection_settings(connection)
        password = resolve_password(connection)
        with exclusive(_lock_path(settings, lock_file, reapply_settings.journal)):
            with _progress_factory() as progress:
                result = run_reapply(job, password=password, progress=progress, hooks=Hooks(planned, profile))
            if profile is not None:
                result.profile = tuple(profile.entries)
            write_outputs(result, reapply_settings, None, None)
        for note in result.notes:
            _err(f"note: {note}")
        if capture is not None and plan_out is not None and result.refused is None:
            _save_plan(capture, plan_out, script)
        else:
            _emit_script(result, script)
        _present(result, output_format, html)
        _emit_profile(profile, profile_list)
        _err(f"run {result.run_id}: " + reports.summary_line(result))
        if result.refused is not None:
            _err(f"error: {result.refused}")
        raise typer.Exit(int(result.final_exit_code))


app.command("reapply")(_hide(reapply, "plan_out"))
plan_app.command("reapply")(_planning(
    reapply, "Plan a re-apply (selectors, --prune): read, then save the changes and their review script."))


journal_app = typer.Typer(no_args_is_help=True, help="The change journal of re-apply runs.")
app.add_typer(journal_app, name="journal")
JournalOpt = Annotated[Path | None, typer.Option("--journal", help="Journal file (default: [reapply] journal)")]


def _journal_path(settings: Config, journal: Path | None) -> Path:
    path = journal or settings.reapply.journal
    if path is None:
        raise InputError("no journal: pass --journal or set [reapply] journal in the config")
    return path


@journal_app.command("list")
def journal_list(config: ConfigOpt = None, journal: JournalOpt = None, output_format: FormatOpt = "table") -> None:
    """The runs recorded in the journal, with how many changes each made."""
    from provisioner.journal import changes_of, run_ids

    with _edge():
        _check_output(output_format)
        path = _journal_path(discover(config), journal)
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
) -> None:
    """Apply (or with --dry-run, write) the inverse of every change a run made, newest first. Asks for
    confirmation (--yes without a terminal)."""
    from provisioner.undo import run_undo, undo_plan

    with _edge():
        _check_output(output_format, dry_run, script)
        settings = discover(config)
        connection = _connection(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            domain_controller=domain_controller, insecure_lab=insecure_lab,
        )
        path = _journal_path(settings, journal)
        password = None
        if not dry_run:
            confirmation = Confirmation.from_terminal(yes)
            confirmation.require("journal undo")
            question = changes_question(f"undo {run_id}", undo_plan(path, run_id))
            if question is not None:
                confirmation.confirm(question)
            check_connection_settings(connection)
            password = resolve_password(connection)
        with exclusive_for(settings, path), _progress_factory() as progress:
            result = run_undo(path, run_id, connection, settings.reapply, dry_run=dry_run, password=password,
                              automapping_unsupported_ok=automapping_unsupported_ok, progress=progress)
        _emit_script(result, script)
        if report is not None:
            reports.write_report(result, report)
        _present(result, output_format, html)
        _err(reports.summary_line(result))
        raise typer.Exit(int(result.exit_code))


@app.command("apply")
def apply_plan(
    plan_file: Annotated[Path, typer.Argument(help="The plan `provisioner plan … --out FILE` saved")],
    config: ConfigOpt = None,
    allow_drift: Annotated[bool, typer.Option(
        "--allow-drift", help="If the state moved since the plan, apply the changes that are still valid")] = False,
    yes: YesOpt = False,
    report: ReportOpt = None,
    output_format: FormatOpt = None,
    html: HtmlOpt = None,
    profile_list: ProfileListOpt = None,
    server: Annotated[str | None, typer.Option("--server", help="Must be the plan's (default: the plan's)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Must be the plan's (default: the plan's)")] = None,
    scheme: Annotated[str | None, typer.Option("--scheme", help="Must be the plan's (default: the plan's)")] = None,
    auth: AuthOpt = None,
    username: UserOpt = None,
    keytab: KeytabOpt = None,
    principal: PrincipalOpt = None,
    spn_service: SpnServiceOpt = None,
    spn_hostname: SpnHostOpt = None,
    parallel: ParallelOpt = None,
    fast_wire: FastWireOpt = None,
    insecure_lab: LabOpt = False,
) -> None:
    """Apply exactly a saved plan's changes, after reading again what they depend on: if anything moved (a grant
    already there, a mailbox gone, another server), nothing is changed (exit 7) unless --allow-drift. Asks for
    confirmation when the plan removes access (--yes without a terminal)."""
    from provisioner.applyplan import PlanDrift, connection_for, run_apply
    from provisioner.lock import exclusive
    from provisioner.planfile import load

    with _edge():
        _check_output(output_format)
        saved = load(plan_file)
        given = {"server": server, "port": port, "scheme": scheme}
        moved = [f"{name}: the plan is for {saved.endpoint.get(name)}, --{name} says {value}"
                 for name, value in given.items() if value is not None and value != saved.endpoint.get(name)]
        if moved:
            raise PlanDrift(moved, 0, len(saved.changes), hard=True)
        _err(f"plan {saved.digest}: {saved.action.value}, {len(saved.changes)} changes ({saved.removals} removals), "
             f"made {saved.created} for {saved.endpoint.get('server')}")
        profile = _profile_for(saved.trustees, profile_list, False, report, html)
        if saved.removals:
            confirmation = Confirmation.from_terminal(yes)
            confirmation.require("applying a plan that removes access")
            question = changes_question(f"apply {plan_file}", saved.plan())
            if question is not None:
                confirmation.confirm(question)
        settings = discover(config)
        connection = _connection(
            settings, server=server, auth=auth, username=username, keytab=keytab, principal=principal,
            spn_service=spn_service,
            spn_hostname=spn_hostname, insecure_lab=insecure_lab, parallel=parallel, fast_wire=fast_wire,
        )
        connection = connection_for(saved, connection)
        check_connection_settings(connection)
        password = resolve_password(connection)
        with exclusive(_lock_path(settings, None, settings.reapply.journal)), _progress_factory() as progress:
            result = run_apply(saved, connection, settings.reapply, password=password, allow_drift=allow_drift,
                               progress=progress, hooks=Hooks(finished=profile))
        if profile is not None:
            result.profile = tuple(profile.entries)
        for note in result.notes:
            _err(f"note: {note}")
        if report is not None:
            reports.write_report(result, report)
        if result.run_id is not None:
            _err(f"run {result.run_id} recorded in {settings.reapply.journal}")
        _present(result, output_format, html)
        _emit_profile(profile, profile_list)
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
            _err(visible(f"{outcome.result.value}: {outcome.mailbox} / {outcome.trustee.identity}{detail}"))


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
    output_format: FormatOpt = "table",
) -> None:
    """Connect and report: reachable, authenticated, configuration, language mode, cmdlets available."""
    from provisioner.check import run_check
    from provisioner.output import present_findings

    with _edge():
        _check_output(output_format)
        settings = discover(config)
        connection = _connection(
            settings, server=server, port=port, scheme=scheme, auth=auth, username=username, mode=mode,
            keytab=keytab, principal=principal, spn_service=spn_service, spn_hostname=spn_hostname,
            insecure_lab=insecure_lab,
        )
        check_connection_settings(connection)
        findings = run_check(connection, resolve_password(connection))
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
