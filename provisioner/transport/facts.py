"""Server facts, read once per session: the negotiated PSRP protocol, the real PSVersionTable, and which of the
needed cmdlets and parameters this account really has.

- The protocol comes from the server's SESSION_CAPABILITY (pypsrp ``RunspacePool.protocol_version``). A server
  below 2.2 (Windows PowerShell 2.0: Exchange 2010) reads only the first statement of a pipeline (``Cmds``) and
  silently ignores the rest (``ExtraCmds``; PowerShell's own client sends them only when the server is >= 2.2,
  ``ServerSupportsBatchInvocation``). pypsrp sends them regardless, so :attr:`ServerFacts.runs_statements` gates
  every multi-statement pipeline.
- The PSVersionTable comes from the pool's APPLICATION_PRIVATE_DATA (pypsrp ``application_private_data``).
- Cmdlets and parameters come from GET_COMMAND_METADATA (pypsrp ``RunspacePool.get_command_metadata``, answered
  by the server's Get-Command; it works in NoLanguage). RBAC trims the parameters a role may use, and
  ``-AutoMapping`` exists only from Exchange 2010 SP2, so a step is checked against these facts before anything
  is sent (:func:`missing_for`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from pypsrp.exceptions import InvalidPSRPOperation, WSManFaultError

from provisioner.errors import ExitCode, ProvisionerError
from provisioner.transport import guard, records

#: What provisioner may send, per cmdlet: the parameters it uses (a step uses a subset of them).
NEEDED: Mapping[str, tuple[str, ...]] = {
    "Get-Mailbox": ("Identity", "ResultSize", "OrganizationalUnit", "Filter", "RecipientTypeDetails",
                    "DomainController"),
    "Get-MailboxPermission": ("Identity", "User", "DomainController"),
    "Add-MailboxPermission": ("Identity", "User", "AccessRights", "InheritanceType", "AutoMapping",
                              "DomainController"),
    "Remove-MailboxPermission": ("Identity", "User", "AccessRights", "InheritanceType", "Confirm",
                                 "DomainController"),
    "Get-DistributionGroupMember": ("Identity", "ResultSize", "DomainController"),
}
#: Parameters that only some runs need (a missing one is a FAIL only when a step uses it).
OPTIONAL = frozenset({("Add-MailboxPermission", "AutoMapping"), ("Get-Mailbox", "OrganizationalUnit"),
                      ("Get-Mailbox", "Filter"), ("Get-Mailbox", "RecipientTypeDetails"),
                      ("Get-DistributionGroupMember", "Identity"), ("Get-DistributionGroupMember", "ResultSize"),
                      ("Get-Mailbox", "DomainController"), ("Get-MailboxPermission", "DomainController"),
                      ("Add-MailboxPermission", "DomainController"), ("Remove-MailboxPermission", "DomainController"),
                      ("Get-DistributionGroupMember", "DomainController")})
BATCH_PROTOCOL = (2, 2)


class MissingCapability(ProvisionerError):
    """A step needs a cmdlet or parameter this server or account does not have: refused before anything is sent."""

    exit_code = ExitCode.USAGE


def version_tuple(text: str | None) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in (text or "").split("."):
        if not piece.strip().isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


@dataclass(frozen=True)
class ServerFacts:
    """What this session's server and account are. ``commands`` None: not read (script mode, or no metadata)."""

    protocol_version: str = ""
    ps_version_table: Mapping[str, str] = field(default_factory=dict)
    commands: Mapping[str, frozenset[str]] | None = None  # cmdlet -> parameter names (case-folded)
    notes: tuple[str, ...] = ()
    asked: frozenset[str] | None = None  # the cmdlets whose metadata was asked for (case-folded); None: all

    def known(self, cmdlet: str) -> bool:
        """Whether this session read ``cmdlet``'s metadata (a run asks only for the cmdlets it may send)."""
        return self.commands is not None and (self.asked is None or cmdlet.casefold() in self.asked)

    @property
    def runs_statements(self) -> bool:
        """The server runs every statement of a pipeline (protocol >= 2.2); below, only the first one."""
        return version_tuple(self.protocol_version) >= BATCH_PROTOCOL

    @property
    def ps_version(self) -> str:
        return self.ps_version_table.get("PSVersion", "")

    def has_cmdlet(self, cmdlet: str) -> bool:
        if not self.known(cmdlet) or self.commands is None:
            return True
        return cmdlet.casefold() in {name.casefold() for name in self.commands}

    def has_parameter(self, cmdlet: str, parameter: str) -> bool:
        if not self.known(cmdlet) or self.commands is None:
            return True
        for name, parameters in self.commands.items():
            if name.casefold() == cmdlet.casefold():
                return parameter.casefold() in parameters
        return False

    def missing(self, cmdlet: str, parameters: Iterable[str]) -> list[str]:
        """What of ``cmdlet -parameters`` this server lacks, one phrase each (empty: it can run)."""
        if not self.has_cmdlet(cmdlet):
            return [f"{cmdlet} (not available to this account: RBAC, or not an Exchange endpoint)"]
        return [f"{cmdlet} -{name}" for name in parameters if not self.has_parameter(cmdlet, name)]


