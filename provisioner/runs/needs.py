"""What a run needs of the server, decided before anything is sent: the cmdlets its session reads the metadata of,
the cmdlets and parameters it will send (from the one table, :mod:`provisioner.powershell.cmdlets`), and the step
options for the server at hand (a run the server or account cannot carry out is refused here, having sent nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from provisioner.domain.model import Action, Trustee
from provisioner.inputs.config import Connection
from provisioner.powershell import cmdlets as table
from provisioner.powershell.steps import StepOptions
from provisioner.transport.facts import AUTOMAPPING_HINT, MissingCapability, ServerFacts, refuse_missing
from provisioner.transport.session import SessionLike

FactsCheck = Callable[[SessionLike], StepOptions]
"""The facts check of a run: its step options for the session's server, or an error (nothing sent) when the server
or account cannot carry the run out."""

GRANTING = table.ADD_PERMISSION.runs  # the runs that may grant


def step_options(
    connection: Connection, facts: ServerFacts | None, automapping_unsupported_ok: bool, action: Action = Action.GRANT,
    trustees: Sequence[Trustee] = (),
) -> StepOptions:
    """How this run's steps are built, from the connection and the server facts (None: offline, nothing known).

    A server without -AutoMapping (Exchange 2010 before SP2, or an RBAC role without it) automaps every grant; a
    run that grants is refused unless the admin accepts that (``--accept-automapping``); then -AutoMapping is left
    out of every grant, visibly in the reviewed script too. A run whose ``trustees`` all asked for automapping gets
    what it asked for there, so it is not refused.
    """
    automapping = True
    if facts is not None and not facts.has_parameter("Add-MailboxPermission", "AutoMapping"):
        wants_off = not trustees or any(not trustee.automapping for trustee in trustees)
        if not automapping_unsupported_ok and action in GRANTING and wants_off:
            raise MissingCapability(AUTOMAPPING_HINT)
        automapping = False
    return StepOptions(domain_controller=connection.domain_controller, automapping=automapping)


def required(action: Action, options: StepOptions, piping: bool) -> dict[str, set[str]]:
    """The cmdlets and parameters a run of ``action`` will send (checked against the facts before any is sent)."""
    return table.required(action, piping=piping, domain_controller=bool(options.domain_controller),
                          automapping=options.automapping)


def cmdlets(action: Action) -> tuple[str, ...]:
    """The cmdlets a run of ``action`` may send (whose metadata its session reads): reapply resolves selectors
    (Get-DistributionGroupMember) too."""
    return table.run_cmdlets(action)


def prepare(
    session: SessionLike, action: Action, connection: Connection, automapping_unsupported_ok: bool,
    trustees: Sequence[Trustee] = (),
) -> StepOptions:
    """Step options for this session's server, after refusing a run the server or account cannot carry out."""
    options = step_options(connection, session.facts, automapping_unsupported_ok, action, trustees)
    refuse_missing(session.facts, required(action, options, session.runner.piping))
    return options


def needs(action: Action, connection: Connection, automapping_unsupported_ok: bool,
          trustees: Sequence[Trustee] = ()) -> FactsCheck:
    """The facts check of a run of ``action``: :func:`prepare` on the run's session."""
    return lambda session: prepare(session, action, connection, automapping_unsupported_ok, trustees)
