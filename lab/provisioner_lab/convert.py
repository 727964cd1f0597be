"""Value conversion between psrpcore's PowerShell types and the engine's plain values.

Inbound: psrpcore deserialises command arguments and pipeline input into its own types (``PSString``, ``PSInt``,
``PSList``, ``PSDict``, ``PSObject`` ...); :func:`to_plain` turns them into ``str``/``bool``/``int``/``None``/
``list`` (and ``dict`` for hashtables) and :func:`statements_from_pipeline` builds the engine's
:class:`~provisioner_lab.api.Statement` list from a CREATE_PIPELINE message.

Outbound: :func:`to_ps` turns :class:`~provisioner_lab.api.LabObject`/:class:`~provisioner_lab.api.LabEnum`
(recursively, inside lists and dicts too) into psrpcore objects with the right type names, adapted properties and
ToString, and :func:`error_record` builds an ErrorRecord from a :class:`~provisioner_lab.api.LabError`.
"""

from __future__ import annotations

import enum
import functools
import re
import threading
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from psrpcore.types import (
    CommandOrigin,
    CommandTypes,
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    InvocationInfo,
    NETException,
    PSCustomObject,
    PSDict,
    PSEnumBase,
    PSNoteProperty,
    PSObject,
    PSSecureString,
    PSType,
    SessionStateEntryVisibility,
    serialize,
)

from provisioner_lab.api import Argument, Invocation, LabEnum, LabError, LabObject, Statement

# .NET base classes of the exceptions a LabError names; the most derived type comes from LabError.exception_type.
_EXCEPTION_BASES: dict[str, tuple[str, ...]] = {
    "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException": (
        "Microsoft.Exchange.Data.LocalizedException",
    ),
    "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException": (
        "Microsoft.Exchange.Data.LocalizedException",
    ),
    "System.Management.Automation.ParameterBindingException": ("System.Management.Automation.RuntimeException",),
    "System.Management.Automation.CommandNotFoundException": ("System.Management.Automation.RuntimeException",),
    "System.Management.Automation.RuntimeException": (),
    "System.ArgumentException": (),
    "System.InvalidOperationException": (),
}
_GENERIC_EXCEPTION_BASES = ("System.Exception", "System.Object")
_ENUM_BASES = ("System.Enum", "System.ValueType", "System.Object")


def to_plain(value: Any) -> Any:
    """Convert a psrpcore value to a plain Python value (``str``, ``bool``, ``int``, ``None``, ``list``, ``dict``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, PSSecureString):
        return value.decrypt() if hasattr(value, "decrypt") else str(value)
    if isinstance(value, dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, PSObject):
        # A property bag (e.g. [pscustomobject]@{...} or a deserialised Exchange object sent back as input).
        props: dict[str, Any] = {}
        for prop in [*value.PSObject.adapted_properties, *value.PSObject.extended_properties]:
            props[prop.name] = to_plain(prop.get_value(value))
        if props:
            return props
        text = value.PSObject.to_string
        return str(text) if text is not None else str(value)  # e.g. PSDecimal, PSDateTime: their text
    return str(value)


def statements_from_pipeline(pipeline: Any) -> list[Statement]:
    """Build statements from a psrpcore ``PowerShell`` (``CreatePipelineEvent.pipeline``)."""
    return statements_from_commands(pipeline.commands)


def statements_from_commands(commands: Any) -> list[Statement]:
    """Statements from psrpcore Command objects (``end_of_statement`` closes a statement)."""
    statements: list[Statement] = []
    current: list[Invocation] = []
    for cmd in commands:
        arguments = tuple(
            Argument(name=None if name is None else str(name), value=to_plain(value)) for name, value in cmd.parameters
        )
        current.append(Invocation(name=str(cmd.command_text), arguments=arguments, is_script=bool(cmd.is_script)))
        if cmd.end_of_statement:
            statements.append(Statement(commands=tuple(current)))
            current = []
    if current:
        statements.append(Statement(commands=tuple(current)))
    return statements


_enum_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _enum_member(type_names: tuple[str, ...], value: int, text: str) -> Any:
    """A psrpcore enum member whose ToString is ``text`` and whose type names are ``type_names``."""
    name = type_names[0].rsplit(".", 1)[-1] if type_names else "LabEnum"
    with _enum_lock:
        enum_factory: Any = PSEnumBase
        enum_cls: Any = enum_factory(name, [(text, value)], module=__name__)
        names = list(type_names) + [t for t in _ENUM_BASES if t not in type_names]
        PSType(names, skip_inheritance=True, rehydrate=False)(enum_cls)
    return enum_cls(value)


def _ps_enum(value: LabEnum) -> Any:
    try:
        return _enum_member(tuple(value.type_names), int(value.value), value.text)
    except (ValueError, TypeError):
        # Texts that cannot be a Python enum member name (empty, _sunder_): fall back to the text alone.
        return value.text


def to_ps(value: Any) -> Any:
    """Convert an engine value (LabObject/LabEnum/list/dict/primitive) to what psrpcore serialises."""
    if isinstance(value, LabObject):
        obj = PSObject()
        names = list(value.type_names)
        if "System.Object" not in names:
            names.append("System.Object")  # every .NET type ends there; pypsrp relies on it to rebuild the object
        obj.PSObject.type_names = names
        members = obj.PSObject.extended_properties if value.note_properties else obj.PSObject.adapted_properties
        for key, prop_value in value.properties.items():
            members.append(PSNoteProperty(str(key), to_ps(prop_value)))
        if not value.note_properties:  # a property bag has no ToString on the wire
            obj.PSObject.to_string = value.to_string
        return obj
    if isinstance(value, LabEnum):
        return _ps_enum(value)
    if isinstance(value, (list, tuple)):
        return [to_ps(v) for v in value]
    if isinstance(value, dict):
        result = PSDict()
        for key, item in value.items():
            result[to_ps(key)] = to_ps(item)
        return result
    if isinstance(value, LabError):
        return value.message
    return value


class _CategoryInfo(ErrorCategoryInfo):
    """ErrorCategoryInfo whose text matches Windows PowerShell's ``CategoryInfo`` line."""

    def __str__(self) -> str:
        return (
            f"{self.Category.name}: ({self.TargetName or ''}:{self.TargetType or ''}) "
            f"[{self.Activity or ''}], {self.Reason or ''}"
        )


