"""The PowerShell core cmdlets Exchange's remote session keeps public: Select-Object and Measure-Object.

Exchange builds its remote session from ``InitialSessionState.Create()`` and makes the default PowerShell
commands private except ``alwaysPublicCommands`` = Out-Default, Get-FormatData, Select-Object, Measure-Object,
Exit-PSSession [code: decompiled 2013 CU23 ``InitialSessionStateBuilder``]; Microsoft KB 2922668 pipes
``Get-Mailbox | Select-Object -Property ...`` over the NoLanguage session [doc]. They are the real cmdlets (not the
restricted proxies of a JEA endpoint), so they behave as PowerShell's own:

* ``Select-Object -Property A, B``: for each input object, a new property bag (a PSCustomObject) whose type names
  are ``Selected.<the input's first type name>``, ``System.Management.Automation.PSCustomObject``,
  ``System.Object``, holding note properties in the order asked for, each with the input's value as it is (an
  ``ADObjectId`` stays an object, an enum an enum, a bool a bool); a name the input lacks gives a note property
  with ``$null``; a wildcard name takes every matching property in the input's order. PowerShell's serializer writes
  a property bag's note properties in ``<MS>`` and no ``<ToString>`` [PowerShell serialization.cs: "don't write
  ToString for property bags"], and note properties at the object's own depth, so nested values cross as they do
  unprojected. ``-ExcludeProperty`` drops names from the selection; ``-First``, ``-Last`` and ``-Skip`` cut the
  input; without ``-Property`` the input objects pass through;
* ``Measure-Object``: one ``GenericMeasureInfo`` (Count, Average, Sum, Maximum, Minimum, Property), Count the number
  of input objects (with ``-Property``: of those that have it), the statistics only when their switch is given.

Their parameters are PowerShell's per version (Select-Object ``-Wait`` from 3.0, ``-SkipLast`` from 5.0); the lab
does not implement ``-Unique``, ``-Index``, ``-ExpandProperty``, ``-Wait``, ``-SkipLast``, calculated properties
(hashtables, which need script blocks a NoLanguage session cannot send) or Measure-Object's text statistics (a
``NotImplemented`` error says so). Their server cost is modelled apart from Exchange's cmdlets
(:class:`~provisioner_lab.exchange.cost.CostModel`). An account whose session lacks them is configured with an RBAC
trim (``{"Select-Object": None}``): GET_COMMAND_METADATA does not list the cmdlet and a call is refused with
PowerShell's CommandNotFoundException, as a session without the command would refuse it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from provisioner_lab.api import LabEnum, LabObject
from provisioner_lab.exchange.binding import BoundCommand
from provisioner_lab.exchange.errors import CORE_CLASSES, CmdletError, engine_error
from provisioner_lab.exchange.specs import COMMON_PARAMETERS, CmdletSpec, ParamSpec, SetSpec
from provisioner_lab.profiles import ServerProfile

SELECT_OBJECT, MEASURE_OBJECT = "Select-Object", "Measure-Object"
#: The module (GET_COMMAND_METADATA's Namespace) and the .NET class (FullyQualifiedErrorId suffix) of each.
NAMESPACE = "Microsoft.PowerShell.Utility"
CLASSES = CORE_CLASSES
PSCUSTOMOBJECT = "System.Management.Automation.PSCustomObject"
MEASURE_TYPES = ("Microsoft.PowerShell.Commands.GenericMeasureInfo", "Microsoft.PowerShell.Commands.MeasureInfo",
                 "System.Object")
OUTPUT_TYPES = {MEASURE_OBJECT: ("Microsoft.PowerShell.Commands.GenericMeasureInfo",
                                 "Microsoft.PowerShell.Commands.TextMeasureInfo")}

Handler = Callable[[BoundCommand, Sequence[Any]], list[Any]]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def _spec(name: str, params: list[ParamSpec], sets: Mapping[str, tuple[str, ...]], default: str,
          profile: ServerProfile) -> CmdletSpec:
    table = {param.name: param for param in params}
    for common in profile.common_parameters:
        kind, alias = COMMON_PARAMETERS[common]
        table[common] = ParamSpec(common, kind, (alias,), common=True)
    return CmdletSpec(name, table, tuple(SetSpec(set_name, frozenset(), frozenset(members))
                                         for set_name, members in sets.items()), default)


def core_specs(profile: ServerProfile) -> dict[str, CmdletSpec]:
    """Select-Object and Measure-Object as the profile's PowerShell has them."""
    version = _version(profile.ps_version)
    select_params = [
        ParamSpec("InputObject", "PSObject", by_value=True),
        ParamSpec("Property", "Object[]", positional=True, position=0),
        ParamSpec("ExcludeProperty", "String[]"),
        ParamSpec("ExpandProperty", "String"),
        ParamSpec("Unique", "SwitchParameter"),
        ParamSpec("Last", "Int32"),
        ParamSpec("First", "Int32"),
        ParamSpec("Skip", "Int32"),
        ParamSpec("Index", "Int32[]"),
    ]
    default = ("InputObject", "Property", "ExcludeProperty", "ExpandProperty", "Unique", "Last", "First", "Skip")
    index = ("InputObject", "Unique", "Index")
    select_sets: dict[str, tuple[str, ...]] = {"DefaultParameter": default, "IndexParameter": index}
    if version >= (3, 0):
        select_params.append(ParamSpec("Wait", "SwitchParameter"))
        select_sets = {"DefaultParameter": (*default, "Wait"), "IndexParameter": (*index, "Wait")}
    if version >= (5, 0):
        select_params.append(ParamSpec("SkipLast", "Int32"))
        select_sets["SkipLastParameter"] = ("InputObject", "Property", "ExcludeProperty", "ExpandProperty",
                                            "Unique", "SkipLast")
    measure_params = [
        ParamSpec("InputObject", "PSObject", by_value=True),
        ParamSpec("Property", "String[]", positional=True, position=0),
        *(ParamSpec(name, "SwitchParameter") for name in ("Sum", "Average", "Maximum", "Minimum", "Line", "Word",
                                                          "Character", "IgnoreWhiteSpace")),
    ]
    measure_sets = {"GenericMeasure": ("InputObject", "Property", "Sum", "Average", "Maximum", "Minimum"),
                    "TextMeasure": ("InputObject", "Property", "Line", "Word", "Character", "IgnoreWhiteSpace")}
    return {
        SELECT_OBJECT: _spec(SELECT_OBJECT, select_params, select_sets, "DefaultParameter", profile),
        MEASURE_OBJECT: _spec(MEASURE_OBJECT, measure_params, measure_sets, "GenericMeasure", profile),
    }


