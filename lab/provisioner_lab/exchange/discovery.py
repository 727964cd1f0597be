"""Command discovery: what GET_COMMAND_METADATA (PowerShell runs ``Get-Command``) answers about the cmdlets.

PowerShell's server answers the message by running ``Get-Command -Name <names> -CommandType <types>
[-Module <namespaces>]`` twice: once piped to ``Measure-Object | Select-Object Count`` (the count object, with
``-ErrorAction SilentlyContinue``) and once piped to ``Select-Object Name, Namespace, HelpUri, CommandType,
ResolvedCommandName, OutputType, Parameters`` (one object per command) [PowerShell ServerRunspacePoolDriver].
So the names are PowerShell wildcards, an unknown name gives no entry, and the second pipeline's Get-Command
writes its usual error for a name without wildcards that matches nothing. The parameters are the session's: the
profile's, minus what RBAC trims for the caller; common parameters belong to ``__AllParameterSets``.

Approximations: the lab's Exchange cmdlets and the core cmdlets Exchange keeps public (Select-Object,
Measure-Object: :mod:`provisioner_lab.exchange.core`, namespace Microsoft.PowerShell.Utility) are listed, not the
rest a restricted Exchange session also exposes (Get-Command, Out-Default, ...); HelpUri is null; OutputType
comes from the JSON's evidence
(decompiled OutputType attributes) where there is one; ``Namespace`` is the Exchange snap-in name (UNCONFIRMED).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from provisioner_lab.api import CMDLET, CommandInfo, LabError, MetadataQuery, ParameterInfo, ParameterSetInfo
from provisioner_lab.exchange.core import OUTPUT_TYPES as CORE_OUTPUT_TYPES
from provisioner_lab.exchange.enums import ENUMS
from provisioner_lab.exchange.errors import COMMAND_NOT_FOUND, engine_error
from provisioner_lab.exchange.specs import CmdletSpec, ParamSpec

ALL_SETS = "__AllParameterSets"

_TASKS = "Microsoft.Exchange.Configuration.Tasks."
_TYPE_NAMES = {
    "SwitchParameter": "System.Management.Automation.SwitchParameter",
    "String": "System.String",
    "String[]": "System.String[]",
    "Object[]": "System.Object[]",
    "Int32[]": "System.Int32[]",
    "PSObject": "System.Management.Automation.PSObject",
    "Boolean": "System.Boolean",
    "Int32": "System.Int32",
    "ActionPreference": "System.Management.Automation.ActionPreference",
    "PSCredential": "System.Management.Automation.PSCredential",
    "Fqdn": "Microsoft.Exchange.Data.Fqdn",
    "Unlimited": "Microsoft.Exchange.Data.Unlimited`1[System.UInt32]",
    "MultiValuedProperty": "Microsoft.Exchange.Data.MultiValuedProperty`1[System.String]",
    "MailboxAcePresentationObject": "Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",
}

#: OutputType of the cmdlets with evidence in exchange-cmdlets.json (decompiled attributes).
OUTPUT_TYPES: dict[str, tuple[str, ...]] = {
    "Add-MailboxPermission": ("Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",),
    "Get-MailboxPermission": ("Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",),
    "Get-Mailbox": ("Microsoft.Exchange.Data.Directory.Management.Mailbox",),
    "Get-DistributionGroupMember": ("Microsoft.Exchange.Data.Directory.Management.ReducedRecipient",),
}


def type_name(short: str) -> str:
    """The full .NET type name of a parameter type as the JSON spells it (``MailboxRights[]`` ...)."""
    array = short.endswith("[]")
    base = short[:-2] if array else short
    if short in _TYPE_NAMES:
        return _TYPE_NAMES[short]
    if base in ENUMS:
        full = ENUMS[base][0]
    elif base.endswith("IdParameter"):
        full = _TASKS + base
    else:
        full = _TYPE_NAMES.get(base, base)
    return full + "[]" if array else full


def wildcard(pattern: str) -> re.Pattern[str]:
    """A PowerShell wildcard (``*``, ``?``, ``[a-z]``, backtick escapes) as a case-insensitive regex."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "`" and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end > index + 1:
                body = pattern[index + 1:end].replace("\\", "\\\\").replace("^", "\\^")
                parts.append(f"[{body}]")
                index = end + 1
                continue
            parts.append(re.escape(char))
        else:
            parts.append(re.escape(char))
        index += 1
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def has_wildcard(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _parameter(spec: CmdletSpec, param: ParamSpec) -> ParameterInfo:
    sets: tuple[ParameterSetInfo, ...]
    if param.common:
        sets = (ParameterSetInfo(ALL_SETS),)
    else:
        sets = tuple(
            ParameterSetInfo(
                pset.name, mandatory=param.name in pset.mandatory, position=param.position,
                by_value=param.by_value, by_property_name=param.by_property_name,
            )
            for pset in spec.sets if param.name in pset.members
        )
    return ParameterInfo(param.name, type_name(param.type), param.aliases, param.type == "SwitchParameter", sets)


def describe(spec: CmdletSpec, namespace: str) -> CommandInfo:
    """The CommandMetadata of one cmdlet in a session whose view of it is ``spec``."""
    params = tuple(_parameter(spec, param) for param in spec.params.values())
    return CommandInfo(spec.name, namespace, params, OUTPUT_TYPES.get(spec.name, CORE_OUTPUT_TYPES.get(spec.name, ())))


def find(
    query: MetadataQuery, specs: Iterable[CmdletSpec], namespaces: Mapping[str, str]
) -> tuple[list[CommandInfo], list[LabError]]:
    """The commands ``query`` selects (in name order, as Get-Command sorts them) and Get-Command's errors;
    ``namespaces`` gives each command's module (Exchange's snap-in, or Microsoft.PowerShell.Utility)."""
    available = sorted(specs, key=lambda spec: spec.name.lower())
    if not query.command_types & CMDLET:
        return [], []
    wanted = [ns for ns in query.namespaces or () if ns]  # null or "" patterns: any namespace
    if wanted:
        available = [spec for spec in available if any(wildcard(ns).match(namespaces[spec.name]) for ns in wanted)]
    patterns = [(name, wildcard(name)) for name in query.names] or [("*", wildcard("*"))]
    found = [spec for spec in available if any(regex.match(spec.name) for _name, regex in patterns)]
    errors = [
        engine_error(
            f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
            "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
            "and try again.",
            COMMAND_NOT_FOUND, "ObjectNotFound",
            "CommandNotFoundException,Microsoft.PowerShell.Commands.GetCommandCommand",
            target=name, command="Get-Command",
        )
        for name, regex in patterns
        if not has_wildcard(name) and not any(regex.match(spec.name) for spec in available)
    ]
    return [describe(spec, namespaces[spec.name]) for spec in found], errors


__all__ = ["ALL_SETS", "OUTPUT_TYPES", "describe", "find", "has_wildcard", "type_name", "wildcard"]
