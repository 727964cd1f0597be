"""The command line's shared options: one Annotated type per option, used by every command that takes it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from provisioner.inputs.config import Connection
from provisioner.inputs.desired import TrusteeOptions
from provisioner.inputs.schema import describe, specs
from provisioner.transport.facts import ACCEPT_AUTOMAPPING

_CONNECTION = specs(Connection)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config (default: searched for; `provisioner config path` shows "
                                                "where)")
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
PortOpt = Annotated[int | None, typer.Option("--port", help=describe(_CONNECTION["port"]))]
SchemeOpt = Annotated[str | None, typer.Option("--scheme", help=describe(_CONNECTION["scheme"]))]
AuthOpt = Annotated[str | None, typer.Option("--auth", help=describe(_CONNECTION["auth"]))]
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
ModeOpt = Annotated[str | None, typer.Option("--mode", help=describe(_CONNECTION["mode"]))]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help=describe(_CONNECTION["batch_size"]))]
ReadBatchOpt = Annotated[int | None, typer.Option(
    "--read-batch-size", help=describe(_CONNECTION["read_batch_size"]))]
ParallelOpt = Annotated[int | None, typer.Option("--parallel", help=describe(_CONNECTION["parallel"]))]
DeadlineOpt = Annotated[int | None, typer.Option(
    "--deadline", metavar="SECONDS", help=describe(_CONNECTION["run_deadline_seconds"]))]
LabOpt = Annotated[bool, typer.Option("--insecure-lab", help="Allow Basic over plain http (lab endpoint only)")]
AcceptAutomapOpt = Annotated[bool, typer.Option(
    ACCEPT_AUTOMAPPING,
    help="On a server without -AutoMapping (Exchange 2010 before SP2), where every grant is automapped: grant "
    "anyway, accepting that (default: such grants are refused)",
)]


def _deprecated_automapping(value: bool) -> bool:
    if value:
        typer.echo(f"warning: --automapping-unsupported-ok is deprecated, use {ACCEPT_AUTOMAPPING}: on a server "
                   "without -AutoMapping every grant is automapped, it is not granted without automapping", err=True)
    return value


DeprecatedAutomapOpt = Annotated[bool, typer.Option(
    "--automapping-unsupported-ok", hidden=True, callback=_deprecated_automapping,
    help=f"Deprecated: {ACCEPT_AUTOMAPPING}",
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
PlanScriptOpt = Annotated[Path | None, typer.Option(
    "--script", help="Write the plan's review script here (default: the plan file's name + .ps1)")]
PlanFormatOpt = Annotated[str | None, typer.Option("--format", help="The planned items on stdout: table, json or csv")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="Items on stdout: table, json or csv (with --dry-run, needs --script FILE)")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here (for a manager)")]
ColumnOpt = Annotated[str | None, typer.Option(
    "--column", help="The users files' identity column (a CSV header name; default: Identity, PrimarySmtpAddress, "
    "UserPrincipalName, Alias or Mailbox, whichever the header has)")]
JournalOpt = Annotated[Path | None, typer.Option(
    "--journal", help="Journal file (default: [reapply] journal, else the user's state folder)")]
NoJournalOpt = Annotated[bool, typer.Option(
    "--no-journal", help="Do not record this run: no undo, no reconciliation after a kill, no prune ownership")]
LockFileOpt = Annotated[Path | None, typer.Option("--lock-file", help="Lock (default: next to the journal)")]


@dataclass(frozen=True)
class ConnectionArgs:
    """The connection options a command was given, by their ``[connection]`` keys (None or False: not given)."""

    given: Mapping[str, Any] = field(default_factory=dict)


NO_CONNECTION = ConnectionArgs()

#: The options that reach a server: every command that connects takes them (and then those of its own).
CONNECT = ("server", "port", "scheme", "auth", "username", "keytab", "principal", "spn_service", "spn_hostname")
#: How a run reads and writes in batches (commands that read targets in bulk).
BATCHES = ("mode", "batch_size", "read_batch_size", "parallel")


# option (parameter) name -> (the [connection] key it overrides, its Annotated type, its default)
CONNECTION_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "server": ("server", ServerOpt, None),
    "port": ("port", PortOpt, None),
    "scheme": ("scheme", SchemeOpt, None),
    "auth": ("auth", AuthOpt, None),
    "username": ("username", UserOpt, None),
    "keytab": ("keytab", KeytabOpt, None),
    "principal": ("principal", PrincipalOpt, None),
    "spn_service": ("spn_service", SpnServiceOpt, None),
    "spn_hostname": ("spn_hostname", SpnHostOpt, None),
    "domain_controller": ("domain_controller", DcOpt, None),
    "mode": ("mode", ModeOpt, None),
    "batch_size": ("batch_size", BatchOpt, None),
    "read_batch_size": ("read_batch_size", ReadBatchOpt, None),
    "parallel": ("parallel", ParallelOpt, None),
    "deadline": ("run_deadline_seconds", DeadlineOpt, None),
    "insecure_lab": ("insecure_lab", LabOpt, False),
}


def connection_options(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A Typer command's connection options, written once: ``names`` (in that order) take the place of the command's
    ``connection_args: ConnectionArgs`` parameter, and the command receives what was given as one
    :class:`ConnectionArgs` (by ``[connection]`` key)."""
    table = {name: (CONNECTION_OPTIONS[name][1], CONNECTION_OPTIONS[name][2]) for name in names}
    keys = {name: CONNECTION_OPTIONS[name][0] for name in names}
    return option_group("connection_args", table,
                        lambda given: ConnectionArgs({keys[name]: value for name, value in given.items()}))


