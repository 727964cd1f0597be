"""The one table of the cmdlets provisioner sends, and every view of it.

Each :class:`Cmdlet` says what the tool sends and why: its parameters and when each is sent (:class:`When`), the
runs whose sessions read its metadata, whether a run checks it before anything is sent, the step it makes (a read,
a grant or a revoke) and the cmdlet that undoes it, how ``provisioner check`` probes it on each backend, whether
Exchange Online has it (and each parameter), and the type of the objects it returns. Everything else derives from
:data:`TABLE`:

- :func:`needed_by_metadata`, :func:`metadata_cmdlets`: what ``check`` expects GET_COMMAND_METADATA to show, and
  (:attr:`When.optional`) which of it only some runs need (:mod:`provisioner.transport.facts`,
  :mod:`provisioner.runs.check`);
- :func:`run_cmdlets`, :func:`required`: the cmdlets a run's session asks about, and what a run is refused without
  before anything is sent (:mod:`provisioner.runs.jobs`);
- :func:`exo_commands`, :func:`output_types`: Exchange Online's fixed table (there is no Get-Command over REST) and
  how its JSON objects are typed (:mod:`provisioner.transport.exo.runner`);
- :func:`probes`: ``check``'s probe of each cmdlet per backend (:mod:`provisioner.runs.check`,
  :mod:`provisioner.runs.check_exo`);
- :func:`step_actions`, :func:`inverse_of`: what a step does and what the journal records as its inverse
  (:mod:`provisioner.powershell.steps`, :mod:`provisioner.engine.journal`).

The builders in :mod:`provisioner.powershell.steps` and :mod:`provisioner.engine.resolve` give the values;
``tests/test_cmdlets.py`` proves that what the runs send is this table, no more and no less. Parameter names and
enum values are those of the real cmdlets (``lab/provisioner_lab/data/exchange-cmdlets.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from provisioner.domain.model import Action
from provisioner.powershell.literals import Bare

Value = str | bool | Bare | tuple[Bare, ...] | None
"""A parameter value: a user/config string, a boolean, a fixed token, a list of tokens, or None for a switch."""

FULL_ACCESS = (Bare("FullAccess"),)
INHERIT_ALL = Bare("All")
FRESH = "@probe"
"""In a probe: the identity that cannot exist (a fresh GUID per probe)."""


class StepAction(Enum):
    READ = "read"
    GRANT = "grant"
    REVOKE = "revoke"


class When(Enum):
    """When a parameter is sent."""

    EVERY = "every"  # on every command of the cmdlet: a run that sends the cmdlet is refused without it
    SOME = "some"  # on some commands (a lookup by -Identity, the prune scan's -ResultSize): check FAILs without it
    SELECTOR = "selector"  # only by runs with such a selector (reapply's OU, filter, group): check notes its absence
    DOMAIN_CONTROLLER = "domain_controller"  # on every command when the connection pins a domain controller
    AUTOMAPPING = "automapping"  # on every grant when the server has it (else left out: --accept-automapping)
    PROJECTION = "projection"  # on every read (and grant) when the session has it (else the objects come whole)

    @property
    def optional(self) -> bool:
        """Only some runs send it: a server without it refuses those runs only."""
        return self not in (When.EVERY, When.SOME)


class Precheck(Enum):
    """Whether a run checks a cmdlet against the server facts before anything is sent."""

    ALWAYS = "always"  # the per-(mailbox, trustee) steps
    PIPING = "piping"  # the lookup that heads piped shapes (``ids | Get-Mailbox | ...``): when the runner pipes
    NEVER = "never"  # selectors and check's lookups: their failure is reported where they run


@dataclass(frozen=True)
class Param:
    name: str
    when: When
    exo: bool = True  # Exchange Online's cmdlet has it


@dataclass(frozen=True)
class Probe:
    """How ``check`` calls a cmdlet against an identity that cannot exist: "not found" proves the account may run
    it (the changing cmdlets fail in the identity lookup, or run with -WhatIf)."""

    parameters: tuple[tuple[str, Value], ...]  # in order; FRESH: the fresh identity

    def arguments(self, fresh: str) -> tuple[tuple[str, Value], ...]:
        return tuple((name, fresh if value == FRESH else value) for name, value in self.parameters)


@dataclass(frozen=True)
class Cmdlet:
    name: str
    parameters: tuple[Param, ...]
    runs: frozenset[Action]  # the runs that may send it (their sessions read its metadata); none: check only
    precheck: Precheck = Precheck.NEVER
    action: StepAction | None = None  # the step it makes
    inverse: str | None = None  # the cmdlet that undoes its change (the journal's "inverse")
    probe: Probe | None = None  # check, over PowerShell remoting
    exo_probe: Probe | None = None  # check, over Exchange Online REST
    exo: bool = True  # Exchange Online has it
    output: str | None = None  # the type of the objects it returns (Exchange Online's JSON objects get it)

    @property
    def optional(self) -> bool:
        """Only some runs send it (a missing cmdlet is then no FAIL in ``check``)."""
        return all(parameter.when.optional for parameter in self.parameters)

    def parameter(self, name: str) -> Param | None:
        return next((p for p in self.parameters if p.name.casefold() == name.casefold()), None)

    def sent(self, *, domain_controller: bool, automapping: bool) -> set[str]:
        """The parameters every command of this cmdlet carries, with these run options."""
        on = {When.EVERY, *((When.DOMAIN_CONTROLLER,) if domain_controller else ()),
              *((When.AUTOMAPPING,) if automapping else ())}
        return {parameter.name for parameter in self.parameters if parameter.when in on}


DC = Param("DomainController", When.DOMAIN_CONTROLLER, exo=False)
EVERY_RUN = frozenset(Action)
GRANTING = frozenset({Action.GRANT, Action.REAPPLY, Action.UNDO})
REVOKING = frozenset({Action.REVOKE, Action.REAPPLY, Action.UNDO})
ACE_TYPE = "Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject"
MAILBOX_TYPE = "Microsoft.Exchange.Data.Directory.Management.Mailbox"
RECIPIENT_TYPE = "Microsoft.Exchange.Data.Directory.Management.ReducedRecipient"

GET_MAILBOX = Cmdlet(
    "Get-Mailbox",
    (Param("Identity", When.SOME), Param("ResultSize", When.SOME), Param("OrganizationalUnit", When.SELECTOR),
     Param("Filter", When.SELECTOR), Param("RecipientTypeDetails", When.SELECTOR), DC),
    EVERY_RUN, Precheck.PIPING,
    exo_probe=Probe((("Identity", FRESH),)),
    output=MAILBOX_TYPE,
)
GET_PERMISSION = Cmdlet(
    "Get-MailboxPermission",
    (Param("Identity", When.EVERY), Param("User", When.EVERY), DC),
    EVERY_RUN, Precheck.ALWAYS, StepAction.READ,
    probe=Probe((("Identity", FRESH), ("User", FRESH))),
    exo_probe=Probe((("Identity", FRESH), ("User", FRESH))),
    output=ACE_TYPE,
)
ADD_PERMISSION = Cmdlet(
    "Add-MailboxPermission",
    (Param("Identity", When.EVERY), Param("User", When.EVERY), Param("AccessRights", When.EVERY),
     Param("InheritanceType", When.EVERY), Param("AutoMapping", When.AUTOMAPPING), DC),
    GRANTING, Precheck.ALWAYS, StepAction.GRANT, "Remove-MailboxPermission",
    probe=Probe((("Identity", FRESH), ("User", FRESH), ("AccessRights", FULL_ACCESS), ("WhatIf", None))),
    exo_probe=Probe((("Identity", FRESH), ("User", FRESH), ("AccessRights", FULL_ACCESS),
                     ("InheritanceType", INHERIT_ALL), ("AutoMapping", False))),
    output=ACE_TYPE,
)
REMOVE_PERMISSION = Cmdlet(
    "Remove-MailboxPermission",
    (Param("Identity", When.EVERY), Param("User", When.EVERY), Param("AccessRights", When.EVERY),
     Param("InheritanceType", When.EVERY), Param("Confirm", When.EVERY), DC),
    REVOKING, Precheck.ALWAYS, StepAction.REVOKE, "Add-MailboxPermission",
    probe=Probe((("Identity", FRESH), ("User", FRESH), ("AccessRights", FULL_ACCESS), ("WhatIf", None),
                 ("Confirm", False))),
    exo_probe=Probe((("Identity", FRESH), ("User", FRESH), ("AccessRights", FULL_ACCESS),
                     ("InheritanceType", INHERIT_ALL), ("Confirm", False))),
    output=ACE_TYPE,
)
GET_GROUP_MEMBER = Cmdlet(
    "Get-DistributionGroupMember",
    (Param("Identity", When.SELECTOR), Param("ResultSize", When.SELECTOR), DC),
    frozenset({Action.REAPPLY}),
    output=RECIPIENT_TYPE,
)
#: PowerShell's own Select-Object, public on Exchange's endpoint: reads (and grants) end in ``| Select-Object
#: -Property ...`` where the session has it (:func:`provisioner.engine.shapes.projected`); not over REST.
SELECT = Cmdlet("Select-Object", (Param("Property", When.PROJECTION, exo=False),), EVERY_RUN, exo=False)
GET_USER = Cmdlet("Get-User", (Param("Identity", When.EVERY), DC), frozenset())  # check: what a trustee is
GET_RECIPIENT = Cmdlet("Get-Recipient", (Param("Identity", When.EVERY), DC), frozenset())  # a mail-enabled group

TABLE: tuple[Cmdlet, ...] = (GET_MAILBOX, GET_PERMISSION, ADD_PERMISSION, REMOVE_PERMISSION, GET_GROUP_MEMBER,
                             SELECT, GET_USER, GET_RECIPIENT)


def named(name: str) -> Cmdlet:
    """The table's entry for ``name`` (any case); KeyError for a cmdlet the tool never sends."""
    for cmdlet in TABLE:
        if cmdlet.name.casefold() == name.casefold():
            return cmdlet
    raise KeyError(name)


