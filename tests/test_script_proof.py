"""Proof by parser that no value can change the PowerShell a dry-run script runs.

Every script rendered from arbitrary identities (and domain controller and server names) is read by two
parsers that share no code with ``provisioner``: tree-sitter-powershell, and ``tests/psparse.py``'s tokenizer,
which follows PowerShell's own tokenizer rules for the subset the scripts use. Both must see exactly the
expected commands, parameters and argument kinds, in plan order, and nothing else but whole-line comments;
every string argument must be a single-quoted (verbatim) string whose value, decoded by PowerShell's rule,
is the original value.

A value with invisible or lookalike characters is one argument too: a parenthesised concatenation of
single-quoted strings and ``[char]0xHHHH`` codes, evaluated by both readings (``psparse.string_value`` and
the grammar's tree) back to the original value; no such character appears raw anywhere in a script.

tree-sitter-powershell does not treat the typographic single quotes U+2018..U+201B as quotes, while
PowerShell does (``CharExtensions.IsSingleQuote``: U+0027, U+2018, U+2019, U+201A, U+201B;
``CodeGeneration.EscapeSingleQuotedStringContent`` doubles each). The renderer writes the four typographic
ones as ``[char]`` codes, so a rendered literal holds only ASCII quotes (doubled) and both readings agree on
boundaries and values. Values are still decoded with PowerShell's rule; the grammar's own reading is checked
for strings without typographic quotes, and the divergence has its own tests below (on hand-written input).
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from markupsafe import Markup

from provisioner import __version__
from provisioner.domain import planner
from provisioner.domain.model import (
    Action,
    ErrorInfo,
    Identity,
    ItemState,
    Observation,
    Plan,
    PlanItem,
    Result,
    Trustee,
    identity_problem,
    pair_key,
)
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.powershell import literals as pwsh
from provisioner.powershell import render, steps
from provisioner.powershell.render import RenderError, ScriptContext
from provisioner.powershell.steps import StepOptions
from tests import psparse
from tests.hypothesis_profiles import proof_settings

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CONTROL = psparse.CONTROL

QUOTES = ["'", "\u2018", "\u2019", "\u201a", "\u201b", '"', "\u201c", "\u201d", "\u201e"]
FRAGMENTS = [
    *QUOTES, "''", "'@", "@'", "$", "`", "``", "$(", ")", "$(Remove-Mailbox x)", "${x}", "$true", ";", "|", "&",
    "&&", "||", "#", "<#", "#>", "@(", "@(1)", "{", "}", "[", "]", ",", " ", "\u00a0", "\u3000", "\u2003", "`n",
    "`r`n", "-", "\u2013", "\u2014", "-Confirm:$false", "--%", "\\", "%", "*", "?", "=", "+", "'+'",
    "; Remove-Mailbox -Identity x -Confirm:$false; ", "#requires -RunAsAdministrator", "SIG # Begin signature block",
    "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\U0001f600", "\U0001d54f", "\u4e2d\u6587",
    "\uffff", "\ue000", "\U0010fffd", "e\u0301", "\ufe0f", "Add-MailboxPermission", "-Identity",
    # format characters (accepted in identities, written as [char] codes): zero-width, bidi, BOM, tags
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2064", "\ufeff", "\u00ad", "\u202a",
    "\u202e", "\u2066", "\u2069", "\U000e0041", "'\u202e", "\u202e'; Remove-Mailbox x; '", "#\u202e",
    "\u0301", " \u0301", "\u3164", "\u2800", "\u034f",
]


def _valid(value: str) -> bool:
    return identity_problem(value) is None


# Every character an Identity may hold: all but control (Cc, which includes U+0085), surrogate (Cs)
# characters and U+2028/U+2029 (the only Zl and Zp characters). Format characters (Cf) are drawn too. Drawing
# from this alphabet, rather than filtering arbitrary text, keeps generation fast; the filter still decides.
identity_chars = st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"])
identity_text = st.one_of(
    st.text(identity_chars, min_size=1, max_size=30),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(identity_chars, max_size=3)), min_size=1, max_size=12)
    .map("".join),
    st.text(alphabet=st.sampled_from([*QUOTES, *"$`;|&#@(){}<> ab"]), min_size=1, max_size=40),
    # long values (up to the 512-character limit): a short hostile unit repeated
    st.builds(
        lambda unit, times: (unit * times)[:520],
        st.lists(st.sampled_from([*QUOTES, "$(", ")", "#", "x", "\U0001f600", "\u05d0"]), min_size=1, max_size=6)
        .map("".join),
        st.integers(min_value=30, max_value=200),
    ),
).filter(_valid)
identities = identity_text.map(Identity)

# A domain controller or server name need not be a valid Identity: any text the renderer accepts (no control
# characters; format characters such as U+202E are allowed and end up inside a literal).
free_text = st.one_of(
    identity_text,
    st.text(st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]), min_size=1, max_size=30),
)

trustees_strategy = st.lists(
    st.builds(Trustee, identities, st.booleans(), st.sampled_from(["admin-user", "service-account", "trustee"])),
    min_size=1,
    max_size=3,
)
mailboxes_strategy = st.lists(identities, min_size=1, max_size=4)


# ---------------------------------------------------------------------------------------------- helpers


def expected_command(
    state: ItemState, mailbox: str, trustee: Trustee, domain_controller: str | None
) -> tuple[str, list[tuple[str, str]]]:
    """The one command for a changing item, written out here (not taken from ``provisioner.powershell.steps``).

    Elements are (kind, text); for strings the text is the decoded value.
    """
    elements = [
        ("parameter", "-Identity"), ("string", mailbox),
        ("parameter", "-User"), ("string", trustee.identity.value),
        ("parameter", "-AccessRights"), ("bareword", "FullAccess"),
        ("parameter", "-InheritanceType"), ("bareword", "All"),
    ]
    if state is ItemState.TO_ADD:
        name = "Add-MailboxPermission"
        elements += [("parameter", "-AutoMapping:"), ("variable", "$true" if trustee.automapping else "$false")]
    else:
        assert state is ItemState.TO_REMOVE
        name = "Remove-MailboxPermission"
        elements += [("parameter", "-Confirm:"), ("variable", "$false")]
    if domain_controller:
        elements += [("parameter", "-DomainController"), ("string", domain_controller)]
    return name, elements


def _fold(text: str) -> str:
    return " ".join(CONTROL.sub(" ", text).split())


def prove(
    script: str,
    expected_commands: list[tuple[str, list[tuple[str, str]]]],
    expected_comment_values: list[list[str]],
) -> None:
    """The whole proof for one rendered script (see ``psparse.prove_script``), plus the comments' values."""
    assert psparse.prove_script(script, expected_commands) == expected_comment_values