def _not_implemented(bound: BoundCommand, what: str) -> CmdletError:
    record = engine_error(f"The lab does not implement {what} of {bound.cmdlet}.", "System.NotSupportedException",
                          "NotImplemented", f"NotImplemented,{CLASSES[bound.cmdlet]}", command=bound.cmdlet)
    return CmdletError(record, terminating=True)


def _pattern(name: str) -> re.Pattern[str] | None:
    """A property name with PowerShell wildcards as a regex; None for a plain name."""
    if not any(char in name for char in "*?["):
        return None
    return re.compile("^" + re.escape(name).replace(r"\*", ".*").replace(r"\?", ".") + "$", re.IGNORECASE)


def properties_of(item: Any) -> Mapping[str, Any]:
    """What PowerShell sees as an object's properties (a string's: none the lab models)."""
    if isinstance(item, LabObject):
        return item.properties
    if isinstance(item, Mapping):
        return item
    return {}


def _type_names(item: Any) -> tuple[str, ...]:
    if isinstance(item, LabObject | LabEnum):
        return item.type_names
    return {str: ("System.String",), bool: ("System.Boolean",), int: ("System.Int32",)}.get(type(item),
                                                                                           ("System.Object",))


def _rendered(value: Any) -> str:
    if isinstance(value, LabObject):
        return value.to_string
    if isinstance(value, LabEnum):
        return value.text
    if isinstance(value, list | tuple):
        return " ".join(_rendered(item) for item in value)
    return "" if value is None else str(value)