def metadata_cmdlets() -> tuple[Cmdlet, ...]:
    """The cmdlets some run sends: what ``check`` reads through GET_COMMAND_METADATA."""
    return tuple(cmdlet for cmdlet in TABLE if cmdlet.runs)


def needed_by_metadata() -> dict[str, tuple[str, ...]]:
    """cmdlet -> every parameter the tool may send with it (a step uses a subset), for the cmdlets runs send."""
    return {cmdlet.name: tuple(p.name for p in cmdlet.parameters) for cmdlet in metadata_cmdlets()}


def run_cmdlets(action: Action) -> tuple[str, ...]:
    """The cmdlets a run of ``action`` may send (whose metadata its session reads)."""
    return tuple(cmdlet.name for cmdlet in TABLE if action in cmdlet.runs)


def required(action: Action, *, piping: bool, domain_controller: bool, automapping: bool) -> dict[str, set[str]]:
    """The cmdlets and parameters a run of ``action`` will send, checked against the facts before any is sent."""
    checked = {Precheck.ALWAYS, *((Precheck.PIPING,) if piping else ())}
    return {cmdlet.name: cmdlet.sent(domain_controller=domain_controller, automapping=automapping)
            for cmdlet in TABLE if action in cmdlet.runs and cmdlet.precheck in checked}


