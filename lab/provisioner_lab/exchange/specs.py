"""Cmdlet specifications from ``exchange-cmdlets.json``, and the views of them a session sees.

:func:`load_specs` is every parameter the docs list (all products). :func:`specs_for` is what one session of a
given server profile has: the parameters that exist on that release (the JSON's per-parameter ``products``),
minus the profile's explicit removals, minus what RBAC takes away from the caller; the common parameters of the
profile's PowerShell version. A parameter set that loses a mandatory parameter is gone; a cmdlet that loses all
of its sets, or that RBAC removes, is not in the view (CommandNotFoundException when called).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from provisioner_lab.profiles import ServerProfile

# PowerShell's common parameters: name -> (type, alias). WhatIf/Confirm come from the JSON where supported.
COMMON_PARAMETERS: dict[str, tuple[str, str]] = {
    "Verbose": ("SwitchParameter", "vb"),
    "Debug": ("SwitchParameter", "db"),
    "ErrorAction": ("ActionPreference", "ea"),
    "WarningAction": ("ActionPreference", "wa"),
    "InformationAction": ("ActionPreference", "infa"),
    "ErrorVariable": ("String", "ev"),
    "WarningVariable": ("String", "wv"),
    "InformationVariable": ("String", "iv"),
    "OutVariable": ("String", "ov"),
    "OutBuffer": ("Int32", "ob"),
    "PipelineVariable": ("String", "pv"),
}

DEFAULT_SETS = {
    "Add-MailboxPermission": "AccessRights",
    "Get-MailboxPermission": "AccessRights",
    "Remove-MailboxPermission": "AccessRights",
    "Get-Mailbox": "Identity",
    "Get-Recipient": "Identity",
    "Get-User": "Identity",
    "Get-DistributionGroupMember": "(Default)",
}


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    aliases: tuple[str, ...] = ()
    by_value: bool = False
    by_property_name: bool = False
    positional: bool = False
    common: bool = False
    position: int | None = None  #: 0-based position when positional (the docs count from 1)


@dataclass(frozen=True)
class SetSpec:
    name: str
    mandatory: frozenset[str]
    members: frozenset[str]


@dataclass(frozen=True)
class CmdletSpec:
    name: str
    params: dict[str, ParamSpec]
    sets: tuple[SetSpec, ...]
    default_set: str

    @property
    def supports_should_process(self) -> bool:
        return "Confirm" in self.params


@functools.cache
def _cmdlet_data() -> dict[str, Any]:
    text = resources.files("provisioner_lab").joinpath("data", "exchange-cmdlets.json").read_text("utf-8")
    cmdlets: dict[str, Any] = json.loads(text)["cmdlets"]
    return cmdlets


Keep = Callable[[str, str, dict[str, Any]], bool]


def _param(pname: str, pdata: dict[str, Any]) -> ParamSpec:
    pipeline = pdata.get("pipeline_input") or {}
    alias = pdata.get("aliases")
    aliases = tuple(a.strip() for a in alias.split(",")) if isinstance(alias, str) else tuple(alias or ())
    position = str(pdata.get("position"))
    positional = position not in ("Named", "None", "")
    return ParamSpec(
        name=pname, type=pdata["type"], aliases=aliases,
        by_value=bool(pipeline.get("by_value")), by_property_name=bool(pipeline.get("by_property_name")),
        positional=positional, position=int(position) - 1 if positional and position.isdigit() else None,
    )


def _build(name: str, cmdlet: dict[str, Any], keep: Keep, common: Iterable[str]) -> CmdletSpec | None:
    params = {
        pname: _param(pname, pdata) for pname, pdata in cmdlet["parameters"].items() if keep(name, pname, pdata)
    }
    sets: list[SetSpec] = []
    for pset in cmdlet["parameter_sets"]:
        members = [p for p in pset["parameters"] if p["name"] in params]
        if any(p["mandatory"] and p["name"] not in params for p in pset["parameters"]):
            continue  # a set whose mandatory parameter is gone cannot be used
        sets.append(SetSpec(pset["name"], frozenset(p["name"] for p in members if p["mandatory"]),
                            frozenset(p["name"] for p in members)))
    if not sets:
        return None
    for cname in common:
        ctype, calias = COMMON_PARAMETERS[cname]
        params.setdefault(cname, ParamSpec(cname, ctype, (calias,), common=True))
    for risk in ("Confirm", "WhatIf"):
        if risk in params:
            params[risk] = ParamSpec(risk, "SwitchParameter", params[risk].aliases, common=True)
    names = [pset.name for pset in sets]
    default = DEFAULT_SETS.get(name)
    return CmdletSpec(name, params, tuple(sets), default if default in names else names[0])


@functools.cache
def load_specs() -> dict[str, CmdletSpec]:
    """Every cmdlet with every parameter the docs list, whatever the product (the unfiltered reference)."""
    specs = {
        name: _build(name, cmdlet, lambda _c, _p, _d: True, COMMON_PARAMETERS)
        for name, cmdlet in _cmdlet_data().items()
    }
    return {name: spec for name, spec in specs.items() if spec is not None}


@functools.cache
def specs_for(
    profile: ServerProfile,
    removed_parameters: frozenset[tuple[str, str]] = frozenset(),
    removed_cmdlets: frozenset[str] = frozenset(),
) -> dict[str, CmdletSpec]:
    """The cmdlets and parameters a session on ``profile`` has, after RBAC removed the given ones: the Exchange
    cmdlets of the JSON, and the core cmdlets Exchange keeps public (:mod:`provisioner_lab.exchange.core`).

    ``removed_parameters`` holds ``(cmdlet, parameter)`` pairs; names are matched case-insensitively.
    """
    gone = {(c.lower(), p.lower()) for c, p in (*profile.removed_parameters, *removed_parameters)}
    gone_cmdlets = {c.lower() for c in removed_cmdlets}

    def keep(cmdlet: str, pname: str, pdata: dict[str, Any]) -> bool:
        products = pdata.get("products") or {}
        return bool(products.get(profile.product, True)) and (cmdlet.lower(), pname.lower()) not in gone

    specs: dict[str, CmdletSpec] = {}
    for name, cmdlet in _cmdlet_data().items():
        if name.lower() in gone_cmdlets or not (cmdlet.get("products") or {}).get(profile.product, True):
            continue
        spec = _build(name, cmdlet, keep, profile.common_parameters)
        if spec is not None:
            specs[name] = spec
    from provisioner_lab.exchange.core import core_specs  # (core imports this module)

    for name, core in core_specs(profile).items():
        if name.lower() in gone_cmdlets:
            continue
        kept = {pname: param for pname, param in core.params.items() if (name.lower(), pname.lower()) not in gone}
        sets = tuple(replace(pset, members=frozenset(m for m in pset.members if m in kept)) for pset in core.sets)
        specs[name] = replace(core, params=kept, sets=sets)
    return specs


__all__ = ["COMMON_PARAMETERS", "DEFAULT_SETS", "CmdletSpec", "ParamSpec", "SetSpec", "load_specs", "specs_for"]
