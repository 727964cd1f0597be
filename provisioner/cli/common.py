"""What the commands share before a run: errors to exit codes (the one edge), the configuration, connection and
targets from the options, every output path proven writable, and the `plan` variants of commands. The run protocol
of changing commands is :mod:`provisioner.cli.protocol`, the end of a run :mod:`provisioner.cli.running`."""

from __future__ import annotations

import functools
import inspect
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from provisioner.cli.options import ConnectionArgs, PlanFormatOpt, PlanOutOpt, PlanScriptOpt, TargetArgs
from provisioner.errors import InputError, ProvisionerError
from provisioner.inputs.config import Config, Connection, RunSettings, load_located
from provisioner.inputs.desired import Desired, TrusteeOptions, desired
from provisioner.inputs.schema import problem as setting_problem
from provisioner.inputs.schema import specs
from provisioner.output.runlog import RUN
from provisioner.runs.protocol import Guard
from provisioner.runs.result import Job
from provisioner.transport.psrp.connect import check_connection_settings, resolve_password


def err(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def edge() -> Iterator[None]:
    """Domain errors become a message and an exit code; nothing else is caught (a bug should show)."""
    try:
        yield
    except ProvisionerError as exc:
        err(f"error: {exc}")
        RUN.failed(str(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        err("interrupted")
        raise typer.Exit(130) from None


#: Settings whose option is not named after the setting.
OPTION_NAMES = {"run_deadline_seconds": "--deadline"}


def option_name(name: str) -> str:
    return OPTION_NAMES.get(name, "--" + name.replace("_", "-"))


def check_options(cls: type, **values: Any) -> None:
    """Each given option (not None) checked by the settings schema of ``cls``: the config file's rules and
    sentences, with the option named (``--port: 0 is not between 1 and 65535``)."""
    table = specs(cls)
    for name, value in values.items():
        if value is None:
            continue
        problem = setting_problem(table[name], value)
        if problem is not None:
            raise InputError(f"{option_name(name)}: {problem}")


def discover(path: Path | None) -> Config:
    """The run's configuration (:mod:`provisioner.inputs.discovery`'s search): the file used, and why, is named on
    stderr
    first and the run's start is logged (:mod:`provisioner.output.runlog`). A file that cannot be read is named by the
    error instead, which is then the first line on stderr."""
    from provisioner.inputs.discovery import locate

    found = locate(path)
    try:
        settings = load_located(found)
    except ProvisionerError:  # the error names the file and comes first; the log's start line follows it
        RUN.begin(found.path, found.origin, log=False)
        raise
    err(f"config: {found.describe()}")
    RUN.begin(found.path, found.origin)
    return settings


def connection_of(config: Config, args: ConnectionArgs, **more: Any) -> Connection:
    """The run's connection: the config's ``[connection]`` with the options given on the command line over it."""
    overrides = {**args.given, **more}
    check_options(Connection, **overrides)
    if overrides.get("insecure_lab") is False:
        overrides["insecure_lab"] = None  # a flag that is not given does not switch the config's setting off
    connection = config.connection.with_overrides(**overrides)
    if not connection.cert_validation:  # on every run, so that it is never forgotten
        err("warning: TLS certificate validation is off (connection.cert_validation = false): "
             "anyone on the network path could pose as the server")
    return connection


def wanted_from(
    config: Config,
    targets: TargetArgs,
    options: TrusteeOptions,
    *,
    selectors_count: int = 0,
    connection: Connection | None = None,
    offline: bool = False,
) -> Desired:
    if connection is not None:
        require_basics(config, connection, targets.given, options, offline=offline)
    wanted = desired(config, options, targets.mailbox or [], targets.users_file or [], selectors_count=selectors_count,
                     column=targets.column)
    for duplicate in wanted.targets.duplicates:
        err(f"{duplicate.target.source}: duplicate of {duplicate.first.source} ({duplicate.first.identity}); folded")
    for warning in wanted.targets.warnings:
        err(f"warning: {warning.source}: {warning.message}")
    for note in wanted.notes:
        err(f"warning: {note}")
    return wanted


def require_basics(config: Config, connection: Connection, targets_given: bool, options: TrusteeOptions, *,
                   offline: bool = False) -> None:
    """Everything a run needs that neither the options nor a config give (trustees, targets, server), listed at
    once, each in its own check's words, instead of one missing thing per run; a run without a config file says
    that first."""
    from provisioner.inputs.desired import targets, trustees

    checks: list[Callable[[], object]] = []
    if not (options.admin_user or options.service_account or options.extra or config.trustees):
        checks.append(lambda: trustees(config, options))
    if not (targets_given or config.mailboxes or config.users_files or config.selectors):
        checks.append(lambda: targets(config, [], []))
    if connection.backend == "psrp" and not connection.server and not offline:
        checks.append(lambda: check_connection_settings(connection))
    missing: list[str] = []
    for check in checks:
        try:
            check()
        except InputError as exc:
            missing.append(str(exc))
    if config.source is None and missing:
        raise InputError("no configuration file found (see `provisioner config path`); " + "; ".join(missing))
    if len(missing) > 1:
        raise InputError("; ".join(missing), where=str(config.source))


def check_output(output_format: str | None, dry_run: bool = False, script: Path | None = None) -> None:
    """--format is table, json or csv; its items go to stdout, so not beside a dry-run's script there."""
    from provisioner.output.emit import check_format

    check_format(output_format)
    if output_format is not None and dry_run and script is None:
        raise InputError("--dry-run writes its script to stdout: with --format, put the script in a file "
                         "(--script FILE)")


def credentials(job: Job) -> str | None:
    """The run's password (None: offline, or not needed), after refusing unsafe settings; asked before the run lock
    is taken, so that a prompt never holds the lock and a missing password is exit 2, not 5."""
    if job.offline:
        return None
    check_connection_settings(job.connection)
    return resolve_password(job.connection)


def plan_script_path(out: Path, script: Path | None) -> Path:
    """Where a saved plan's review script goes: ``--script``, else beside the plan as ``FILE.ps1``."""
    return script or out.with_name(out.name + ".ps1")


def given_or_configured(option: str, given: Path | None, key: str, configured: Path | None
                        ) -> tuple[str, Path | None]:
    """An output path and how the user named it: the option when given, else the config key."""
    return (option, given) if given is not None else (key, configured)


def readable_journal(path: Path, given: bool) -> Path:
    """The journal that ``journal list``/``undo`` read: a regular file if it exists (a FIFO or a device would block
    the reading or never end). ``given``: it came from ``--journal``."""
    where = f"{'--journal' if given else 'journal'} {path}"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot use the journal: {getattr(exc, 'strerror', None) or exc}", where=where) from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise InputError(f"is {kind}, not a journal file", where=where)
    return path


def check_run_outputs(*, report: Path | None = None, html: Path | None = None, profile_list: Path | None = None,
                      script: Path | None = None, plan_out: Path | None = None,
                      extra: tuple[tuple[str, Path | None], ...] = (), guard: Guard | None = None,
                      settings: Config | None = None, journal: Path | None = None,
                      lock_file: Path | None = None) -> None:
    """Every file this run will write, proven writable before anything is sent (:mod:`provisioner.inputs.output_paths`).
    With ``plan_out`` the script is the plan's review script (beside the plan unless ``--script``). ``guard``: the
    journal and lock of a changing run (None: a dry-run, plan or audit uses neither); ``journal`` and
    ``lock_file`` are the options as given, ``settings`` the config, to name them in messages."""
    from provisioner.inputs.output_paths import check_outputs

    files: list[tuple[str, Path | None]] = [("--report", report), ("--html", html), ("--profile-list", profile_list)]
    if plan_out is not None:
        files += [("--out", plan_out), ("--script" if script is not None else "the review script (--out FILE.ps1)",
                                        plan_script_path(plan_out, script))]
    else:
        files.append(("--script", script))
    configured = settings.reapply if settings is not None else RunSettings()
    journal_name = "--journal" if journal is not None else "reapply.journal" if configured.journal else "journal"
    lock_name = "--lock-file" if lock_file is not None else "reapply.lock_file" if configured.lock_file else "lock file"
    check_outputs([*files, *extra], journal=guard.journal if guard is not None else None,
                  lock=guard.lock if guard is not None else None, journal_name=journal_name, lock_name=lock_name)


def hide(command: Callable[..., None], *names: str) -> Callable[..., None]:
    """``command`` as Typer shows it: without the parameters ``names`` (they keep their defaults)."""
    signature = inspect.signature(command, eval_str=True)

    @functools.wraps(command)
    def shown(**values: Any) -> None:
        command(**values)

    shown.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name not in names])
    return shown


def planning(command: Callable[..., None], help_text: str) -> Callable[..., None]:
    """``provisioner plan <command>``: the command's dry-run, saved as a plan file (``--out``) for ``apply``."""
    signature = inspect.signature(command, eval_str=True)
    dropped = ("dry_run", "offline", "plan_out", "yes", "profile_list", "journal", "no_journal", "lock_file")
    said = {"script": PlanScriptOpt, "output_format": PlanFormatOpt}  # what these options mean when planning
    kept = [p.replace(annotation=said.get(p.name, p.annotation)) for p in signature.parameters.values()
            if p.name not in dropped]
    out = inspect.Parameter("out", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=PlanOutOpt)

    def planned(**values: Any) -> None:
        command(dry_run=True, plan_out=values.pop("out"), **values)

    planned.__doc__ = help_text
    planned.__signature__ = signature.replace(parameters=[out, *kept])  # type: ignore[attr-defined]
    return planned