def header_values(server: str, domain_controller: str | None, plan: Plan) -> list[list[str]]:
    """The literals the header comments must hold, line by line (lines without a literal left out)."""
    values = [[__version__], [NOW.strftime("%Y-%m-%dT%H:%M:%SZ")], [server]]
    if domain_controller:
        values.append([domain_controller])
    values += [[trustee.identity.value, trustee.role] for trustee in plan.trustees]
    values += [[state] for state, _count in render.script_counts(plan)]
    return values


def unchanged_values(plan: Plan) -> list[list[str]]:
    """The literals of the "Not changed by this script" comments: state, mailbox, trustee, folded detail."""
    values = []
    for item in plan.items:
        if not item.changes:
            line = [unchanged_outcome(item, plan.action).result.value, item.mailbox.value, item.trustee.identity.value]
            values.append([*line, _fold(item.detail)] if item.detail else line)
    return values


def render_plan(plan: Plan, domain_controller: str | None, server: str) -> str:
    changes = list(steps.changes(plan, StepOptions(domain_controller=domain_controller)))
    return render.render_script(plan, changes, ScriptContext(server, domain_controller), now=NOW)


# ------------------------------------------------------------------------------------ property: offline


@proof_settings()
@given(
    action=st.sampled_from([Action.GRANT, Action.REVOKE]),
    mailboxes=mailboxes_strategy,
    trustees=trustees_strategy,
    domain_controller=st.one_of(st.none(), free_text),
    server=free_text,
)
@example(
    action=Action.GRANT,
    mailboxes=[Identity("'; Remove-Mailbox -Identity x -Confirm:$false; '"), Identity("$(Remove-Mailbox x)")],
    trustees=[Trustee(Identity("\u2019; Remove-Mailbox x; \u2018"), True), Trustee(Identity("<# x #>"))],
    domain_controller="dc'\u201b; #",
    server="srv\u202e'",
)
@example(
    action=Action.REVOKE,
    mailboxes=[Identity("\u2018\u2019\u201a\u201b'" * 100)],
    trustees=[Trustee(Identity("`n@(1)'+'"))],
    domain_controller=None,
    server="SIG # Begin signature block",
)
def test_offline_script_is_exactly_the_planned_commands(
    action: Action, mailboxes: list[Identity], trustees: list[Trustee], domain_controller: str | None, server: str
) -> None:
    plan = planner.plan(action, mailboxes, trustees, None)
    state = ItemState.TO_ADD if action is Action.GRANT else ItemState.TO_REMOVE
    # One command per (mailbox, trustee): mailboxes in input order, trustees in input order within each.
    pairs = itertools.product(mailboxes, trustees)
    expected = [expected_command(state, mailbox.value, trustee, domain_controller) for mailbox, trustee in pairs]
    script = render_plan(plan, domain_controller, server)
    prove(script, expected, header_values(server, domain_controller, plan))