ACCEPT_AUTOMAPPING = "--accept-automapping"
"""The option by which the admin accepts that every grant on such a server is automapped."""

AUTOMAPPING_FACT = (
    "this server has no -AutoMapping on Add-MailboxPermission (Exchange 2010 before SP2, or an RBAC role without "
    "it): every Full Access grant it makes is automapped, and the cmdlet cannot turn that off, so each trustee's "
    "Outlook opens every granted mailbox"
)
"""What a server without -AutoMapping does: the one sentence the refusal, ``check`` and the docs share."""

AUTOMAPPING_HINT = (
    f"{AUTOMAPPING_FACT}. To grant without automapping, use Exchange 2010 SP2 or later (or a role that has "
    f"-AutoMapping); or run with {ACCEPT_AUTOMAPPING} and clear msExchDelegateListLink on the granted mailboxes in "
    "Active Directory afterwards (an AD step, outside Exchange's endpoint)"
)


def refuse_missing(facts: ServerFacts, needed: Mapping[str, set[str]]) -> None:
    """Raise MissingCapability naming everything ``needed`` (cmdlet -> parameters) that the server lacks."""
    problems = [phrase for cmdlet, names in needed.items() for phrase in facts.missing(cmdlet, sorted(names))]
    if not problems:
        return
    if "Add-MailboxPermission -AutoMapping" in problems:
        raise MissingCapability(AUTOMAPPING_HINT)
    raise MissingCapability("this server or account lacks what the run needs, so nothing was sent: "
                            + "; ".join(problems))


def _table(data: Any) -> dict[str, str]:
    """PSVersionTable out of pypsrp's ApplicationPrivateData (a dict, possibly nested in a ``data`` attribute)."""
    payload = getattr(data, "data", data)
    if not isinstance(payload, Mapping):
        return {}
    table = payload.get("PSVersionTable")
    if not isinstance(table, Mapping):
        return {}
    return {str(name): records.text(value) for name, value in table.items()}


def read_facts(pool: Any, cmdlets: Iterable[str] = tuple(NEEDED)) -> ServerFacts:
    """The facts of an open pypsrp RunspacePool (public API only)."""
    protocol = records.text(getattr(pool, "protocol_version", "") or "")
    cmdlets = tuple(cmdlets)
    notes: list[str] = []
    commands: dict[str, frozenset[str]] | None
    bounds = guard.guard_of(pool)
    try:
        with bounds.operation("reading the command metadata", requests=50) if bounds else nullcontext():
            metadata = pool.get_command_metadata(list(cmdlets))
    except Exception as exc:
        if isinstance(exc, guard.DeadlineReached | guard.Stalled):
            raise
        if guard.is_transport_failure(exc) and not isinstance(exc, WSManFaultError | InvalidPSRPOperation):
            # no answer (a stalled reply), a reset or a broken security layer: the session is lost
            raise guard.Stalled(f"reading the command metadata: {type(exc).__name__}") from exc
        # a server that refuses GET_COMMAND_METADATA (a WSMan fault, a PSRP error): probed per cmdlet by check
        notes.append(f"command metadata not available ({type(exc).__name__}); parameters were not checked")
        commands = None
    else:
        commands = {}
        for entry in metadata:
            name = records.text(getattr(entry, "name", ""))
            parameters = getattr(entry, "parameters", None) or {}
            commands[name] = frozenset(str(key).casefold() for key in parameters)
    # APPLICATION_PRIVATE_DATA may arrive with the first answer after the pool opened: read it after the metadata
    table = _table(getattr(pool, "application_private_data", None))
    return ServerFacts(protocol, table, commands, tuple(notes), frozenset(name.casefold() for name in cmdlets))
