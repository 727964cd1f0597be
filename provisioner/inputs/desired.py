"""Desired state from config + command line: the trustees and the target mailboxes of a run.

Command-line values override the config file: ``--admin-user``/``--service-account`` replace the config's,
``--trustee`` replaces the config's extra trustees, and any ``--mailbox``/``--users-file`` replaces the
config's targets. Every identity is validated here, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provisioner.domain.model import Identity, Trustee
from provisioner.errors import InputError
from provisioner.inputs.config import Config, TrusteeSpec
from provisioner.inputs.identity import InputWarning, Source, column_problem, parse_identity
from provisioner.inputs.users import Target, TargetList, collect_targets


@dataclass(frozen=True)
class TrusteeOptions:
    admin_user: str | None = None
    service_account: str | None = None
    extra: Sequence[str] = ()
    automapping: bool | None = None  # None: the config's default (off unless configured)


@dataclass
class Desired:
    trustees: tuple[Trustee, ...]
    targets: TargetList
    notes: list[str] = field(default_factory=list)  # trustee warnings, as "where: message"

    @property
    def mailboxes(self) -> tuple[Identity, ...]:
        return tuple(target.identity for target in self.targets.targets)

    @property
    def sources(self) -> dict[Identity, str]:
        """Where each target was given: ``users.csv:12``, ``--mailbox`` or ``config:<path>``."""
        return {target.identity: str(target.source) for target in self.targets.targets}


def _trustee(spec: TrusteeSpec, where: str, automapping: bool, notes: list[str]) -> Trustee:
    identity, warnings = parse_identity(spec.identity, Source(where, None))
    notes.extend(str(warning) for warning in warnings)
    return Trustee(identity, spec.automapping if spec.automapping is not None else automapping, spec.role)


def trustees(config: Config, options: TrusteeOptions) -> tuple[tuple[Trustee, ...], list[str]]:
    automapping = options.automapping if options.automapping is not None else config.automapping
    by_role = {spec.role: spec for spec in config.trustees if spec.role != "trustee"}
    where = {role: f"config:{config.source}" for role in by_role}
    if options.admin_user is not None:
        by_role["admin-user"], where["admin-user"] = TrusteeSpec(options.admin_user, "admin-user"), "--admin-user"
    if options.service_account is not None:
        by_role["service-account"] = TrusteeSpec(options.service_account, "service-account")
        where["service-account"] = "--service-account"
    specs = [(by_role[role], where[role]) for role in ("admin-user", "service-account") if role in by_role]
    if options.extra:
        specs += [(TrusteeSpec(value, "trustee"), "--trustee") for value in options.extra]
    else:
        specs += [(spec, f"config:{config.source}") for spec in config.trustees if spec.role == "trustee"]
    result: list[Trustee] = []
    notes: list[str] = []
    for spec, source in specs:
        trustee = _trustee(spec, source, automapping, notes)
        if any(existing.identity == trustee.identity for existing in result):
            notes.append(f"{source}: trustee {trustee.identity} is listed twice; using it once")
            continue
        result.append(trustee)
    if not result:
        raise InputError("no trustees: give --admin-user, --service-account or --trustee, or [trustees] in the config")
    return tuple(result), notes


def targets(
    config: Config, mailboxes: Sequence[str], users_files: Sequence[Path], *, allow_empty: bool = False,
    column: str | None = None,
) -> TargetList:
    """The explicit targets; ``column`` (``--column``) names the users files' identity column, else the config's
    ``[targets] column``."""
    if column is not None:
        problem = column_problem(column)
        if problem is not None:
            raise InputError(f"--column: {problem}")
    column = column if column is not None else config.column
    if mailboxes or users_files:
        found = collect_targets(mailboxes, users_files, column=column)
    else:
        origin = f"config:{config.source}"
        config_targets: list[Target] = []
        warnings: list[InputWarning] = []
        for index, value in enumerate(config.mailboxes, start=1):
            source = Source(f"{origin} targets.mailboxes[{index}]", None)
            identity, found_warnings = parse_identity(value, source)
            config_targets.append(Target(identity, source))
            warnings += found_warnings
        found = collect_targets([], config.users_files, config_targets, column=column)
        found.warnings[:0] = warnings
    if not found.targets and not allow_empty:
        raise InputError("no target mailboxes: give --mailbox or --users-file, or [targets] in the config")
    return found


def desired(
    config: Config,
    options: TrusteeOptions,
    mailboxes: Sequence[str],
    users_files: Sequence[Path],
    *,
    selectors_count: int = 0,
    column: str | None = None,
) -> Desired:
    """Trustees and explicit targets; with selectors (``selectors_count``), explicit targets may be empty."""
    trustee_list, notes = trustees(config, options)
    found = targets(config, mailboxes, users_files, allow_empty=selectors_count > 0, column=column)
    return Desired(trustee_list, found, notes)