@dataclass(frozen=True)
class TargetArgs:
    """The targets and trustees a command was given (``--mailbox``, ``--users-file``, ``--column``, ``--admin-user``,
    ``--service-account``, ``--trustee``); None: not given, the configuration decides."""

    mailbox: list[str] | None = None
    users_file: list[Path] | None = None
    column: str | None = None
    admin_user: str | None = None
    service_account: str | None = None
    trustee: list[str] | None = None

    def trustee_options(self, automapping: bool | None = None) -> TrusteeOptions:
        return TrusteeOptions(self.admin_user, self.service_account, tuple(self.trustee or ()), automapping)

    @property
    def given(self) -> bool:
        """Whether targets were given on the command line (they replace the configuration's)."""
        return bool(self.mailbox or self.users_file)


NO_TARGETS = TargetArgs()
TARGET_OPTIONS: dict[str, tuple[Any, Any]] = {
    "mailbox": (MailboxOpt, None),
    "users_file": (UsersFileOpt, None),
    "column": (ColumnOpt, None),
    "admin_user": (AdminOpt, None),
    "service_account": (ServiceOpt, None),
    "trustee": (TrusteeOpt, None),
}


def target_options(command: Callable[..., None]) -> Callable[..., None]:
    """A Typer command's target and trustee options, written once (in the place of its ``targets: TargetArgs``)."""
    return option_group("targets", TARGET_OPTIONS, lambda given: TargetArgs(**given))(command)


@dataclass(frozen=True)
class ReviewArgs:
    """What a changing command writes for review: ``--dry-run`` (``--offline``: without connecting) and its
    ``--script``, the ``--report``, the items on stdout (``--format``) and the ``--html`` page."""

    dry_run: bool = False
    offline: bool = False
    script: Path | None = None
    report: Path | None = None
    output_format: str | None = None
    html: Path | None = None


NO_REVIEW = ReviewArgs()
REVIEW_OPTIONS: dict[str, tuple[Any, Any]] = {
    "dry_run": (DryRunOpt, False),
    "offline": (OfflineOpt, False),
    "script": (ScriptOpt, None),
    "report": (ReportOpt, None),
    "output_format": (FormatOpt, None),
    "html": (HtmlOpt, None),
}


def review_options(command: Callable[..., None]) -> Callable[..., None]:
    """A changing command's review options, written once (in the place of its ``review: ReviewArgs``)."""
    return option_group("review", REVIEW_OPTIONS, lambda given: ReviewArgs(**given))(command)


@dataclass(frozen=True)
class ConsentArgs:
    """What the admin accepts for a changing run: grants automapped on a server without -AutoMapping
    (``--accept-automapping``), removals without a terminal to confirm them (``--yes``), and the MAPI-profile list it
    wants (``--profile-list``)."""

    accept_automapping: bool = False
    yes: bool = False
    profile_list: Path | None = None


NO_CONSENT = ConsentArgs()
CONSENT_OPTIONS: dict[str, tuple[Any, Any]] = {
    "accept_automapping": (AcceptAutomapOpt, False),
    "automapping_unsupported_ok": (DeprecatedAutomapOpt, False),
    "yes": (YesOpt, False),
    "profile_list": (ProfileListOpt, None),
}


def consent_options(command: Callable[..., None]) -> Callable[..., None]:
    """A changing command's consent options, written once (in the place of its ``consent: ConsentArgs``); the
    deprecated ``--automapping-unsupported-ok`` counts as ``--accept-automapping``."""
    return option_group("consent", CONSENT_OPTIONS, lambda given: ConsentArgs(
        given["accept_automapping"] or given["automapping_unsupported_ok"], given["yes"], given["profile_list"]))(
        command)


def option_group(placeholder: str, table: Mapping[str, tuple[Any, Any]],
                 make: Callable[[dict[str, Any]], Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Options written once for many commands: the options of ``table`` (name -> (Annotated type, default), in that
    order) take the place of the command's ``placeholder`` parameter in its signature (so ``--help`` lists them
    there), and the command receives ``make(what was given)`` as that parameter."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name != placeholder:
                parameters.append(parameter)
                continue
            parameters.extend(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                                annotation=annotation) for name, (annotation, default) in table.items())

        @functools.wraps(command)
        def with_group(**values: Any) -> None:
            given = {name: values.pop(name, default) for name, (_, default) in table.items()}  # hidden: default
            command(**{placeholder: make(given)}, **values)

        with_group.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_group.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return with_group

    return decorate
