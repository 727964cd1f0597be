"""Error records the engine produces, and the Python exception that carries a terminating one.

Texts marked [doc]/[code]/[3p] in ``exchange-facts.md`` are copied exactly; PowerShell engine texts
(parameter binding, command lookup) are PowerShell's own English messages. Texts the facts file calls
UNCONFIRMED are flagged where they are built.
"""

from __future__ import annotations

import uuid
from typing import Any

from provisioner_lab.api import LabError

NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
AMBIGUOUS = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"
PARAMETER_BINDING = "System.Management.Automation.ParameterBindingException"
ARGUMENT_TRANSFORMATION = "System.Management.Automation.ParameterBindingArgumentTransformationException"
VALIDATION = "System.Management.Automation.ParameterBindingValidationException"
PARSE = "System.Management.Automation.ParseException"
COMMAND_NOT_FOUND = "System.Management.Automation.CommandNotFoundException"
HOST = "System.Management.Automation.Host.HostException"
TRANSPORT = "System.Management.Automation.Remoting.PSRemotingTransportException"
INVALID_OPERATION = "System.InvalidOperationException"
TASK = "Microsoft.Exchange.Configuration.Tasks.TaskException"

NO_LANGUAGE_MESSAGE = (
    "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode."
)
NON_INTERACTIVE_MESSAGE = "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available."

# The .NET class behind each cmdlet, for Exchange's FullyQualifiedErrorId suffix.
CMDLET_CLASSES = {
    "Add-MailboxPermission": "Microsoft.Exchange.Management.RecipientTasks.AddMailboxPermission",
    "Get-MailboxPermission": "Microsoft.Exchange.Management.RecipientTasks.GetMailboxPermission",
    "Remove-MailboxPermission": "Microsoft.Exchange.Management.RecipientTasks.RemoveMailboxPermission",
    "Get-Mailbox": "Microsoft.Exchange.Management.RecipientTasks.GetMailbox",
    "Get-Recipient": "Microsoft.Exchange.Management.RecipientTasks.GetRecipient",
    "Get-DistributionGroupMember": "Microsoft.Exchange.Management.RecipientTasks.GetDistributionGroupMember",
    "Get-User": "Microsoft.Exchange.Management.RecipientTasks.GetUser",
}

#: The .NET class of the PowerShell core cmdlets the session keeps public (their binding errors' FQEID suffix).
CORE_CLASSES = {
    "Select-Object": "Microsoft.PowerShell.Commands.SelectObjectCommand",
    "Measure-Object": "Microsoft.PowerShell.Commands.MeasureObjectCommand",
}


def short_name(exception_type: str) -> str:
    return exception_type.rsplit(".", 1)[-1]


class CmdletError(Exception):
    """Raised inside a cmdlet; ``terminating`` errors fail the whole pipeline."""

    def __init__(self, record: LabError, *, terminating: bool) -> None:
        super().__init__(record.message)
        self.record = record
        self.terminating = terminating


def engine_error(
    message: str,
    exception_type: str,
    category: str,
    fq_error_id: str,
    *,
    target: Any = None,
    command: str | None = None,
    bound: dict[str, Any] | None = None,
) -> LabError:
    """A PowerShell-engine style error record (FQEID ``Id,Cmdlet`` is given in full by the caller)."""
    return LabError(
        message=message,
        exception_type=exception_type,
        category=category,
        reason=short_name(exception_type),
        fq_error_id=fq_error_id,
        target_object=target,
        command=command,
        bound_parameters=bound,
    )


def exchange_error(
    message: str,
    exception_type: str,
    category: str,
    *,
    cmdlet: str,
    server: str,
    timestamp: str,
    target: Any = None,
    bound: dict[str, Any] | None = None,
) -> LabError:
    """An Exchange task error: FQEID ``[Server=..,RequestId=..,TimeStamp=..] [FailureCategory=Cmdlet-X] id,Class``.

    The layout follows the on-prem transcript quoted in the facts file ([3p]); the 8-hex id is derived from
    the message and so is stable but not the real resource hash.
    """
    reason = short_name(exception_type)
    code = f"{uuid.uuid5(uuid.NAMESPACE_OID, reason + message).int & 0xFFFFFFFF:08X}"
    fqeid = (
        f"[Server={server},RequestId={uuid.uuid4()},TimeStamp={timestamp}] "
        f"[FailureCategory=Cmdlet-{reason}] {code},{CMDLET_CLASSES.get(cmdlet, cmdlet)}"
    )
    return LabError(
        message=message,
        exception_type=exception_type,
        category=category,
        reason=reason,
        fq_error_id=fqeid,
        target_object=target,
        command=cmdlet,
        bound_parameters=bound,
    )


def binding_error(
    message: str, error_id: str, cmdlet: str, *, exception_type: str = PARAMETER_BINDING,
    category: str = "InvalidArgument", target: Any = None,
) -> CmdletError:
    """A terminating ParameterBindingException with FQEID ``<error_id>,<command>``: the cmdlet name for Exchange's
    proxy functions, the .NET class for PowerShell's own cmdlets (``...,Microsoft.PowerShell.Commands.
    SelectObjectCommand``)."""
    fq_error_id = f"{error_id},{CORE_CLASSES.get(cmdlet, cmdlet)}"
    record = engine_error(message, exception_type, category, fq_error_id, target=target, command=cmdlet)
    return CmdletError(record, terminating=True)
