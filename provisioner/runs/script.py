"""The review script of a plan, one function for every verb: a dry-run (grant, revoke, reapply, undo) and a saved
plan's script (``plan … --out``) render the same steps the run would send, with the backend's header."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from provisioner.domain.model import Plan
from provisioner.inputs.config import Connection
from provisioner.powershell import steps as step_builders
from provisioner.powershell.render import ScriptContext, render_script
from provisioner.powershell.steps import StepOptions


def script_context(connection: Connection) -> ScriptContext:
    """Header and preamble of the reviewed script: the server (and DC) on-prem; for Exchange Online the V3 module's
    ``Connect-ExchangeOnline`` line, after which the same cmdlets run."""
    if connection.backend == "exo":
        from provisioner.transport.exo import script

        return ScriptContext(script.target(connection), None, script.connect_line(connection), exchange_online=True)
    preamble = connection.preamble if connection.mode == "script" else None
    return ScriptContext(connection.server or "(not configured)", connection.domain_controller, preamble)


def plan_script(plan: Plan, options: StepOptions, connection: Connection, *, now: datetime | None = None,
                digest: str | None = None) -> str:
    """``plan``'s changes as the reviewed script (``digest``: a saved plan's, shown in the header)."""
    context = script_context(connection)
    if digest is not None:
        context = replace(context, plan_digest=digest)
    changes: Iterable[step_builders.Step] = step_builders.changes(plan, options)  # a generator: no step is kept
    return render_script(plan, changes, context, now=now)
