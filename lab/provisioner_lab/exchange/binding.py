"""Parameter binding driven by ``exchange-cmdlets.json``, following PowerShell's binder where it matters.

* names are case-insensitive; a unique prefix binds; an exact name or alias wins over prefixes;
* unknown name -> ``NamedParameterNotFound``, ambiguous prefix -> ``AmbiguousParameter``, the same parameter
  twice -> ``ParameterAlreadyBound``, a positional argument with no positional slot left ->
  ``PositionalParameterNotFound`` (all terminating ParameterBindingExceptions with FQEID ``Id,<Cmdlet>``);
* the parameter set is the default one when it fits, else the only one that fits; missing mandatory
  parameters -> ``MissingMandatoryParameter`` (a remote runspace cannot prompt for them);
* values are converted by parameter type: ``Boolean`` takes only bool or a number (a string is refused the
  way PowerShell refuses it), ``SwitchParameter`` takes ``None`` (present) or bool, arrays take a scalar or a
  list, enum values are validated case-insensitively, ``Unlimited`` takes ``Unlimited`` or an integer;
* pipeline input binds ByValue and/or ByPropertyName exactly as the JSON says; an input record that binds
  to nothing gives a non-terminating ``InputObjectNotBound`` error and is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner_lab.api import Argument, LabEnum, LabObject
from provisioner_lab.exchange.enums import ENUMS, MAILBOX_RIGHTS, canonical_name
from provisioner_lab.exchange.errors import (
    ARGUMENT_TRANSFORMATION,
    PARAMETER_BINDING,
    VALIDATION,
    CmdletError,
    binding_error,
    engine_error,
)
from provisioner_lab.exchange.specs import CmdletSpec, ParamSpec, SetSpec, load_specs, specs_for

ACTION_PREFERENCES = ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend", "Break")

_FQDN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$")


@dataclass
class BoundCommand:
    """A command whose parameters are bound: canonical names -> converted values, and the parameter set."""

    cmdlet: str
    parameter_set: str
    values: dict[str, Any]
    common: dict[str, Any] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def switch(self, name: str) -> bool:
        return bool(self.values.get(name, False))

    def display(self) -> dict[str, Any]:
        """Bound parameters as plain values, for error records' InvocationInfo."""
        out: dict[str, Any] = {}
        for key, value in {**self.values, **self.common}.items():
            if key == "AccessRights" and isinstance(value, int):
                out[key] = [name for name, bit in MAILBOX_RIGHTS.items() if value & bit]
            else:
                out[key] = value.to_string if isinstance(value, LabObject) else value
        return out


@dataclass
class PreparedCommand:
    """A command after its arguments are bound, before pipeline input (if any) is bound."""

    spec: CmdletSpec
    values: dict[str, Any]
    common: dict[str, Any]
    candidates: list[SetSpec]
    #: What every input record finds the same, worked out for the first (:meth:`Binder.bind_record`): the
    #: parameters input may bind, and the parameter set chosen for each set of bound names. Both follow from the
    #: fields above, which nothing changes after binding.
    open_params: list[ParamSpec] | None = field(default=None, init=False, repr=False, compare=False)
    chosen: dict[frozenset[str], SetSpec] = field(default_factory=dict, init=False, repr=False, compare=False)


def _type_label(value: Any) -> str:
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int32"
    if isinstance(value, str):
        return "System.String"
    if isinstance(value, list | tuple):
        return "System.Object[]"
    if isinstance(value, LabObject | LabEnum):
        return value.type_names[0]
    return "System.Object"


def _text(value: Any) -> str:
    if isinstance(value, LabObject):
        return value.to_string
    if isinstance(value, LabEnum):
        return value.text
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