# ----------------------------------------------------------------------------------- property: observed

error_text = st.one_of(st.text(max_size=40), st.lists(st.sampled_from([*FRAGMENTS, "\n", "\r\n", "\x85", "\u2028"]),
                                                      max_size=8).map("".join))
observations = st.one_of(
    st.none(),  # the pair was not read at all
    st.builds(Observation, explicit_allow=st.booleans(), inherited_allow=st.booleans(), deny=st.booleans()),
    st.builds(
        lambda message, reason, fqid: Observation.unreadable(ErrorInfo(message, reason=reason, fq_error_id=fqid)),
        error_text, error_text, error_text,
    ),
)


@proof_settings()
@given(
    action=st.sampled_from([Action.GRANT, Action.REVOKE, Action.AUDIT]),
    mailboxes=mailboxes_strategy,
    trustees=trustees_strategy,
    data=st.data(),
    domain_controller=st.one_of(st.none(), free_text),
    server=free_text,
)
def test_observed_script_has_only_the_changes_and_comments_hold_every_other_item(
    action: Action,
    mailboxes: list[Identity],
    trustees: list[Trustee],
    data: st.DataObject,
    domain_controller: str | None,
    server: str,
) -> None:
    observed = {}
    for mailbox, trustee in itertools.product(mailboxes, trustees):
        observation = data.draw(observations)
        if observation is not None:
            observed[pair_key(mailbox, trustee)] = observation
    plan = planner.plan(action, mailboxes, trustees, observed)
    expected = [
        expected_command(item.state, item.mailbox.value, item.trustee, domain_controller)
        for item in plan.items
        if item.state in (ItemState.TO_ADD, ItemState.TO_REMOVE)
    ]
    script = render_plan(plan, domain_controller, server)
    prove(script, expected, header_values(server, domain_controller, plan) + unchanged_values(plan))


# ------------------------------------------------------------------------- typographic single quotes


def test_tree_sitter_does_not_treat_typographic_quotes_as_quotes() -> None:
    """Observed with tree-sitter-powershell 0.26: U+2018..U+201B are ordinary characters to the grammar.

    PowerShell's tokenizer (``CharExtensions.IsSingleQuote``) treats U+0027, U+2018, U+2019, U+201A and
    U+201B alike, so on these hand-written (never rendered) inputs the two readings differ.
    """
    # 1. PowerShell ends the string at U+2019; for tree-sitter the string runs on to the ASCII quote.
    source = "Write-Output 'a\u2019 b'\n"
    assert psparse.ts_script(source).commands == (psparse.Command("Write-Output", (("string", "'a\u2019 b'"),)),)
    match = psparse.VERBATIM_STRING.match(source, source.index("'"))
    assert match is not None and match.group() == "'a\u2019"
    with pytest.raises(psparse.PSSyntaxError):  # then `b'`: a bare word glued to an unterminated string
        psparse.tokenize(source)

    # 2. A string delimited by typographic quotes only: one string for PowerShell, two bare words for the grammar.
    source = "Write-Output \u2018a b\u2019\n"
    assert psparse.ts_script(source).commands == (
        psparse.Command("Write-Output", (("bareword", "\u2018a"), ("bareword", "b\u2019"))),
    )
    assert [token.value for token in psparse.tokenize(source) if token.kind == "string"] == ["a b"]

    # 3. `'‘'`: for PowerShell `‘'` is an escaped pair and the string never ends; the grammar sees `'‘'`.
    source = "Write-Output '\u2018'\n"
    assert psparse.ts_script(source).commands == (psparse.Command("Write-Output", (("string", "'\u2018'"),)),)
    with pytest.raises(psparse.PSSyntaxError, match="unterminated"):
        psparse.tokenize(source)