def exo_commands() -> dict[str, frozenset[str]]:
    """Exchange Online's cmdlets and the parameters of each that the tool uses (case-folded)."""
    return {cmdlet.name: frozenset(p.name.casefold() for p in cmdlet.parameters if p.exo)
            for cmdlet in TABLE if cmdlet.exo}


def output_types() -> dict[str, str]:
    """cmdlet (case-folded) -> the type of the objects it returns."""
    return {cmdlet.name.casefold(): cmdlet.output for cmdlet in TABLE if cmdlet.output}


def probes(exo: bool = False) -> tuple[tuple[str, Probe], ...]:
    """``check``'s probes in table order: over Exchange Online REST (``exo``) or PowerShell remoting."""
    found = ((cmdlet.name, cmdlet.exo_probe if exo else cmdlet.probe) for cmdlet in TABLE)
    return tuple((name, probe) for name, probe in found if probe is not None)


def step_actions() -> dict[str, StepAction]:
    """cmdlet -> what its step does (read, grant, revoke)."""
    return {cmdlet.name: cmdlet.action for cmdlet in TABLE if cmdlet.action is not None}


def inverse_of(action: str) -> Cmdlet:
    """The cmdlet that undoes a journaled ``action``: journals write "grant" or "revoke" (what is not a grant was a
    removal)."""
    doing = StepAction.GRANT if action == StepAction.GRANT.value else StepAction.REVOKE
    return next(named(cmdlet.inverse) for cmdlet in TABLE if cmdlet.action is doing and cmdlet.inverse)
