"""Plan items become steps: one cmdlet with ordered parameters. The one source for rendering and execution.

The renderer prints a step as a PowerShell command line; the command executor sends the same step as a
structured command (``add_cmdlet``/``add_parameter``). Neither adds, drops or reorders parameters, so the
script a human reviewed and the commands that run cannot diverge.

Parameter names and enum values are those of the real cmdlets (see ``lab/provisioner_lab/data/
exchange-cmdlets.json``, taken from the official cmdlet reference); which cmdlet takes which parameter, and when,
is the table of :mod:`provisioner.powershell.cmdlets`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from provisioner.domain.model import Identity, ItemState, PairKey, Plan, PlanItem, Trustee, pair_key
from provisioner.powershell import cmdlets
from provisioner.powershell.cmdlets import FULL_ACCESS as FULL_ACCESS
from provisioner.powershell.cmdlets import INHERIT_ALL as INHERIT_ALL
from provisioner.powershell.cmdlets import StepAction as StepAction
from provisioner.powershell.cmdlets import Value as Value
from provisioner.powershell.literals import Bare


@dataclass(frozen=True)
class Parameter:
    name: Bare
    value: Value

    @property
    def is_switch(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Command:
    """One cmdlet with its parameters in order: what a pipeline statement is made of."""

    cmdlet: Bare
    parameters: tuple[Parameter, ...]

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name.casefold() == name.casefold()), None)


_ACTIONS = cmdlets.step_actions()


@dataclass(frozen=True)
class Step:
    """One (mailbox, trustee) command: a read, a grant or a revoke (``action``)."""

    cmdlet: Bare
    parameters: tuple[Parameter, ...]
    mailbox: Identity
    trustee: Trustee

    @property
    def action(self) -> StepAction:
        return _ACTIONS[str(self.cmdlet)]

    @property
    def pair(self) -> PairKey:
        return pair_key(self.mailbox, self.trustee)

    @property
    def command(self) -> Command:
        return Command(self.cmdlet, self.parameters)


@dataclass(frozen=True)
class StepOptions:
    """How steps are built for this run. ``automapping``: False leaves -AutoMapping out (a server without it,
    where every grant is automapped, only when the admin accepts that: ``--accept-automapping``)."""

    domain_controller: str | None = None
    automapping: bool = True


def _parameters(*pairs: tuple[str, Value], options: StepOptions) -> tuple[Parameter, ...]:
    """The one place where -DomainController is added."""
    params = [Parameter(Bare(name), value) for name, value in pairs]
    if options.domain_controller:
        params.append(Parameter(Bare("DomainController"), options.domain_controller))
    return tuple(params)


def command(cmdlet: str, *pairs: tuple[str, Value], options: StepOptions) -> Command:
    """Any other read (Get-Mailbox, Get-DistributionGroupMember, ...), with -DomainController when pinned."""
    return Command(Bare(cmdlet), _parameters(*pairs, options=options))


def lookup(options: StepOptions) -> Command:
    """``Get-Mailbox`` taking its -Identity from pipeline input (it binds ByValue): the head of piped shapes."""
    return command(cmdlets.GET_MAILBOX.name, options=options)


def piped(step: Step) -> Command:
    """The step's command without -Identity: it then binds Identity ByPropertyName from the Mailbox objects that
    :func:`lookup` pipes into it. Every other parameter is the step's own, in its order."""
    return Command(step.cmdlet, tuple(p for p in step.parameters if p.name != "Identity"))


def grant(item: PlanItem, options: StepOptions) -> Step:
    """``Add-MailboxPermission -Identity M -User T -AccessRights FullAccess -InheritanceType All -AutoMapping:b``."""
    automapping = (("AutoMapping", item.trustee.automapping),) if options.automapping else ()
    return _full_access(cmdlets.ADD_PERMISSION, item, options, *automapping)


def revoke(item: PlanItem, options: StepOptions) -> Step:
    """``Remove-MailboxPermission -Identity M -User T -AccessRights FullAccess -InheritanceType All -Confirm:$false``.

    ``-Confirm:$false`` is required: the cmdlet's ConfirmImpact is High, and a remote pipeline cannot prompt.
    """
    return _full_access(cmdlets.REMOVE_PERMISSION, item, options, ("Confirm", False))


def _full_access(cmdlet: cmdlets.Cmdlet, item: PlanItem, options: StepOptions, *more: tuple[str, Value]) -> Step:
    """``cmdlet -Identity M -User T -AccessRights FullAccess -InheritanceType All`` and ``more``: a grant or a
    removal of one item's Full Access."""
    return Step(
        Bare(cmdlet.name),
        _parameters(
            ("Identity", item.mailbox.value),
            ("User", item.trustee.identity.value),
            ("AccessRights", FULL_ACCESS),
            ("InheritanceType", INHERIT_ALL),
            *more,
            options=options,
        ),
        item.mailbox,
        item.trustee,
    )


def read(mailbox: Identity, trustee: Trustee, options: StepOptions) -> Step:
    """``Get-MailboxPermission -Identity M -User T``: the server matches the trustee by SID, not by name."""
    return Step(
        Bare(cmdlets.GET_PERMISSION.name),
        _parameters(("Identity", mailbox.value), ("User", trustee.identity.value), options=options),
        mailbox,
        trustee,
    )


_BUILDERS = {ItemState.TO_ADD: grant, ItemState.TO_REMOVE: revoke}


def changes(plan: Plan, options: StepOptions) -> Iterator[Step]:
    """The steps that carry out every changing item of ``plan``, in plan order."""
    for item in plan.items:
        builder = _BUILDERS.get(item.state)
        if builder is not None:
            yield builder(item, options)