def _select_names(wanted: Sequence[Any], excluded: Sequence[str], available: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for entry in wanted:
        if not isinstance(entry, str):
            raise TypeError("calculated")
        regex = _pattern(entry)
        if regex is None:
            found = next((key for key in available if str(key).lower() == entry.lower()), entry)
            candidates = [str(found)]
        else:
            candidates = [str(key) for key in available if regex.match(str(key))]
        names += [name for name in candidates if name.lower() not in {n.lower() for n in names}]
    dropped = [(_pattern(name), name.lower()) for name in excluded]
    return [name for name in names
            if not any(regex.match(name) if regex is not None else name.lower() == plain for regex, plain in dropped)]


#: Which input property each selected name takes its value from (None: the input has none, the value is $null).
Plan = tuple[tuple[str, str | None], ...]


@functools.lru_cache(maxsize=1024)
def _plan(keys: tuple[str, ...], wanted: tuple[str, ...], excluded: tuple[str, ...]) -> Plan:
    """:func:`_select_names` and the case-insensitive lookup of the values, worked out once per input shape (its
    property names in order) and selection: a pipeline's records share a handful of shapes."""
    source = {key.lower(): key for key in keys}  # of names differing only in case, the last, as a dict keeps it
    return tuple((name, source.get(name.lower())) for name in _select_names(wanted, excluded, dict.fromkeys(keys)))


def _all_text(values: tuple[Any, ...]) -> bool:
    return all(type(value) is str for value in values)


@functools.lru_cache(maxsize=256)
def _bag_types(first: str) -> tuple[str, str, str]:
    return (f"Selected.{first}", PSCUSTOMOBJECT, "System.Object")


def _bag(item: Any, props: dict[str, Any]) -> LabObject:
    shown = "; ".join(f"{name}={_rendered(value)}" for name, value in props.items())
    return LabObject(_bag_types(_type_names(item)[0]), props, f"@{{{shown}}}", note_properties=True)


def selector(wanted: Sequence[Any], excluded: Sequence[str] = ()) -> Callable[[Any], LabObject]:
    """What ``Select-Object -Property wanted -ExcludeProperty excluded`` makes of each input object.

    Names given as plain strings over inputs whose property names are plain strings (every object the engine
    makes) go through :func:`_plan`, cached; anything else (a calculated property, which raises TypeError) takes
    the uncached path, which is the definition.
    """
    names, dropped = tuple(wanted), tuple(excluded)
    cacheable = _all_text(names) and _all_text(dropped)

    def select(item: Any) -> LabObject:
        available = properties_of(item)
        if cacheable:
            keys = tuple(available)
            if _all_text(keys):
                return _bag(item, {name: None if key is None else available[key]
                                   for name, key in _plan(keys, names, dropped)})
        lowered = {str(key).lower(): value for key, value in available.items()}
        return _bag(item, {name: lowered.get(name.lower()) for name in _select_names(wanted, excluded, available)})

    return select


def selected(item: Any, wanted: Sequence[Any], excluded: Sequence[str] = ()) -> LabObject:
    """The property bag ``Select-Object -Property wanted`` makes of one input object."""
    return selector(wanted, excluded)(item)


def select_object(bound: BoundCommand, records: Sequence[Any]) -> list[Any]:
    for name in ("Unique", "Index", "ExpandProperty", "Wait", "SkipLast"):
        if bound.has(name) and bound.get(name) not in (False, None):
            raise _not_implemented(bound, f"-{name}")
    items = list(records)
    skip = int(bound.get("Skip") or 0)
    items = items[skip:]
    if bound.has("First") or bound.has("Last"):
        first = items[: int(bound.get("First") or 0)] if bound.has("First") else []
        last = items[len(items) - int(bound.get("Last") or 0):] if bound.has("Last") and bound.get("Last") else []
        items = first + [item for item in last if not any(item is kept for kept in first)]
    if not bound.has("Property"):
        return items
    select = selector(bound.get("Property") or [], bound.get("ExcludeProperty") or [])
    try:
        return [select(item) for item in items]
    except TypeError:
        raise _not_implemented(bound, "calculated properties") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def measure_object(bound: BoundCommand, records: Sequence[Any]) -> list[Any]:
    if bound.parameter_set == "TextMeasure":
        raise _not_implemented(bound, "the text statistics")
    names = bound.get("Property") or []
    if len(names) > 1:
        raise _not_implemented(bound, "several -Property names")
    values: list[Any] = list(records)
    if names:
        key = str(names[0]).lower()
        values = [next((v for k, v in properties_of(item).items() if str(k).lower() == key), None)
                  for item in records]
        values = [value for value in values if value is not None]
    numbers = [number for number in map(_number, values) if number is not None]

    def stat(switch: str, compute: Callable[[list[float]], float]) -> float | None:
        return compute(numbers) if bound.switch(switch) and numbers else None

    props: dict[str, Any] = {
        "Count": len(values),
        "Average": stat("Average", lambda found: sum(found) / len(found)),
        "Sum": stat("Sum", sum),
        "Maximum": stat("Maximum", max),
        "Minimum": stat("Minimum", min),
        "Property": str(names[0]) if names else None,
    }
    return [LabObject(MEASURE_TYPES, props, MEASURE_TYPES[0])]


HANDLERS: dict[str, Handler] = {SELECT_OBJECT: select_object, MEASURE_OBJECT: measure_object}

__all__ = ["CLASSES", "HANDLERS", "MEASURE_OBJECT", "NAMESPACE", "SELECT_OBJECT", "core_specs", "selected", "selector"]
