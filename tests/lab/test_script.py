"""The full-language script subset: tokenizer/parser rules, PowerShell quoting round-trips, and running scripts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from provisioner_lab.api import Argument, Invocation, PipelineResult, Statement
from provisioner_lab.exchange import EngineOptions, ExchangeEngine
from provisioner_lab.exchange.script import SINGLE_QUOTES, ScriptError, parse_script, tokenize_value

QUOTES = sorted(SINGLE_QUOTES)


def ps_quote(value: str) -> str:
    """Quote the PowerShell way: wrap in quotes, double every quote character."""
    return "'" + "".join(char * 2 if char in SINGLE_QUOTES else char for char in value) + "'"


def run_script(engine: ExchangeEngine, text: str) -> PipelineResult:
    return engine.run([Statement((Invocation(text, is_script=True),))], [], user="CONTOSO\\sync.admin")


@pytest.fixture
def engine() -> ExchangeEngine:
    return ExchangeEngine.from_seed(options=EngineOptions(language_mode="FullLanguage"))


# ---------------------------------------------------------------------------------------------- quoting
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from([*QUOTES, "a", " ", "$", "`", '"', "\n", "#", "|", ";", "é", "\u2019"])))
def test_quoted_values_round_trip_through_the_tokenizer(value: str) -> None:
    assert tokenize_value(ps_quote(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_round_trips(value: str) -> None:
    assert tokenize_value(ps_quote(value)) == value


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1), st.sampled_from(QUOTES), st.sampled_from(QUOTES))
def test_mixed_quote_pairs_keep_the_second(prefix: str, first: str, second: str) -> None:
    literal = ps_quote(prefix)[:-1] + first + second + "'"
    assert tokenize_value(literal) == prefix + second


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1))
def test_quoted_value_in_a_command_round_trips(value: str) -> None:
    [statement] = parse_script(f"Get-Mailbox -Identity {ps_quote(value)} -ResultSize 5")
    [command] = statement.commands
    assert command.arguments == (Argument("Identity", value), Argument("ResultSize", 5))


def test_product_quoting_matches() -> None:
    from provisioner.powershell.literals import quote

    for value in ("Frank O'Connor", "a\u2018b\u2019c\u201ad\u201be", "'''", "", "$x `n"):
        assert tokenize_value(quote(value)) == value


# ---------------------------------------------------------------------------------------------- parser
def test_rendered_script_shape() -> None:
    text = """# provisioner 0.1.0: grant Full Access
# Trustees:
#   svc-codetwo@contoso.com (sync, AutoMapping False)
<# a block
   comment #>
Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

{add}
Remove-MailboxPermission -Identity 'a' -User 'b' `
    -AccessRights FullAccess,ReadPermission -Deny -Confirm:$false; Get-Mailbox -ResultSize Unlimited |
  Get-MailboxPermission -User "svc-codetwo"
Get-Mailbox 'x' -Verbose -Anr:alice
""".replace(
        "{add}",
        "Add-MailboxPermission -Identity 'frank.oconnor@contoso.com' -User 'svc-codetwo@contoso.com' "
        "-AccessRights FullAccess -InheritanceType All -AutoMapping:$false",
    )
    statements = parse_script(text, lambda cmdlet, name: name.lower() in ("deny", "verbose"))
    assert [len(s.commands) for s in statements] == [1, 1, 2, 1]
    add = statements[0].commands[0]
    assert add.name == "Add-MailboxPermission"
    assert add.arguments == (
        Argument("Identity", "frank.oconnor@contoso.com"),
        Argument("User", "svc-codetwo@contoso.com"),
        Argument("AccessRights", "FullAccess"),
        Argument("InheritanceType", "All"),
        Argument("AutoMapping", False),
    )
    remove = statements[1].commands[0]
    assert remove.arguments == (
        Argument("Identity", "a"), Argument("User", "b"), Argument("AccessRights", ["FullAccess", "ReadPermission"]),
        Argument("Deny", None), Argument("Confirm", False),
    )
    assert statements[2].commands[0].arguments == (Argument("ResultSize", "Unlimited"),)
    assert statements[2].commands[1].arguments == (Argument("User", "svc-codetwo"),)
    assert statements[3].commands[0].arguments == (Argument(None, "x"), Argument("Verbose", None),
                                                   Argument("Anr", "alice"))


def test_values() -> None:
    [statement] = parse_script("X -A $true -B $null -C 'a', \"b\" , c -D -12 -E a@b.c")
    assert statement.commands[0].arguments == (
        Argument("A", True), Argument("B", None), Argument("C", ["a", "b", "c"]), Argument("D", -12),
        Argument("E", "a@b.c"),
    )
    assert parse_script('X "say ""hi"""')[0].commands[0].arguments == (Argument(None, 'say "hi"'),)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("Get-Mailbox $name", 1, 13),
        ('Get-Mailbox "$name"', 1, 14),
        ('Get-Mailbox "a`tb"', 1, 15),
        ("# ok\nGet-Mailbox | ForEach-Object { $_ }", 2, 30),
        ("Get-Mailbox (Get-User x)", 1, 13),
        ("Get-Mailbox 'unterminated", 1, 13),
        ("$x = 'Stop'", 1, 1),
        ("Get-Mailbox > out.txt", 1, 13),
        ("@('a') | Get-Mailbox", 1, 1),
        ("Get-Mailbox -Identity", 1, 22),
    ],
)
def test_unsupported_constructs_name_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(text, lambda cmdlet, name: False)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert f"At line:{line} char:{column}" in str(caught.value)


