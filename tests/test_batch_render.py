"""The dry-run script from a step generator: the same text as from the list of steps."""

from __future__ import annotations

from datetime import UTC, datetime

from provisioner.domain import planner
from provisioner.domain.model import Action, ErrorInfo, Identity, Observation, Trustee, pair_key
from provisioner.powershell import steps as step_builders
from provisioner.powershell.render import ScriptContext, render_script

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_a_step_generator_renders_exactly_what_the_list_renders() -> None:
    mailboxes = [Identity(f"user{i:06d}") for i in range(1, 40)] + [Identity("Frank O'Connor")]
    trustees = (Trustee(Identity("svc-codetwo@contoso.com")), Trustee(Identity("sync.admin"), automapping=True))
    observed = {pair_key(m, t): Observation() for m in mailboxes for t in trustees}
    observed[pair_key(mailboxes[0], trustees[0])] = Observation(explicit_allow=True)
    observed[pair_key(mailboxes[1], trustees[1])] = Observation.unreadable(ErrorInfo("gone", reason="X"))
    plan = planner.plan(Action.GRANT, mailboxes, trustees, observed)
    options = step_builders.StepOptions(domain_controller="dc01.contoso.com")
    context = ScriptContext("ex01.contoso.com", "dc01.contoso.com", "Set-ADServerSettings -ViewEntireForest $true")
    expected = render_script(plan, list(step_builders.changes(plan, options)), context, now=NOW)
    assert render_script(plan, step_builders.changes(plan, options), context, now=NOW) == expected
    assert "# Not changed by this script:" in expected


def test_a_plan_without_unchanged_items_has_no_unchanged_section() -> None:
    trustees = (Trustee(Identity("svc")),)
    plan = planner.plan(Action.GRANT, [Identity("a")], trustees, None)
    script = render_script(plan, step_builders.changes(plan, step_builders.StepOptions()), ScriptContext("x"), now=NOW)
    assert "Not changed" not in script and "Add-MailboxPermission -Identity 'a'" in script