@pytest.mark.parametrize("quote", ["\u2018", "\u2019", "\u201a", "\u201b"])
def test_rendered_typographic_quotes_become_char_codes_that_both_readings_agree_on(quote: str) -> None:
    value = f"O{quote}Brien {quote}{quote}'{quote}; Remove-Mailbox x; {quote}"
    trustee = Trustee(Identity("svc"))
    item = PlanItem(Identity(value), trustee, ItemState.TO_ADD)
    line = render.render_command(steps.grant(item, StepOptions()))
    assert not psparse.has_typographic_quote(line)
    mine, theirs = psparse.commands(line), psparse.ts_script(line)
    assert theirs.commands == mine.commands  # same token boundaries
    (command,) = mine.commands
    assert psparse.decoded(command) == expected_command(ItemState.TO_ADD, value, trustee, None)
    raw = command.elements[1][1]
    assert raw.startswith("('O' + [char]0x") and f"[char]0x{ord(quote):04X}" in raw
    assert psparse.string_value(raw) == value
    assert theirs.values == (value, "svc")  # the grammar's own reading agrees now: no typographic quote is raw


def test_powershells_single_quote_rule() -> None:
    """``Tokenizer.ScanStringLiteral``: a quote character followed by a quote character is one literal
    character, and the *second* of the pair is kept; the five quote characters pair with each other."""
    assert psparse.decode_verbatim("'a\u2019'b'") == "a'b"
    assert psparse.decode_verbatim("'a'\u2019b'") == "a\u2019b"
    assert psparse.decode_verbatim("'\u201a\u201b'") == "\u201b"
    assert psparse.decode_verbatim("\u2018x\u2019") == "x"  # typographic delimiters are delimiters
    assert psparse.decode_verbatim("''''") == "'"
    for bad in ("'a\u2019b'", "'''", "'", "'a", "a'", "'x' "):
        with pytest.raises(psparse.PSSyntaxError):
            psparse.decode_verbatim(bad)


quote_soup = st.text(alphabet=st.sampled_from([*psparse.SINGLE_QUOTES, "a", "$", " "]), max_size=12)


@proof_settings()
@given(value=st.one_of(quote_soup, st.text(max_size=20)))
def test_pwsh_quote_is_decoded_by_powershells_rule(value: str) -> None:
    literal = pwsh.quote(value)
    assert psparse.string_value(literal) == value
    assert [(token.kind, token.value) for token in psparse.tokenize(literal)] == [("string", value)]


# ------------------------------------------------------------------------ comments cannot be escaped from

