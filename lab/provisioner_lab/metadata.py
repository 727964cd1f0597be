"""Server-announced data as psrpcore objects: command metadata (MS-PSRP 2.2.3.21-23) and the PSVersionTable.

The shapes follow MS-PSRP and what PowerShell's server sends: the count is ``Get-Command ... | Measure-Object |
Select-Object Count`` (type ``Selected.Microsoft.PowerShell.Commands.GenericMeasureInfo``), each command is
``Get-Command ... | Select-Object Name, Namespace, HelpUri, CommandType, ResolvedCommandName, OutputType,
Parameters`` (type ``Selected.System.Management.Automation.CmdletInfo``, note properties), and ``Parameters`` is a
``Dictionary<string, ParameterMetadata>`` whose values carry the .NET adapted properties (Name, ParameterType,
Aliases, IsDynamic, SwitchParameter, ParameterSets). pypsrp's ``RunspacePool.get_command_metadata`` reads these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psrpcore.types import (
    CommandTypes,
    PSCustomObject,
    PSDict,
    PSInt,
    PSList,
    PSNoteProperty,
    PSObject,
    PSPrimitiveDictionary,
    PSVersion,
)

from provisioner_lab.api import CommandInfo, ParameterInfo, ParameterSetInfo

_MSCORLIB = "mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089"
_SMA = "System.Management.Automation, Version=3.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"
_STRING = f"System.String, {_MSCORLIB}"
_DICTIONARY = "System.Collections.Generic.Dictionary`2"
PARAMETERS_TYPE = f"{_DICTIONARY}[[{_STRING}],[System.Management.Automation.ParameterMetadata, {_SMA}]]"
SETS_TYPE = f"{_DICTIONARY}[[{_STRING}],[System.Management.Automation.ParameterSetMetadata, {_SMA}]]"
ALIASES_TYPE = f"System.Collections.ObjectModel.Collection`1[[{_STRING}]]"
OUTPUT_TYPE = f"System.Collections.ObjectModel.ReadOnlyCollection`1[[System.Management.Automation.PSTypeName, {_SMA}]]"
INT_MIN = -(2**31)  # ParameterSetMetadata.Position of a named parameter (int.MinValue)

#: PSVersionTable entries that are System.Version values (the rest: PSEdition, a string).
_VERSION_KEYS = frozenset({"PSVersion", "BuildVersion", "CLRVersion", "WSManStackVersion",
                           "PSRemotingProtocolVersion", "SerializationVersion"})


def _typed(value: Any, *type_names: str) -> Any:
    value.PSObject.type_names = [*type_names, "System.Object"]
    return value


def _object(type_name: str, properties: Iterable[tuple[str, Any]], to_string: str | None = None) -> PSObject:
    obj = PSObject()
    _typed(obj, type_name)
    for name, value in properties:
        obj.PSObject.adapted_properties.append(PSNoteProperty(name, value))
    if to_string is not None:
        obj.PSObject.to_string = to_string
    return obj


def _custom(type_name: str, properties: Iterable[tuple[str, Any]]) -> PSCustomObject:
    obj = PSCustomObject()
    obj.PSObject.type_names = [type_name, "System.Management.Automation.PSCustomObject", "System.Object"]
    for name, value in properties:
        obj.PSObject.extended_properties.append(PSNoteProperty(name, value))
    return obj


def count_object(count: int) -> PSCustomObject:
    """MS-PSRP 2.2.3.21 CommandMetadataCount."""
    return _custom("Selected.Microsoft.PowerShell.Commands.GenericMeasureInfo", [("Count", PSInt(count))])


def _set_metadata(info: ParameterSetInfo) -> PSObject:
    return _object("System.Management.Automation.ParameterSetMetadata", [
        ("Position", PSInt(INT_MIN if info.position is None else info.position)),
        ("IsMandatory", info.mandatory),
        ("ValueFromPipeline", info.by_value),
        ("ValueFromPipelineByPropertyName", info.by_property_name),
        ("ValueFromRemainingArguments", False),
        ("HelpMessage", None),
        ("HelpMessageBaseName", None),
        ("HelpMessageResourceId", None),
    ])


def _parameter_metadata(info: ParameterInfo) -> PSObject:
    sets = _typed(PSDict(), SETS_TYPE)
    for pset in info.sets:
        sets[pset.name] = _set_metadata(pset)
    return _object("System.Management.Automation.ParameterMetadata", [
        ("Name", info.name),
        ("ParameterType", info.type_name),
        ("ParameterSets", sets),
        ("IsDynamic", False),
        ("Aliases", _typed(PSList(info.aliases), ALIASES_TYPE)),
        ("SwitchParameter", info.is_switch),
    ], to_string=info.name)


def command_object(info: CommandInfo) -> PSCustomObject:
    """MS-PSRP 2.2.3.22 CommandMetadata of a cmdlet."""
    parameters = _typed(PSDict(), PARAMETERS_TYPE)
    for param in info.parameters:
        parameters[param.name] = _parameter_metadata(param)
    return _custom("Selected.System.Management.Automation.CmdletInfo", [
        ("Name", info.name),
        ("Namespace", info.namespace),
        ("HelpUri", info.help_uri),
        ("CommandType", CommandTypes.Cmdlet),
        ("ResolvedCommandName", None),
        ("OutputType", _typed(PSList(info.output_types), OUTPUT_TYPE)),
        ("Parameters", parameters),
    ])


def psversion_table(table: dict[str, Any]) -> PSPrimitiveDictionary:
    """``$PSVersionTable`` for APPLICATION_PRIVATE_DATA: Version values as ``<Version>``, PSCompatibleVersions as
    a ``System.Version[]``, as PowerShell's server sends it."""
    result = PSPrimitiveDictionary()
    for key, value in table.items():
        if key == "PSCompatibleVersions":
            result[key] = _typed(PSList(PSVersion(v) for v in value), "System.Version[]", "System.Array")
        elif key in _VERSION_KEYS:
            result[key] = PSVersion(value)
        else:
            result[key] = value
    return result


def application_private_data(table: dict[str, Any]) -> dict[str, Any]:
    """The APPLICATION_PRIVATE_DATA of a pool: ``{"PSVersionTable": ...}``."""
    return {"PSVersionTable": psversion_table(table)}


__all__ = ["application_private_data", "command_object", "count_object", "psversion_table"]
