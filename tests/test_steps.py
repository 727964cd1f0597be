"""Steps use the real cmdlets' parameters: checked against the official reference data (exchange-cmdlets.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioner import __version__
from provisioner.domain import planner
from provisioner.domain.model import Action, Identity, Trustee, pair_key
from provisioner.powershell import steps
from provisioner.powershell.render import ScriptContext, render_command, render_script
from tests import psparse

REFERENCE = json.loads(
    (Path(__file__).parent.parent / "lab" / "provisioner_lab" / "data" / "exchange-cmdlets.json").read_text()
)["cmdlets"]
COMMON = {"Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ErrorVariable"}
MAILBOXES = [Identity("alice.wong@contoso.com"), Identity("Frank O'Connor")]
TRUSTEES = [
    Trustee(Identity("svc-codetwo@contoso.com"), False, "service-account"),
    Trustee(Identity("sync.admin"), True),
]
OPTIONS = [steps.StepOptions(), steps.StepOptions(domain_controller="dc01.contoso.com")]


def _matching_sets(step: steps.Step) -> list[str]:
    cmdlet = REFERENCE[str(step.cmdlet)]
    names = {str(p.name) for p in step.parameters} - COMMON
    found = []
    for parameter_set in cmdlet["parameter_sets"]:
        declared = {p["name"]: p for p in parameter_set["parameters"]}
        mandatory = {name for name, p in declared.items() if p["mandatory"]}
        if names <= set(declared) and mandatory <= names:
            found.append(parameter_set["name"])
    return found


def _all_steps() -> list[steps.Step]:
    result: list[steps.Step] = []
    for options in OPTIONS:
        for action in (Action.GRANT, Action.REVOKE):
            plan = planner.plan(action, MAILBOXES, TRUSTEES, None)
            result += list(steps.changes(plan, options))
        result += [steps.read(m, t, options) for m in MAILBOXES for t in TRUSTEES]
    return result


@pytest.mark.parametrize("step", _all_steps(), ids=lambda s: f"{s.cmdlet}-{len(s.parameters)}")
def test_step_binds_to_a_real_parameter_set(step: steps.Step) -> None:
    assert _matching_sets(step) == ["AccessRights"]
    declared = REFERENCE[str(step.cmdlet)]["parameters"]
    for parameter in step.parameters:
        kind = declared[str(parameter.name)]["type"]
        if kind == "Boolean":
            assert isinstance(parameter.value, bool)
        if kind == "SwitchParameter":
            assert parameter.value is None or isinstance(parameter.value, bool)


def test_enum_values_are_documented() -> None:
    text = json.dumps(REFERENCE["Add-MailboxPermission"]["parameters"]["AccessRights"])
    assert "FullAccess" in json.dumps(REFERENCE) and "MailboxRights" in text
    inheritance = REFERENCE["Add-MailboxPermission"]["parameters"]["InheritanceType"]["type"]
    assert inheritance == "ActiveDirectorySecurityInheritance"
    assert steps.INHERIT_ALL == "All" and steps.FULL_ACCESS == ("FullAccess",)


def test_remove_always_confirms_false_and_grant_sets_automapping() -> None:
    plan = planner.plan(Action.REVOKE, MAILBOXES[:1], TRUSTEES[:1], None)
    (remove,) = steps.changes(plan, steps.StepOptions())
    assert render_command(remove) == (
        "Remove-MailboxPermission -Identity 'alice.wong@contoso.com' -User 'svc-codetwo@contoso.com' "
        "-AccessRights FullAccess -InheritanceType All -Confirm:$false"
    )
    plan = planner.plan(Action.GRANT, MAILBOXES[1:], TRUSTEES[1:], None)
    (add,) = steps.changes(plan, steps.StepOptions(domain_controller="dc01.contoso.com"))
    assert render_command(add) == (
        "Add-MailboxPermission -Identity 'Frank O''Connor' -User 'sync.admin' -AccessRights FullAccess "
        "-InheritanceType All -AutoMapping:$true -DomainController 'dc01.contoso.com'"
    )


HOSTILE = [
    "x'; Remove-Mailbox -Identity ceo -Confirm:$false; '",
    "\u2018quoted\u2019 \u201alow\u201b",
    "$(Remove-Mailbox ceo)",
    "`$env:PATH`",
    "a;b|c&d",
    "Jürgen Müller-Lüdenscheidt",
    "山田太郎",
    "@(1,2)",
    "-Confirm:$false",
    "''''",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_render_as_exact_literals(value: str) -> None:
    """Each value is one string argument (a single-quoted literal, or literals joined with [char] codes when it
    holds typographic quotes or invisible characters) that decodes, by PowerShell's rule, to the value."""
    plan = planner.plan(Action.GRANT, [Identity(value)], [Trustee(Identity(value))], None)
    (step,) = steps.changes(plan, steps.StepOptions(domain_controller=value))
    line = render_command(step)
    assert [token.value for token in psparse.tokenize(line) if token.kind == "string"] == [value, value, value]
    assert line.startswith(("Add-MailboxPermission -Identity '", "Add-MailboxPermission -Identity ('"))


def test_script_header_counts_and_unchanged_items() -> None:
    from provisioner.domain.model import Observation

    observed: dict[Any, Observation] = {
        pair_key(MAILBOXES[0], TRUSTEES[0]): Observation(explicit_allow=True),
        pair_key(MAILBOXES[0], TRUSTEES[1]): Observation(deny=True),
        pair_key(MAILBOXES[1], TRUSTEES[0]): Observation(),
    }
    plan = planner.plan(Action.GRANT, MAILBOXES, TRUSTEES, observed)
    script = render_script(plan, list(steps.changes(plan, steps.StepOptions())), ScriptContext("exch01.contoso.com"))
    assert psparse.ENCODING_GUARD in script.splitlines()
    commands = psparse.command_lines(script)
    assert commands == [
        "Add-MailboxPermission -Identity 'Frank O''Connor' -User 'svc-codetwo@contoso.com' -AccessRights FullAccess "
        "-InheritanceType All -AutoMapping:$false"
    ]
    assert "#   'already-present': 1" in script and "#   'blocked': 1" in script and "#   'unknown': 1" in script
    assert "# Target server:    'exch01.contoso.com'" in script
    assert f"provisioner '{__version__}'" in script