def _category(name: str) -> ErrorCategory:
    try:
        return ErrorCategory[name]
    except KeyError:
        return ErrorCategory.NotSpecified


def _exception(error: LabError) -> NETException:
    exc = NETException(Message=error.message, HResult=-2146233087)
    bases = _EXCEPTION_BASES.get(error.exception_type)
    names = [error.exception_type]
    if bases:
        names.extend(bases)
    for base in _GENERIC_EXCEPTION_BASES:
        if base not in names:
            names.append(base)
    exc.PSObject.type_names = names
    exc.PSObject.to_string = f"{error.exception_type}: {error.message}"
    return exc


def _target_type(target: Any) -> str:
    if target is None:
        return ""
    if isinstance(target, bool):
        return "Boolean"
    if isinstance(target, int):
        return "Int32"
    if isinstance(target, str):
        return "String"
    if isinstance(target, LabObject) and target.type_names:
        return target.type_names[0].rsplit(".", 1)[-1]
    return "Object"


def _target_name(target: Any) -> str:
    if target is None:
        return ""
    if isinstance(target, LabObject):
        return target.to_string
    if isinstance(target, LabEnum):
        return target.text
    return str(target)


def error_record(error: LabError) -> ErrorRecord:
    """Build the psrpcore ErrorRecord for a LabError (with InvocationInfo when ``command`` is set)."""
    category_info = _CategoryInfo(
        Category=_category(error.category),
        Activity=error.command or "",
        Reason=error.reason,
        TargetName=_target_name(error.target_object),
        TargetType=_target_type(error.target_object),
    )
    invocation_info = None
    if error.command:
        bound = PSDict()
        bound.PSObject.type_names = [
            "System.Management.Automation.PSBoundParametersDictionary",
            "System.Collections.Generic.Dictionary`2[[System.String, mscorlib, Version=4.0.0.0, Culture=neutral, "
            "PublicKeyToken=b77a5c561934e089],[System.Object, mscorlib, Version=4.0.0.0, Culture=neutral, "
            "PublicKeyToken=b77a5c561934e089]]",
            "System.Object",
        ]
        for key, item in (error.bound_parameters or {}).items():
            bound[str(key)] = to_ps(item)
        invocation_info = InvocationInfo(
            BoundParameters=bound,
            CommandOrigin=CommandOrigin.Runspace,
            DisplayScriptPosition=None,
            ExpectingInput=False,
            HistoryId=1,
            InvocationName=error.command,
            Line="",
            MyCommand=SimpleNamespace(
                CommandType=CommandTypes.Function,
                Name=error.command,
                Definition="",
                Visibility=SessionStateEntryVisibility.Public,
            ),
            OffsetInLine=0,
            PipelineLength=1,
            PipelinePosition=1,
            PositionMessage="",
            PSCommandPath=None,
            PSScriptRoot="",
            ScriptLineNumber=0,
            ScriptName="",
            UnboundArguments=[],
        )
    record = ErrorRecord(
        Exception=_exception(error),
        CategoryInfo=category_info,
        TargetObject=to_ps(error.target_object),
        FullyQualifiedErrorId=error.fq_error_id,
        InvocationInfo=invocation_info,
    )
    record.serialize_extended_info = invocation_info is not None
    record.PSObject.to_string = error.message
    return record