# ---------------------------------------------------------------------------------------------- running
def test_full_language_engine_runs_a_rendered_script(engine: ExchangeEngine) -> None:
    script = (
        "# grant\n"
        "$ErrorActionPreference = 'Stop'\n"
        "Add-MailboxPermission -Identity 'Frank O''Connor' -User 'svc-codetwo@contoso.com' -AccessRights FullAccess "
        "-InheritanceType All -AutoMapping:$false\n"
        "Add-MailboxPermission -Identity 'grace.hopper@contoso.com' -User 'sync.admin' -AccessRights FullAccess\n"
        "Remove-MailboxPermission -Identity 'judy.nakamura' -User 'svc-codetwo' -AccessRights FullAccess -Deny "
        "-Confirm:$false\n"
    )
    result = run_script(engine, script)
    assert result.failure is None and result.errors == []
    assert len(result.output) == 2
    assert engine.directory.has_full_access("frank.oconnor", "svc-codetwo")
    assert engine.directory.delegates_of("frank.oconnor") == []
    assert engine.directory.delegates_of("grace.hopper") == ["CONTOSO\\sync.admin"]
    assert engine.directory.permissions_of("judy.nakamura") == engine.directory.permissions_of("judy.nakamura")[:1]


def test_script_parse_error_fails_the_pipeline(engine: ExchangeEngine) -> None:
    result = run_script(engine, "Add-MailboxPermission -Identity 'alice.wong' -User 'svc-codetwo' "
                                "-AccessRights FullAccess\nGet-Mailbox | % { $_.Name }")
    assert result.failure is not None
    assert result.failure.exception_type == "System.Management.Automation.ParseException"
    assert "At line:2" in result.failure.message
    assert not engine.directory.has_full_access("alice.wong", "svc-codetwo")  # parsed before anything runs


def test_script_with_binding_error_and_unknown_identity(engine: ExchangeEngine) -> None:
    result = run_script(engine, "Add-MailboxPermission 'ghost' -User 'svc-codetwo' -AccessRights FullAccess\n"
                                "Add-MailboxPermission 'alice.wong' -User 'svc-codetwo' -AccessRights FullAccess\n"
                                "Add-MailboxPermission 'bob.meyer' -User 'svc-codetwo' -AccessRights Everything\n"
                                "Add-MailboxPermission 'carol.diaz' -User 'svc-codetwo' -AccessRights FullAccess\n")
    assert [e.reason for e in result.errors] == ["ManagementObjectNotFoundException"]
    assert result.failure is not None and result.failure.fq_error_id.startswith("CannotConvertArgumentNoMessage")
    assert engine.directory.has_full_access("alice.wong", "svc-codetwo")
    assert not engine.directory.has_full_access("carol.diaz", "svc-codetwo")


def test_lone_literal_statement_is_accepted(engine: ExchangeEngine) -> None:
    result = run_script(engine, "$null")
    assert result.failure is None and result.errors == [] and result.output == []


def test_no_language_engine_still_refuses(engine: ExchangeEngine) -> None:
    strict = ExchangeEngine.from_seed()
    result = run_script(strict, "Get-Mailbox")
    assert result.failure is not None and result.failure.fq_error_id == "ScriptsNotAllowed"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([*QUOTES, '"', "a", "-", ":", " ", "\n", "\r", "`", "$", "|", ";", ",", "#", "<",
                                  ">", "@", "=", "(", "{", "1", "true", "Get-Mailbox", "\u2013"])).map("".join))
def test_any_input_parses_or_raises_script_error(text: str) -> None:
    try:
        statements = parse_script(text, lambda cmdlet, name: None)
    except ScriptError as error:
        assert error.line >= 1 and error.column >= 1
    else:
        assert all(statement.commands for statement in statements)


# ------------------------------------------------------------------------------- string concatenation
def test_concatenations_of_literals_and_char_codes_are_one_value() -> None:
    assert tokenize_value("('a' + [char]0x202E + 'b')") == "a\u202eb"
    assert tokenize_value("('' + [CHAR]0xd83d + [char]0xDE00 + 'O''x')") == "\U0001f600O'x"
    assert tokenize_value("('' + [char]0xD800)") == "\ud800"
    statement = parse_script("X -Identity ('a' + [char]0x200C) -User 'u',('v' + [char]0x41)\n")[0]
    assert statement.commands[0].arguments == (Argument("Identity", "a\u200c"), Argument("User", ["u", "vA"]))


@pytest.mark.parametrize(
    "text", ["([char]0x41 + 'a')", "('a' + 1)", "('a'", "('a' 'b')", "('a' + [char]0x10000)", "('a' + [char]0x41L)",
             "('a' + $x)", "('a' + (Get-User))"],
)
def test_other_expressions_are_refused(text: str) -> None:
    with pytest.raises(ScriptError):
        parse_script(f"X {text}\n")
