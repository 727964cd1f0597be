"""The contract between the lab's protocol layer and its Exchange engine.

The protocol layer (HTTP, WS-Management, PSRP via psrpcore) turns each PSRP pipeline it receives into a list of
:class:`Statement` values with plain Python parameter values, hands it to an :class:`Engine`, and serialises the
:class:`PipelineResult` back to the client (output objects as CLIXML property bags with the given type names,
error records with category/reason/FQEID, warnings). The engine knows nothing about the wire.

Plain values crossing this boundary: ``str``, ``bool``, ``int``, ``None``, ``list`` of those, and the classes
below. The protocol layer converts psrpcore's own types (PSString, PSInt, PSList, ...) to these before calling
the engine, and converts :class:`LabObject`/:class:`LabEnum` to PSObjects when writing results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Argument:
    """One argument of a command as the client sent it.

    ``name`` is the parameter name without the leading dash, exactly as sent (it may be a prefix, or wrongly
    cased); ``None`` for a positional argument. ``add_parameter("Confirm", False)`` arrives as name
    ``Confirm`` with value ``False``; a parameter sent without a value (``add_parameter("Deny")``) arrives
    with value ``None``, which the engine treats as a switch that is present.
    """

    name: str | None
    value: Any


@dataclass(frozen=True)
class Invocation:
    """One command of a pipeline statement (``add_cmdlet`` or ``add_script``)."""

    name: str  # the cmdlet name, or the script text when is_script
    arguments: tuple[Argument, ...] = ()
    is_script: bool = False


@dataclass(frozen=True)
class Statement:
    """Commands piped into each other (``A | B``). A PSRP pipeline holds one or more statements."""

    commands: tuple[Invocation, ...]


@dataclass(frozen=True)
class LabEnum:
    """A .NET enum value: serialised with its type names, integer value and ToString text."""

    type_names: tuple[str, ...]
    value: int
    text: str


@dataclass
class LabObject:
    """A .NET object as Exchange returns it: type names (most derived first), adapted properties, ToString.

    ``note_properties``: a property bag (a PSCustomObject, e.g. Select-Object's output): its properties are note
    properties (serialised in ``<MS>``) and no ToString is written, as PowerShell's serializer does for property bags.
    """

    type_names: tuple[str, ...]
    properties: dict[str, Any]
    to_string: str
    note_properties: bool = False


@dataclass(frozen=True)
class LabError:
    """An error record.

    ``exception_type`` is the full .NET type name (e.g.
    ``Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException``); ``category`` the
    ErrorCategory name (e.g. ``ObjectNotFound``, ``InvalidData``, ``InvalidArgument``); ``reason`` the short
    exception type name as CategoryInfo.Reason shows it; ``fq_error_id`` the FullyQualifiedErrorId;
    ``target_object`` what the error is about (usually the identity string that was given);
    ``command`` the cmdlet that raised it and ``bound_parameters`` the parameters that were bound to it
    (serialised as InvocationInfo when set).
    """

    message: str
    exception_type: str
    category: str
    reason: str
    fq_error_id: str
    target_object: Any = None
    command: str | None = None
    bound_parameters: dict[str, Any] | None = None


@dataclass
class PipelineResult:
    """What one pipeline produced.

    ``failure`` set means the pipeline *failed* (a terminating error: PSRP PIPELINE_STATE Failed with that
    error); otherwise it completed, possibly with non-terminating ``errors``.
    """

    output: list[Any] = field(default_factory=list)
    errors: list[LabError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verbose: list[str] = field(default_factory=list)
    failure: LabError | None = None


class Engine(Protocol):
    """Executes pipelines against the in-memory Exchange organisation."""

    def run(self, statements: list[Statement], pipeline_input: list[Any], *, user: str | None) -> PipelineResult:
        """Run the statements in order; ``user`` is the authenticated caller (for throttling and RBAC)."""
        ...


# --- command metadata (MS-PSRP GET_COMMAND_METADATA) -----------------------------------------------------------

#: MS-PSRP 2.2.3.19 CommandType flag of a cmdlet, and every flag (what pypsrp asks for by default).
CMDLET = 0x0008
ALL_COMMAND_TYPES = 0x01FF


@dataclass(frozen=True)
class MetadataQuery:
    """A GET_COMMAND_METADATA request: wildcard name patterns, CommandType flags, wildcard namespace patterns
    (``None``: any namespace)."""

    names: tuple[str, ...] = ("*",)
    command_types: int = ALL_COMMAND_TYPES
    namespaces: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ParameterSetInfo:
    """A parameter's membership of one parameter set (``__AllParameterSets`` for common parameters)."""

    name: str
    mandatory: bool = False
    position: int | None = None
    by_value: bool = False
    by_property_name: bool = False


@dataclass(frozen=True)
class ParameterInfo:
    """MS-PSRP 2.2.3.23 ParameterMetadata: ``type_name`` is the full .NET type name."""

    name: str
    type_name: str
    aliases: tuple[str, ...] = ()
    is_switch: bool = False
    sets: tuple[ParameterSetInfo, ...] = ()


@dataclass(frozen=True)
class CommandInfo:
    """MS-PSRP 2.2.3.22 CommandMetadata of one cmdlet, with the parameters the caller's session has."""

    name: str
    namespace: str
    parameters: tuple[ParameterInfo, ...]
    output_types: tuple[str, ...] = ()
    help_uri: str | None = None


@dataclass
class MetadataResult:
    """The answer to a :class:`MetadataQuery`: the matching commands and any errors Get-Command wrote."""

    commands: list[CommandInfo] = field(default_factory=list)
    errors: list[LabError] = field(default_factory=list)


@runtime_checkable
class MetadataEngine(Protocol):
    """An engine that can describe its commands (optional: the protocol layer answers "none" otherwise)."""

    def command_metadata(self, query: MetadataQuery, *, user: str | None) -> MetadataResult:
        """The commands matching ``query`` as the session of ``user`` has them."""
        ...