def custom_object(**properties: Any) -> PSCustomObject:
    """A PSCustomObject with the given note properties (used for tests and diagnostics)."""
    obj = PSCustomObject()
    for key, value in properties.items():
        obj.PSObject.extended_properties.append(PSNoteProperty(key, to_ps(value)))
    return obj


# --- error records as CLIXML ----------------------------------------------------------------------------------------
#
# psrpcore builds and serialises an ErrorRecord in about 6 ms (some 1,250 PSObject attribute lookups), the largest
# part of the lab's time for a batch with errors. Error records of one shape (same exception, category, command,
# bound parameter names, ...) differ only in a few strings (the message, the FullyQualifiedErrorId with its request
# id and time, the target and the bound values), so psrpcore serialises each shape once with marker strings in
# those places, and later records of that shape are that text with the markers replaced by the strings, XML-escaped
# (only strings psrpcore writes unchanged take this path). The first record of a shape is also serialised by
# psrpcore and compared byte for byte; a shape that does not match (or a string the replacement cannot be sure
# about) keeps psrpcore's path.

_NO_CIPHER: Any = None  # serialize() takes the session's cipher; a plain string never uses it
_MARK = "QZ{}ZQ"
_MARKS = re.compile(r"QZ(\d+)ZQ")
_MARK_IN_ATTRIBUTE = re.compile(r'="[^"]*QZ\d+ZQ')


def _variable(value: str) -> bool:
    """Whether ``value`` is written as its XML-escaped self wherever it stands: not empty (an empty <S /> differs),
    nothing psrpcore's string encoding changes (not every place uses it, e.g. ToString does not), no ``_x`` across
    its ends."""
    return (bool(value) and value[0] not in "xX" and not value.endswith("_") and "QZ" not in value
            and encoded_as_itself(value))


def encoded_as_itself(value: str) -> bool:
    """Whether psrpcore's string encoding leaves ``value`` as it is. Printable ASCII without ``_x`` in either case
    has nothing it escapes (``_x``, controls, surrogates, characters beyond the BMP), so only other text is given
    to psrpcore's serialiser to find out (an error record asks for ~5 strings)."""
    if value.isascii() and value.isprintable() and "_x" not in value and "_X" not in value:
        return True
    return bool(serialize(value, _NO_CIPHER).text == value)


def _encode(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _error_shape(error: LabError) -> tuple[tuple[Any, ...], LabError, list[str]] | None:
    """(shape key, the error with markers for its variable strings, those strings); None if not supported."""
    values: list[str] = []

    def mark(value: str) -> str:
        values.append(value)
        return _MARK.format(len(values) - 1)

    for text in (error.message, error.fq_error_id):
        if not _variable(text):
            return None
    target: Any = error.target_object
    if type(target) is str:
        if not _variable(target):
            return None
        target_kind: Any = "str"
    elif target is None:
        target_kind = None
    else:
        return None
    bound_kinds: list[tuple[str, Any]] = []
    for name, item in (error.bound_parameters or {}).items():
        if type(item) is str:
            if not _variable(item):
                return None
            bound_kinds.append((name, "str"))
        elif item is None or type(item) is bool:
            bound_kinds.append((name, item))
        else:
            return None
    shape = (error.exception_type, error.category, error.reason, error.command, target_kind,
           error.bound_parameters is None, tuple(bound_kinds))
    marked = LabError(
        message=mark(error.message),
        exception_type=error.exception_type,
        category=error.category,
        reason=error.reason,
        fq_error_id=mark(error.fq_error_id),
        target_object=mark(target) if target_kind == "str" else None,
        command=error.command,
        bound_parameters=None if error.bound_parameters is None else {
            k: mark(v) if type(v) is str else v for k, v in error.bound_parameters.items()
        },
    )
    return shape, marked, values


def _fill(template: str, values: list[str]) -> bytes:
    return _MARKS.sub(lambda match: _encode(values[int(match.group(1))]), template).encode("utf-8")


class ErrorTemplates:
    """Error records as CLIXML for one runspace pool; ``to_bytes`` is how the pool serialises a message."""

    def __init__(self, to_bytes: Callable[[ErrorRecord], bytes]) -> None:
        self._to_bytes = to_bytes
        self._templates: dict[tuple[Any, ...], str | None] = {}

    def clixml(self, error: LabError) -> bytes | None:
        """The ErrorRecord message psrpcore would write for ``error`` (UTF-8 CLIXML); None: use psrpcore."""
        shape = _error_shape(error)
        if shape is None:
            return None
        key, marked, values = shape
        template = self._templates.get(key, "")
        if template is None:
            return None
        if template:
            return _fill(template, values)
        text = self._to_bytes(error_record(marked)).decode("utf-8")
        expected = self._to_bytes(error_record(error))
        found = {int(number) for number in _MARKS.findall(text)}
        usable = (found == set(range(len(values))) and not _MARK_IN_ATTRIBUTE.search(text)
                  and _fill(text, values) == expected)
        self._templates[key] = text if usable else None
        return expected