class Binder:
    """Binds :class:`Argument` lists and pipeline records to one cmdlet's parameters."""

    def __init__(self, specs: Mapping[str, CmdletSpec]) -> None:
        self.specs = specs
        # Answers for the specs in ``specs`` (immutable cmdlet metadata), keyed by cmdlet name: the parameter a
        # lower-cased name resolves to (successes only; errors are raised afresh every time) and whether a
        # parameter is mandatory in some set. Used only when the spec passed in is the one in ``specs``.
        self._resolved: dict[tuple[str, str], ParamSpec] = {}
        self._mandatory: dict[tuple[str, str], bool] = {}

    def _known(self, spec: CmdletSpec) -> bool:
        return self.specs.get(spec.name) is spec

    # ------------------------------------------------------------------ names
    def _resolve_name(self, spec: CmdletSpec, given: str) -> ParamSpec:
        key = given.lower()
        cached = self._resolved.get((spec.name, key))
        if cached is not None and self._known(spec):
            return cached
        param = self._resolve_uncached(spec, given, key)
        if self._known(spec):
            self._resolved[(spec.name, key)] = param
        return param

    def _resolve_uncached(self, spec: CmdletSpec, given: str, key: str) -> ParamSpec:
        for param in spec.params.values():
            if param.name.lower() == key or key in (alias.lower() for alias in param.aliases):
                return param
        matches = [param for param in spec.params.values() if param.name.lower().startswith(key)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise binding_error(
                f"A parameter cannot be found that matches parameter name '{given}'.",
                "NamedParameterNotFound", spec.name, target=given,
            )
        options = " ".join(f"-{param.name}" for param in matches)
        raise binding_error(
            f"Parameter cannot be processed because the parameter name '{given}' is ambiguous. "
            f"Possible matches include: {options}.",
            "AmbiguousParameter", spec.name, target=given,
        )

    def param(self, cmdlet: str, given: str) -> ParamSpec:
        """The parameter ``given`` (a name, prefix or alias) binds to; CmdletError when none or ambiguous."""
        return self._resolve_name(self.specs[cmdlet], given)

    # ------------------------------------------------------------------ values
    def convert(self, spec: CmdletSpec, param: ParamSpec, value: Any, *, mandatory: bool) -> Any:
        ptype = param.type
        cmdlet = spec.name
        if ptype == "SwitchParameter":
            if value is None:
                return True
            if isinstance(value, bool):
                return value
            if isinstance(value, LabObject) and "IsPresent" in value.properties:
                return bool(value.properties["IsPresent"])
            raise self._transform_error(cmdlet, param, value, "System.Management.Automation.SwitchParameter")
        if ptype == "Boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, int):
                return value != 0
            raise binding_error(
                f"Cannot process argument transformation on parameter '{param.name}'. Cannot convert value "
                f"\"{_type_label(value)}\" to type \"System.Boolean\". Boolean parameters accept only Boolean "
                "values and numbers, such as $True, $False, 1 or 0.",
                "ParameterArgumentTransformationError", cmdlet, exception_type=ARGUMENT_TRANSFORMATION,
                category="InvalidData", target=value,
            )
        if value is None or (isinstance(value, str) and value == "" and mandatory):
            if mandatory:
                what = "null" if value is None else "an empty string"
                suffix = "NullNotAllowed" if value is None else "EmptyStringNotAllowed"
                raise binding_error(
                    f"Cannot bind argument to parameter '{param.name}' because it is {what}.",
                    f"ParameterArgumentValidationError{suffix}", cmdlet, exception_type=VALIDATION,
                    category="InvalidData",
                )
            return None
        base = ptype[:-2] if ptype.endswith("[]") else ptype
        if base in ENUMS:
            items = list(value) if isinstance(value, list | tuple) else [value]
            if not ptype.endswith("[]") and len(items) != 1:
                raise self._convert_error(cmdlet, param, value, ENUMS[base][0])
            names = [self._enum_item(cmdlet, param, base, item) for item in items]
            flat = [name for group in names for name in group]
            if base == "MailboxRights":
                mask = 0
                for name in flat:
                    mask |= MAILBOX_RIGHTS[name]
                return mask
            return flat if ptype.endswith("[]") else flat[0]
        if base == "ActionPreference":
            text = _text(value).strip().lower()
            for option in ACTION_PREFERENCES:
                if option.lower() == text:
                    return option
            raise self._enum_error(cmdlet, param, value, "System.Management.Automation.ActionPreference",
                                   ACTION_PREFERENCES)
        if ptype == "Unlimited":
            if isinstance(value, bool):
                raise self._convert_error(cmdlet, param, value, "Microsoft.Exchange.Data.Unlimited`1[System.UInt32]")
            if isinstance(value, int) and value >= 0:
                return value
            if isinstance(value, str):
                text = value.strip()
                if text.lower() == "unlimited":
                    return None
                if text.isdigit():
                    return int(text)
            raise binding_error(
                f"Cannot bind parameter '{param.name}'. Cannot convert value \"{_text(value)}\" to type "
                "\"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\". Error: \"The value isn't valid. Valid "
                "values are 'Unlimited' or a non-negative integer.\"",
                "CannotConvertArgumentNoMessage", cmdlet, target=value,
            )
        if ptype == "Fqdn":
            if isinstance(value, str) and _FQDN.match(value.strip()):
                return value.strip().lower()
            raise binding_error(
                f"Cannot bind parameter '{param.name}'. Cannot convert value \"{_text(value)}\" to type "
                f"\"Microsoft.Exchange.Data.Fqdn\". Error: \"\"{_text(value)}\" isn't a valid FQDN.\"",
                "CannotConvertArgumentNoMessage", cmdlet, target=value,
            )
        if ptype in ("Int32", "Int64"):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            raise self._convert_error(cmdlet, param, value, "System.Int32")
        if ptype.endswith("[]"):
            items = list(value) if isinstance(value, list | tuple) else [value]
            return [_text(item) for item in items] if base == "String" else items
        if isinstance(value, list | tuple):
            if len(value) == 1 and ptype == "String":
                return _text(value[0])
            raise binding_error(
                f"Cannot bind parameter '{param.name}'. Cannot convert the \"System.Object[]\" value of type "
                f"\"System.Object[]\" to type \"{ptype}\".",
                "CannotConvertArgument", cmdlet, target=value,
            )
        if ptype == "String":
            return _text(value)
        return value  # identity parameters and the rest: interpreted by the cmdlet

    def _enum_item(self, cmdlet: str, param: ParamSpec, enum: str, item: Any) -> list[str]:
        full, values = ENUMS[enum]
        if isinstance(item, LabEnum):
            item = item.text
        if isinstance(item, int) and not isinstance(item, bool):
            if enum == "MailboxRights":
                names = [name for name, bit in values.items() if item & bit]
                if item and sum(values[name] for name in names) == item:
                    return names
            else:
                for name, number in values.items():
                    if number == item:
                        return [name]
            raise self._convert_error(cmdlet, param, item, full)
        if not isinstance(item, str):
            raise self._convert_error(cmdlet, param, item, full)
        parsed: list[str] = []
        for part in item.split(","):
            member = canonical_name(enum, part)
            if member is None:
                raise self._enum_error(cmdlet, param, item, full, tuple(values), bad=part.strip())
            parsed.append(member)
        return parsed

    def _enum_error(
        self, cmdlet: str, param: ParamSpec, value: Any, full: str, names: Sequence[str], bad: str | None = None
    ) -> CmdletError:
        shown = bad if bad is not None else _text(value)
        return binding_error(
            f"Cannot bind parameter '{param.name}'. Cannot convert value \"{_text(value)}\" to type \"{full}\". "
            f"Error: \"Unable to match the identifier name {shown} to a valid enumerator name. Specify one of the "
            f"following enumerator names and try again:\n{', '.join(names)}\"",
            "CannotConvertArgumentNoMessage", cmdlet, target=value,
        )

    def _convert_error(self, cmdlet: str, param: ParamSpec, value: Any, full: str) -> CmdletError:
        return binding_error(
            f"Cannot bind parameter '{param.name}'. Cannot convert the \"{_text(value)}\" value of type "
            f"\"{_type_label(value)}\" to type \"{full}\".",
            "CannotConvertArgumentNoMessage", cmdlet, target=value,
        )

    def _transform_error(self, cmdlet: str, param: ParamSpec, value: Any, full: str) -> CmdletError:
        return binding_error(
            f"Cannot process argument transformation on parameter '{param.name}'. Cannot convert value "
            f"\"{_text(value)}\" to type \"{full}\".",
            "ParameterArgumentTransformationError", cmdlet, exception_type=ARGUMENT_TRANSFORMATION,
            category="InvalidData", target=value,
        )

    # ------------------------------------------------------------------ sets
    def _candidates(self, spec: CmdletSpec, names: set[str]) -> list[SetSpec]:
        candidates = [pset for pset in spec.sets if names <= pset.members]
        if not candidates:
            raise binding_error(
                "Parameter set cannot be resolved using the specified named parameters.",
                "AmbiguousParameterSet", spec.name,
            )
        return candidates

    def _is_mandatory_somewhere(self, spec: CmdletSpec, name: str) -> bool:
        """Mandatory in some parameter set: then $null and '' are refused (PowerShell's validation)."""
        cached = self._mandatory.get((spec.name, name))
        if cached is not None and self._known(spec):
            return cached
        answer = any(name in pset.mandatory for pset in spec.sets)
        if self._known(spec):
            self._mandatory[(spec.name, name)] = answer
        return answer

    def prepare(self, cmdlet: str, arguments: Sequence[Argument]) -> PreparedCommand:
        """Bind named and positional arguments (terminating errors on any binding problem)."""
        spec = self.specs[cmdlet]
        values: dict[str, Any] = {}
        common: dict[str, Any] = {}
        positional: list[Any] = []
        for argument in arguments:
            if argument.name is None:
                positional.append(argument.value)
                continue
            param = self._resolve_name(spec, argument.name.lstrip("-"))
            if param.name in values or param.name in common:
                raise binding_error(
                    f"Cannot bind parameter because parameter '{param.name}' is specified more than once. To "
                    "provide multiple values to parameters that can accept multiple values, use the array syntax. "
                    "For example, \"-parameter value1,value2,value3\".",
                    "ParameterAlreadyBound", cmdlet, target=argument.name,
                )
            mandatory = self._is_mandatory_somewhere(spec, param.name)
            converted = self.convert(spec, param, argument.value, mandatory=mandatory)
            (common if param.common else values)[param.name] = converted
        candidates = self._candidates(spec, set(values))
        for value in positional:
            slot = next(
                (
                    param for param in spec.params.values()
                    if param.positional and param.name not in values
                    and any(param.name in pset.members for pset in candidates)
                ),
                None,
            )
            if slot is None:
                raise binding_error(
                    f"A positional parameter cannot be found that accepts argument '{_text(value)}'.",
                    "PositionalParameterNotFound", cmdlet, target=value,
                )
            values[slot.name] = self.convert(
                spec, slot, value, mandatory=self._is_mandatory_somewhere(spec, slot.name)
            )
            candidates = self._candidates(spec, set(values))
        return PreparedCommand(spec, values, common, candidates)

    def _choose(self, prepared: PreparedCommand, names: set[str], pending_pipeline: bool) -> SetSpec:
        spec = prepared.spec
        candidates = [pset for pset in prepared.candidates if names <= pset.members]
        if not candidates:
            raise binding_error(
                "Parameter set cannot be resolved using the specified named parameters.",
                "AmbiguousParameterSet", spec.name,
            )

        def missing(pset: SetSpec) -> list[str]:
            return [
                name for name in sorted(pset.mandatory)
                if name not in names
                and not (pending_pipeline and (spec.params[name].by_value or spec.params[name].by_property_name))
            ]

        fitting = [pset for pset in candidates if not missing(pset)]
        if pending_pipeline and fitting:
            return fitting[0]  # which set applies is decided per input record
        default = next((pset for pset in candidates if pset.name == spec.default_set), None)
        if default is not None and default in fitting:
            return default
        if len(fitting) == 1:
            return fitting[0]
        target = default if default is not None else (candidates[0] if len(candidates) == 1 else None)
        if target is None or (fitting and default is None):
            raise binding_error(
                "Parameter set cannot be resolved using the specified named parameters.",
                "AmbiguousParameterSet", spec.name,
            )
        raise binding_error(
            "Cannot process command because of one or more missing mandatory parameters: "
            f"{' '.join(missing(target))}.",
            "MissingMandatoryParameter", spec.name,
        )

    def complete(self, prepared: PreparedCommand) -> BoundCommand:
        """Finish binding for a command that gets no pipeline input."""
        pset = self._choose(prepared, set(prepared.values), pending_pipeline=False)
        return BoundCommand(prepared.spec.name, pset.name, dict(prepared.values), dict(prepared.common))

    def check_begin(self, prepared: PreparedCommand) -> None:
        """Before input arrives: mandatory parameters that cannot come from the pipeline must be bound."""
        self._choose(prepared, set(prepared.values), pending_pipeline=True)

    def bind_record(self, prepared: PreparedCommand, record: Any) -> BoundCommand:
        """Bind one pipeline input record; non-terminating InputObjectNotBound when nothing takes it."""
        spec = prepared.spec
        values = dict(prepared.values)
        bound_any = False
        open_params = prepared.open_params
        if open_params is None:
            open_params = prepared.open_params = [
                param for param in spec.params.values()
                if param.name not in values and (param.by_value or param.by_property_name)
                and any(param.name in pset.members for pset in prepared.candidates)
            ]
        properties = _properties(record)
        for param in open_params:
            if param.by_value and _accepts_by_value(param, record):
                values[param.name] = record
                bound_any = True
            elif param.by_property_name and properties is not None:
                found = _lookup(properties, (param.name, *param.aliases))
                if found is not _MISSING:
                    try:
                        values[param.name] = self.convert(spec, param, found, mandatory=True)
                    except CmdletError as error:
                        raise CmdletError(error.record, terminating=False) from None
                    bound_any = True
        if not bound_any:
            record_error = engine_error(
                "The input object cannot be bound to any parameters for the command either because the command "
                "does not take pipeline input or the input and its properties do not match any of the parameters "
                "that take pipeline input.",
                PARAMETER_BINDING, "InvalidArgument", f"InputObjectNotBound,{spec.name}",
                target=record, command=spec.name,
            )
            raise CmdletError(record_error, terminating=False)
        names = frozenset(values)
        pset = prepared.chosen.get(names)
        if pset is not None:
            return BoundCommand(spec.name, pset.name, values, dict(prepared.common))
        try:
            pset = prepared.chosen[names] = self._choose(prepared, set(values), pending_pipeline=False)
        except CmdletError as error:
            record_error = error.record
            if record_error.fq_error_id.startswith("MissingMandatoryParameter,"):
                missing = record_error.message.rsplit(":", 1)[1].strip().rstrip(".")
                record_error = engine_error(
                    "The input object cannot be bound because it did not contain the information required to bind "
                    f"all mandatory parameters:  {missing}",
                    PARAMETER_BINDING, "InvalidArgument", f"InputObjectMissingMandatory,{spec.name}",
                    target=record, command=spec.name,
                )
            raise CmdletError(record_error, terminating=False) from None
        return BoundCommand(spec.name, pset.name, values, dict(prepared.common))


_MISSING = object()


def _properties(record: Any) -> Mapping[str, Any] | None:
    if isinstance(record, LabObject):
        return record.properties
    if isinstance(record, Mapping):
        return record
    return None


def _lookup(properties: Mapping[str, Any], names: Sequence[str]) -> Any:
    wanted = {name.lower() for name in names}
    for key, value in properties.items():
        if str(key).lower() in wanted:
            return value
    return _MISSING


def _accepts_by_value(param: ParamSpec, record: Any) -> bool:
    """Identity parameter types take strings and Exchange objects by value (via their constructors)."""
    if param.type.endswith("IdParameter"):
        if isinstance(record, str):
            return bool(record)
        if isinstance(record, LabObject):
            return any(name.startswith("Microsoft.Exchange.") for name in record.type_names)
        return False
    if param.type == "MailboxAcePresentationObject":
        return isinstance(record, LabObject) and any(name.endswith("MailboxAcePresentationObject")
                                                     for name in record.type_names)
    return False


__all__ = [
    "ACTION_PREFERENCES", "Binder", "BoundCommand", "CmdletSpec", "ParamSpec", "PreparedCommand", "SetSpec",
    "load_specs", "specs_for",
]
