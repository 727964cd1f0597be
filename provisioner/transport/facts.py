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
from dataclasses import dataclass, field
from typing import Any

from provisioner.errors import ExitCode, ProvisionerError
from provisioner.powershell.cmdlets import SELECT, needed_by_metadata

#: What provisioner may send, per cmdlet: the parameters it uses (a step uses a subset of them); from the one table.
NEEDED: Mapping[str, tuple[str, ...]] = needed_by_metadata()
BATCH_PROTOCOL = (2, 2)
#: PowerShell's own Select-Object, which Exchange's endpoint keeps public (decompiled 2013 CU23
#: InitialSessionStateBuilder ``alwaysPublicCommands``; KB 2922668): reads ask only for the properties the tool uses.
SELECT_OBJECT = SELECT.name


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


@dataclass
class Projection:
    """This session's use of ``Select-Object -Property``: ``refused`` holds the server's refusal once one came (the
    session reads unprojected from then on)."""

    refused: Any = None


@dataclass(frozen=True)
class ServerFacts:
    """What this session's server and account are. ``commands`` None: not read (script mode, or no metadata)."""

    protocol_version: str = ""
    ps_version_table: Mapping[str, str] = field(default_factory=dict)
    commands: Mapping[str, frozenset[str]] | None = None  # cmdlet -> parameter names (case-folded)
    notes: tuple[str, ...] = ()
    asked: frozenset[str] | None = None  # the cmdlets whose metadata was asked for (case-folded); None: all
    projection: Projection = field(default_factory=Projection, compare=False, repr=False)

    def known(self, cmdlet: str) -> bool:
        """Whether this session read ``cmdlet``'s metadata (a run asks only for the cmdlets it may send)."""
        return self.commands is not None and (self.asked is None or cmdlet.casefold() in self.asked)

    @property
    def runs_statements(self) -> bool:
        """The server runs every statement of a pipeline (protocol >= 2.2); below, only the first one."""
        return version_tuple(self.protocol_version) >= BATCH_PROTOCOL

    @property
    def projects(self) -> bool:
        """Reads may end in ``| Select-Object -Property ...``: the command metadata lists it with -Property for this
        account, and this session's server has not refused it."""
        if self.projection.refused is not None or self.commands is None or not self.known(SELECT_OBJECT):
            return False
        return self.has_parameter(SELECT_OBJECT, "Property")

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