LINE_BREAKS_AND_CONTROLS = ["\n", "\r", "\r\n", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x00", "\x1b", "\x7f"]


def _offline_plan(trustee: Trustee | None = None) -> Plan:
    return planner.plan(Action.GRANT, [Identity("alice")], [trustee or Trustee(Identity("svc"))], None)


@pytest.mark.parametrize("char", LINE_BREAKS_AND_CONTROLS, ids=repr)
@pytest.mark.parametrize("where", ["server", "domain controller (header)", "domain controller (command)", "role"])
def test_render_script_refuses_control_characters_wherever_a_value_is_printed(char: str, where: str) -> None:
    """Values that are not Identities (server, domain controller, role) reach the templates unchecked; the
    environment's finalizer refuses them, so no line break can end a ``#`` comment and start code."""
    hostile = f"x{char}Remove-Mailbox -Identity y -Confirm:$false"
    plan = _offline_plan(Trustee(Identity("svc"), role=hostile) if where == "role" else None)
    context = ScriptContext(hostile if where == "server" else "srv",
                            hostile if where == "domain controller (header)" else None)
    options = StepOptions(domain_controller=hostile if where == "domain controller (command)" else None)
    with pytest.raises(RenderError, match="control character"):
        render.render_script(plan, list(steps.changes(plan, options)), context, now=NOW)


@pytest.mark.parametrize("char", [*LINE_BREAKS_AND_CONTROLS, "\ud800", "\udfff", "\ufffe", "\uffff"], ids=repr)
def test_identities_refuse_line_breaks_and_control_characters(char: str) -> None:
    assert identity_problem(f"a{char}b") is not None
    with pytest.raises(ValueError):
        Identity(f"a{char}b")


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u200c", "\u200d", "\ufeff", "\u2066", "\u00ad"], ids=repr)
def test_identities_accept_format_characters_but_not_only_them(char: str) -> None:
    assert Identity(f"a{char}b").value == f"a{char}b"
    assert identity_problem(char) is not None
    assert identity_problem(f" {char}{char} ") is not None


def test_server_error_text_is_folded_onto_its_comment_line() -> None:
    """Error messages come from the server (free text): the "not changed" comment folds them onto one line."""
    message = "boom\nRemove-Mailbox -Identity x -Confirm:$false\r\n#>\u2028'; $(Remove-Mailbox y)\x85<#"
    mailbox, trustee = Identity("alice"), Trustee(Identity("svc"))
    observed = {pair_key(mailbox, trustee): Observation.unreadable(ErrorInfo(message, reason="R\nX"))}
    plan = planner.plan(Action.GRANT, [mailbox], [trustee], observed)
    script = render_plan(plan, None, "srv")
    prove(script, [], header_values("srv", None, plan) + unchanged_values(plan))
    assert "#   'unknown': mailbox 'alice', trustee 'svc': 'boom Remove-Mailbox -Identity x -Confirm:$false #> ''; " \
           "$(Remove-Mailbox y) <# [R X]'\n" in script


SIGNATURE_LOOKALIKES = [
    "SIG # Begin signature block", "sig#beginsignatureblock", "# SIG # Begin signature block", "nsignatureblock",
    "signatureblock", "ig#beginsignatureblock", "SIG # Begin", "SIG", "requires -RunAsAdministrator",
    "#requires -Version 99", "s", "#",
]


FREE = "\ue000"  # stands for "any value": every value a user, a config or a server can choose contains it


def _every_kind_of_comment() -> list[str]:
    """Scripts with every comment line the templates can write, every free value marked with FREE."""
    mailboxes = [Identity(FREE * count) for count in range(1, 7)]
    trustee = Trustee(Identity(FREE + "t"), role="trustee")
    error = ErrorInfo(FREE, reason=FREE, fq_error_id=FREE)
    grant = [
        Observation(), Observation(explicit_allow=True), Observation(inherited_allow=True), Observation(deny=True),
        Observation.unreadable(error), None,
    ]
    revoke = [
        Observation(explicit_allow=True), Observation(inherited_allow=True), Observation(deny=True), Observation(),
        Observation.unreadable(error), None,
    ]
    plans = [planner.plan(action, mailboxes[:1], [trustee], None) for action in (Action.GRANT, Action.REVOKE)]
    nothing_to_remove = {pair_key(mailboxes[0], trustee): Observation()}
    plans.append(planner.plan(Action.REVOKE, mailboxes[:1], [trustee], nothing_to_remove))
    for action, observations in ((Action.GRANT, grant), (Action.AUDIT, grant), (Action.REVOKE, revoke)):
        observed = {
            pair_key(mailbox, trustee): observation
            for mailbox, observation in zip(mailboxes, observations, strict=True)
            if observation is not None
        }
        plans.append(planner.plan(action, mailboxes, [trustee], observed))
    comments: list[str] = []
    for plan in plans:
        comments += psparse.commands(render_plan(plan, FREE, FREE)).comments
        comments += psparse.commands(render_plan(plan, None, FREE)).comments
    states = {line.split("'")[1] for line in comments if line.startswith("#   '") and line.split("'")[1] != FREE}
    # every state a script can hold, in the counts and the unchanged items (a not-found mailbox is "failed" in
    # test_the_dry_run_script_calls_a_missing_mailbox_failed_as_stderr_does)
    assert states >= {result.value for result in set(Result) - {Result.GRANTED, Result.REMOVED, Result.FAILED}}
    assert "# Nothing to change." in comments
    return comments


def test_no_value_can_make_a_comment_a_signature_block_or_a_requirement() -> None:
    """Not just the values tried: for every comment line, the least distance to ``sig#beginsignatureblock``
    over *all* possible values in its free places is 10 or more (PowerShell's threshold), and every comment
    starts with ``# `` (or is ``#``), so it can never read ``#requires``."""
    for comment in _every_kind_of_comment():
        assert comment == "#" or comment.startswith("# "), comment
        assert psparse.signature_distance_bound(comment, lambda value: FREE in value) >= 10, comment


def test_the_comment_checks_are_not_vacuous() -> None:
    assert psparse.looks_like_signature("# SIG # Begin signature block")
    assert psparse.looks_like_signature("# sig # begin signature blocks")
    assert not psparse.looks_like_signature("# SIG # End signature block, and then some more text")
    assert psparse.is_requires("#requires -RunAsAdministrator")
    assert psparse.is_requires("#REQUIRES -Version 5")
    assert not psparse.is_requires("# requires -Version 5")
    assert psparse.signature_distance_bound("# SIG # Begin signature block", lambda value: True) == 0
    assert psparse.signature_distance_bound("# '\ue000'", lambda value: True) < 10
    assert psparse.signature_distance_bound("# '\ue000'", lambda value: False) >= 10


@pytest.mark.parametrize("value", SIGNATURE_LOOKALIKES)
def test_values_closest_to_a_signature_block_or_a_requirement_stay_inert(value: str) -> None:
    """A comment line PowerShell takes for ``# SIG # Begin signature block`` makes every later statement a
    parse error; ``#requires`` is acted on. Every comment line starts with fixed text, so neither can happen;
    checked here with the values that come closest, in every comment slot."""
    mailbox, trustee = Identity(value), Trustee(Identity(value), role=value)
    observed = {pair_key(mailbox, trustee): Observation.unreadable(ErrorInfo(value, reason=value))}
    for plan in (planner.plan(Action.GRANT, [mailbox], [trustee], observed), _offline_plan(trustee)):
        expected = [
            expected_command(item.state, item.mailbox.value, item.trustee, value)
            for item in plan.items
            if item.changes
        ]
        script = render_plan(plan, value, value)
        prove(script, expected, header_values(value, value, plan) + unchanged_values(plan))


# ------------------------------------------------------------------------ the environment's default

HOSTILE = [
    "'; Remove-Mailbox -Identity x -Confirm:$false; '", "$(Remove-Mailbox x)", "\u2019; Remove-Mailbox x; \u2018",
    "`n", "#", "<#", "#>", "@(1)", "'+'", "\"", "\u201c$x\u201d", "", " ", "a\u202eb", "\U0001f600'\u05d0",
]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_an_unfiltered_variable_prints_a_quoted_literal(value: str) -> None:
    """Escaping is the environment's default: ``{{ x }}`` with no filter, in a template made on the spot."""
    out = render.environment().from_string("{{ x }}").render(x=value)
    assert [(token.kind, token.value) for token in psparse.tokenize(out)] == [("string", value)]
    assert psparse.ts_script(f"Write-Output {out}\n").commands == (psparse.Command("Write-Output", (("string", out),)),)
    # Whatever a template does to the value first, the result is still one literal.
    for source in ("{{ x | upper }}", "{{ \"'\" ~ x ~ \"'\" }}", "{% set y = x %}{{ y }}",
                   "{% macro m(v) %}{{ v }}{% endmacro %}{{ m(x) }}", "{{ [x, x] | join(' ') }}"):
        out = render.environment().from_string(source).render(x=value)
        assert [token.kind for token in psparse.tokenize(out)] == ["string"], (source, out)


def test_only_trusted_values_pass_unquoted() -> None:
    template = render.environment().from_string("{{ x }}")
    assert template.render(x=pwsh.Bare("Add-MailboxPermission")) == "Add-MailboxPermission"
    assert template.render(x=Markup("$z; Remove-Mailbox x")) == "$z; Remove-Mailbox x"
    assert template.render(x=True) == "$true"
    assert template.render(x=False) == "$false"
    assert template.render(x=None) == "$null"
    assert template.render(x=42) == "42"
    assert template.render(x=(pwsh.Bare("FullAccess"), pwsh.Bare("ReadPermission"))) == "FullAccess,ReadPermission"
    with pytest.raises(ValueError):
        pwsh.Bare("x; Remove-Mailbox")
    with pytest.raises(TypeError):
        template.render(x=1.5)


@pytest.mark.parametrize("char", LINE_BREAKS_AND_CONTROLS, ids=repr)
def test_an_unfiltered_variable_with_a_control_character_is_refused(char: str) -> None:
    for source in ("{{ x }}", "# {{ x }}"):
        with pytest.raises(RenderError):
            render.environment().from_string(source).render(x=f"a{char}Remove-Mailbox x")


@pytest.mark.parametrize("container", [list, tuple], ids=["list", "tuple"])
def test_a_control_character_inside_a_list_is_refused_too(container: type) -> None:
    """Regression: ``_finalize`` once checked only ``str`` values for control characters while
    ``pwsh.literal`` renders a list/tuple element by element, so ``# {{ x }}`` with
    ``x = ["a\\nRemove-Mailbox -Identity x -Confirm:$false\\n#"]`` wrote line breaks into the comment and the
    ``Remove-Mailbox`` line became code (found by this test; fixed in c099997). No template prints a user list
    (list values are Bare tokens), so it was latent, but the default must not depend on that."""
    template = render.environment().from_string("# {{ x }}\n")
    with pytest.raises(RenderError):
        out = template.render(x=container(["a\nRemove-Mailbox -Identity x -Confirm:$false\n#"]))
        raise AssertionError(f"rendered {out.splitlines()}; commands: {psparse.ts_script(out).commands}")


def test_templates_never_opt_out_of_the_default() -> None:
    """The only ways around the finalizer are ``|safe``, ``Markup`` and switching autoescape off."""
    for path in render.template_dir().glob("*.j2"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b|Markup|autoescape|\|\s*e\b|\|\s*escape\b", text), path.name


# -------------------------------------------------------------------------------- the oracles can fail

INJECTED = [
    "Add-X -Identity 'a'; Remove-Mailbox x",
    "Add-X -Identity 'a' | Remove-Mailbox",
    "Add-X -Identity 'a' && Remove-Mailbox x",
    "Add-X -Identity \"$(Remove-Mailbox x)\"",
    "Add-X -Identity 'a'$(Remove-Mailbox x)",
    "Add-X -Identity a'; Remove-Mailbox x",
    "Add-X -Identity $(Remove-Mailbox x)",
    "Add-X -Identity @(1)",
    "Add-X -Identity 'a' `\nRemove-Mailbox x",
    "Add-X -Identity 'a",
    "Add-X <# x #> -Identity 'a'",
    "& { Remove-Mailbox x }",
]


@pytest.mark.parametrize("source", INJECTED, ids=repr)
def test_the_parsers_see_an_injection(source: str) -> None:
    """Each reading refuses, or finds more than the one expected command: neither is blind to code."""
    expected = [("Add-X", [("parameter", "-Identity"), ("string", "a")])]
    with pytest.raises((AssertionError, psparse.PSSyntaxError)):
        psparse.prove_script(source + "\n", expected)
    try:
        theirs = psparse.ts_script(source + "\n")
    except psparse.TsShapeError:
        return
    assert [psparse.decoded(command) for command in theirs.commands] != expected


def test_a_line_break_out_of_a_comment_is_seen() -> None:
    script = "# Target server:    'x'\nRemove-Mailbox -Identity x -Confirm:$false\n#'\n"
    assert psparse.commands(script).commands == psparse.ts_script(script).commands == (
        psparse.Command("Remove-Mailbox", (("parameter", "-Identity"), ("bareword", "x"), ("parameter", "-Confirm:"),
                                           ("variable", "$false"))),
    )
    with pytest.raises(AssertionError):
        psparse.prove_script(script, [])
