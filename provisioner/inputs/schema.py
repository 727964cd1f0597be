"""The settings' schema: each setting's type, range, choices and help, read from the settings dataclasses.

A setting is a dataclass field declared with :func:`setting` (its metadata holds a :class:`Rule`). Its type comes
from the field's annotation (``int | None`` is an int; a ``Literal`` gives the choices). The TOML reader
(:mod:`provisioner.inputs.config`) and the command-line options (:func:`provisioner.cli.common.connection_of`) both
check
values with :func:`problem`, so a value is refused with the same sentence wherever it comes from; only the name
differs (``connection.port`` in the file, ``--port`` on the command line). :func:`specs` is the introspectable
table (the documentation's configuration reference is generated from it).
"""

from __future__ import annotations

import functools
import math
import types
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from provisioner.domain.model import identity_problem

METADATA_KEY = "provisioner.setting"


@dataclass(frozen=True)
class Rule:
    """What a setting accepts beyond its type."""

    help: str
    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    empty_ok: bool = False  # a string may be ""
    checked_text: bool = True  # a string is checked as Exchange text (no control characters, ...)


@dataclass(frozen=True)
class Spec:
    """One setting as the schema sees it."""

    name: str
    kind: type  # str, int, float, bool or Path
    choices: tuple[str, ...]
    rule: Rule
    default: Any

    @property
    def toml_types(self) -> tuple[type, ...]:
        """The TOML value types accepted (a float setting takes an integer too; a path is a string)."""
        return {float: (int, float), Path: (str,)}.get(self.kind, (self.kind,))


def setting(default: Any = None, help: str = "", *, low: float | None = None, high: float | None = None,
            empty_ok: bool = False, checked_text: bool = True, factory: Any = None) -> Any:
    """A dataclass field carrying its :class:`Rule`."""
    metadata = {METADATA_KEY: Rule(help, low, high, empty_ok, checked_text)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _kind(annotation: Any) -> tuple[type, tuple[str, ...]]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _kind(inner)
    if origin is Literal:
        return str, tuple(str(arg) for arg in get_args(annotation))
    if annotation in (str, int, float, bool, Path):
        return annotation, ()
    raise TypeError(f"no schema kind for {annotation!r}")


@functools.cache
def specs(cls: type) -> dict[str, Spec]:
    """The settings of dataclass ``cls`` (fields declared with :func:`setting`), in declaration order."""
    hints = get_type_hints(cls)
    table: dict[str, Spec] = {}
    for item in fields(cls):
        rule = item.metadata.get(METADATA_KEY)
        if rule is None:
            continue
        kind, choices = _kind(hints[item.name])
        default = item.default if item.default is not MISSING else None
        table[item.name] = Spec(item.name, kind, choices, rule, default)
    return table


def type_problem(spec: Spec, value: Any) -> str | None:
    """Why ``value`` (as TOML gave it) is not of the setting's type; bool is not a number here, as in TOML."""
    kinds = spec.toml_types
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        return f"expected {' or '.join(kind.__name__ for kind in kinds)}, got {type(value).__name__}"
    return None


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def problem(spec: Spec, value: Any) -> str | None:
    """Why ``value`` cannot be this setting, or None. The one set of sentences for the file and the options."""
    if spec.kind in (int, float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, not {value}"
        low, high = spec.rule.low, spec.rule.high
        if (low is not None and value < low) or (high is not None and value > high):
            shown = str(value) if len(str(value)) <= 30 else f"{str(value)[:12]}...({len(str(value))} digits)"
            if high is None:
                return f"{shown} is below the minimum of {_bound(low or 0)}"
            return f"{shown} is not between {_bound(low or 0)} and {_bound(high)}"
        return None
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        if spec.choices and value not in spec.choices:
            return f"'{value}' is not one of {', '.join(spec.choices)}"
        if not value:
            return None if spec.rule.empty_ok else "must not be empty"
        if spec.rule.checked_text:
            return identity_problem(value)
    return None


def describe(spec: Spec) -> str:
    """The setting's help sentence with what it accepts (for option help and the configuration reference)."""
    if spec.choices:
        return f"{spec.rule.help} (one of: {', '.join(spec.choices)}; default {spec.default})"
    if spec.kind in (int, float) and spec.rule.low is not None and spec.rule.high is not None:
        return f"{spec.rule.help} ({_bound(spec.rule.low)} to {_bound(spec.rule.high)})"
    return spec.rule.help
