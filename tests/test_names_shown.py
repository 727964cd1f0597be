"""Names shown as they are (issue 11, part 4): format characters are accepted, warned about, sent unchanged,
and written into reviewed scripts as ``[char]`` codes that evaluate to exactly the name.

Proven with the independent readings of ``tests/psparse.py`` (its tokenizer and tree-sitter-powershell) and
the lab's own script parser, and end to end against the lab, whose directory holds mailboxes with exactly these
names and, as decoys, the same names without their format characters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from provisioner_lab.api import PipelineResult, Statement
from provisioner_lab.exchange.engine import EngineOptions, ExchangeEngine
from provisioner_lab.exchange.script import tokenize_value
from provisioner_lab.run import Lab, running_lab

from provisioner.domain import planner
from provisioner.domain.model import Action, Identity, ItemState, Trustee, identity_problem
from provisioner.errors import InputError
from provisioner.inputs.config import load_config
from provisioner.inputs.desired import TrusteeOptions, desired
from provisioner.inputs.identity import Source, parse_identity
from provisioner.inputs.users import collect_targets, read_users_file
from provisioner.powershell import literals as pwsh
from provisioner.powershell import steps
from provisioner.powershell.steps import StepOptions
from provisioner.transport.runner import wire_value
from tests import psparse
from tests.hypothesis_profiles import proof_settings
from tests.test_script_proof import expected_command, header_values, render_plan

ROOT = Path(__file__).parent.parent
SERVICE = "svc-codetwo@contoso.com"

ZWNJ, ZWJ, RLO = "\u200c", "\u200d", "\u202e"
# Alireza in Persian spelling (ZWNJ between the two parts), Kshitij in Devanagari with a ZWJ after the virama,
# and a name with a right-to-left override. Each has a decoy mailbox: the same name without the character.
NAMES = {
    "\u0639\u0644\u06cc" + ZWNJ + "\u0631\u0636\u0627": "alireza.ahmadi",
    "\u0915\u094d" + ZWJ + "\u0937\u093f\u0924\u093f\u091c": "kshitij.rao",
    "rtl " + RLO + "evil.txt": "rtl.evil",
}
TRUSTEE = "\u0647\u0645\u06af\u0627\u0645" + ZWNJ + "\u0633\u0627\u0632"  # "synchroniser", a trustee (a user)
DECOYS = {name.replace(ZWNJ, "").replace(ZWJ, "").replace(RLO, ""): f"{alias}.decoy" for name, alias in NAMES.items()}

# ------------------------------------------------------------------------------------------ alphabets

LETTERS = [
    *"abcXYZ019 .@-_'", "\u00e9", "\u0639", "\u0644", "\u06cc", "\u0631", "\u0636", "\u05d0", "\u4e2d",
    "\u0915", "\u094d", "\u0651", "\U0001f600", "\ue000", "\u0436",
]
"""Letters of several scripts (Persian/Arabic, Hebrew, CJK, Devanagari, Cyrillic), digits, ASCII punctuation
with the apostrophe, an emoji and a private-use character; also two combining marks (U+094D, U+0651), which
stand on the letter before them or are shown as codes when there is none."""

FORMAT = [
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2061", "\u2062", "\u2063", "\u2064", "\ufeff",
    "\u00ad", "\u061c", "\u180e", "\U000e0001", "\U000e0041", "\U0001d173",
]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
SPACES = ["\u00a0", *(chr(code) for code in range(0x2000, 0x200B)), "\u202f", "\u205f", "\u3000"]
QUOTES = ["\u2018", "\u2019", "\u201a", "\u201b"]
OTHER = ["\u0301", "\u034f", "\ufe0f", "\U000e0100", "\u3164", "\u115f", "\uffa0", "\u2800", "\u17b4"]
SUSPICIOUS = [*FORMAT, *BIDI, *SPACES, *QUOTES, *OTHER]

mixed_text = st.text(st.sampled_from([*LETTERS, *SUSPICIOUS]), max_size=24)
plain_text = st.text(st.sampled_from([char for char in LETTERS if unicodedata.category(char)[0] != "M"]), max_size=24)


def _evaluations(source: str) -> tuple[list[tuple[str, str]], tuple[str, ...], Any]:
    """What each independent reader makes of ``source`` as one command argument."""
    line = f"Write-Output {source}\n"
    mine = [(token.kind, token.value) for token in psparse.tokenize(source)]
    theirs = psparse.ts_script(line)
    assert theirs.commands == psparse.commands(line).commands
    return mine, theirs.values, tokenize_value(source)


# ------------------------------------------------------------------------------------ property: quoting


@proof_settings()
@given(value=mixed_text)
@example(value="rtl " + RLO + "evil")
@example(value=RLO + "x" + ZWNJ)
@example(value="\u0301\u0301a")
@example(value="'" + "\u2019" * 3 + "'")
@example(value="\U000e0041\U000e0042")
def test_the_written_expression_evaluates_to_the_same_string_and_hides_nothing(value: str) -> None:
    source = pwsh.quote(value)
    assert psparse.hidden_characters(source) == []
    mine, theirs, lab = _evaluations(source)
    assert mine == [("string", value)]  # psparse's tokenizer: one string argument, this value
    assert theirs == (value,)  # tree-sitter's tree, evaluated
    assert lab == value  # the lab's script parser (script mode)
    if psparse.hidden_characters(value):
        assert source.startswith("(") and "[char]0x" in source
    else:  # nothing to hide: one plain literal, as before
        assert source == "'" + value.replace("'", "''") + "'"


@proof_settings(0.5)
@given(value=plain_text)
def test_plain_names_in_any_script_stay_one_plain_literal(value: str) -> None:
    assert pwsh.quote(value) == "'" + value.replace("'", "''") + "'"


def test_the_rule_for_codes() -> None:
    assert pwsh.quote("rtl " + RLO + "evil") == "('rtl ' + [char]0x202E + 'evil')"
    assert pwsh.quote(RLO + "x") == "('' + [char]0x202E + 'x')"  # a string first, so + concatenates
    assert pwsh.quote("a\u00a0b") == "('a' + [char]0x00A0 + 'b')"
    assert pwsh.quote("O\u2019Brien") == "('O' + [char]0x2019 + 'Brien')"
    assert pwsh.quote("O'Brien") == "'O''Brien'"
    assert pwsh.quote("\U000e0041") == "('' + [char]0xDB40 + [char]0xDC41)"  # UTF-16 code units
    assert pwsh.quote("e\u0301") == "'e\u0301'"  # a mark on a letter stays
    assert pwsh.quote("\u0301e") == "('' + [char]0x0301 + 'e')"  # a mark with nothing to stand on
    assert pwsh.quote("a \u0301") == "('a ' + [char]0x0301)"
    assert pwsh.quote("x\ufe0f") == "('x' + [char]0xFE0F)"  # variation selectors are drawn as nothing
    for name in ("\u0639\u0644\u06cc\u0631\u0636\u0627", "\u5c71\u7530", "\u05e9\u05dc\u05d5\u05dd", "J\u00f6rg"):
        assert pwsh.quote(name) == f"'{name}'"


# ---------------------------------------------------------------------------- property: whole scripts

identity_text = st.text(st.sampled_from([*LETTERS, *SUSPICIOUS]), min_size=1, max_size=16).filter(
    lambda text: not psparse.is_whitespace(text[0]) and not psparse.is_whitespace(text[-1])
    and any(unicodedata.category(char)[0] in "LN" for char in text) and identity_problem(text) is None
).map(Identity)  # identity_problem: a letter that is itself invisible (a Hangul filler) is no visible character


@proof_settings(0.5)
@given(
    mailboxes=st.lists(identity_text, min_size=1, max_size=3, unique=True),
    trustee=identity_text,
    domain_controller=st.one_of(st.none(), identity_text.map(str)),
)
def test_whole_scripts_with_such_names_are_exactly_the_planned_commands(
    mailboxes: list[Identity], trustee: Identity, domain_controller: str | None
) -> None:
    trustees = [Trustee(trustee)]
    plan = planner.plan(Action.GRANT, mailboxes, trustees, None)
    script = render_plan(plan, domain_controller, "srv" + RLO)
    expected = [expected_command(ItemState.TO_ADD, m.value, trustees[0], domain_controller) for m in mailboxes]
    # prove_script includes: no character a reviewer cannot see, anywhere (comments too)
    assert psparse.prove_script(script, expected) == header_values("srv" + RLO, domain_controller, plan)


def test_a_comment_cannot_carry_a_bidi_override() -> None:
    plan = planner.plan(Action.GRANT, [Identity("a" + RLO + "b")], [Trustee(Identity("svc" + "\u2066"))], None)
    script = render_plan(plan, None, "srv")
    assert RLO not in script and "\u2066" not in script
    assert "#   ('svc' + [char]0x2066) ('trustee', AutoMapping $false)\n" in script


# --------------------------------------------------------------------------------------------- inputs


def test_format_characters_are_accepted_with_a_warning_naming_file_line_and_character(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    names = list(NAMES)
    path.write_text("# names\n" + "\n".join(names) + "\nbob\n", encoding="utf-8")
    result = read_users_file(path)
    assert [target.identity.value for target in result.targets] == [*names, "bob"]  # exactly as written
    assert [str(warning) for warning in result.warnings] == [
        f"{path}:2: {names[0]!r} contains an invisible character, kept as written:"
        " 'U+200C ZERO WIDTH NON-JOINER' at position 4",
        f"{path}:3: {names[1]!r} contains an invisible character, kept as written:"
        " 'U+200D ZERO WIDTH JOINER' at position 3",
        f"{path}:4: 'rtl \\u202eevil.txt' contains an invisible character, kept as written:"
        " 'U+202E RIGHT-TO-LEFT OVERRIDE' (bidirectional control: text around it may display in another order)"
        " at position 5",
    ]
    assert all(RLO not in str(warning) and ZWNJ not in str(warning) for warning in result.warnings)


def test_csv_values_and_several_characters_in_one_name(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    value = "a" + ZWJ + "b" + "\u2067" + "c" + "\ufeff"
    path.write_text(f"Name,Identity\nX,\"{value}\"\n", encoding="utf-8")
    result = read_users_file(path)
    assert [target.identity.value for target in result.targets] == [value]
    (warning,) = result.warnings
    assert str(warning) == (
        f"{path}:2: 'a\\u200db\\u2067c\\ufeff' contains 3 invisible characters, kept as written:"
        " 'U+200D ZERO WIDTH JOINER' at position 2, 'U+2067 RIGHT-TO-LEFT ISOLATE' (bidirectional control: text"
        " around it may display in another order) at position 4, 'U+FEFF ZERO WIDTH NO-BREAK SPACE' at position 6"
    )


def test_a_bom_at_the_start_of_the_file_is_an_encoding_marker_one_inside_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_bytes(b"\xef\xbb\xbfalice\n\xef\xbb\xbfbob\n")
    result = read_users_file(path)
    assert [target.identity.value for target in result.targets] == ["alice", "\ufeffbob"]
    assert [str(warning.source) for warning in result.warnings] == [f"{path}:2"]
    assert "U+FEFF ZERO WIDTH NO-BREAK SPACE" in result.warnings[0].message


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("bob\x01x", "control character U+0001 at position 4"),
        ("bob\u2028x", "line break (U+2028) at position 4"),
        ("bob\x00x", "NUL character at position 4"),
        ("bob\x85x", "line break (U+0085) at position 4"),
        ("bob\ufffex", "noncharacter U+FFFE at position 4"),
        (ZWNJ + RLO, "identity has no visible character (only whitespace, format or other invisible characters)"),
    ],
    ids=repr,
)
def test_controls_are_still_refused_at_their_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "users.txt"
    path.write_text(f"a{ZWNJ}b\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_users_file(path)
    assert str(caught.value) == f"{path}:2: {reason}"


def test_mailbox_option_and_trustees_warn_the_same_way(tmp_path: Path) -> None:
    result = collect_targets(["x" + ZWJ + "y"], [])
    assert [str(warning.source) for warning in result.warnings] == ["--mailbox"]
    assert "'U+200D ZERO WIDTH JOINER' at position 2" in result.warnings[0].message
    config = tmp_path / "provisioner.toml"
    config.write_text('[trustees]\nadmin_user = "sync\\u200Cadmin"\nservice_account = "svc"\n', encoding="utf-8")
    wanted = desired(load_config(config), TrusteeOptions(service_account="svc" + RLO, extra=["aud" + ZWJ]), ["m"], [])
    expected = ["sync" + ZWNJ + "admin", "svc" + RLO, "aud" + ZWJ]
    assert [trustee.identity.value for trustee in wanted.trustees] == expected
    assert [note.split(": ", 1)[0] for note in wanted.notes] == [f"config:{config}", "--service-account", "--trustee"]
    assert "U+200C ZERO WIDTH NON-JOINER" in wanted.notes[0] and "U+202E RIGHT-TO-LEFT OVERRIDE" in wanted.notes[1]


def test_nothing_normalises_the_name_and_casefold_is_only_the_key() -> None:
    nfd, nfc = "Jo\u0308rg" + ZWNJ, "J\u00f6rg" + ZWNJ
    first, _ = parse_identity(nfd, Source("x", 1))
    second, _ = parse_identity(nfc, Source("x", 2))
    assert (first.value, second.value) == (nfd, nfc) and first != second
    upper, _ = parse_identity("ALI" + ZWNJ + "REZA", Source("x", 3))
    assert upper.value == "ALI" + ZWNJ + "REZA" and upper == Identity("ali" + ZWNJ + "reza")
    assert upper != Identity("alireza")


def test_command_mode_parameters_carry_the_name_unchanged() -> None:
    """What CommandRunner hands to pypsrp's add_parameter: the very string, never a rendering of it."""
    for name in NAMES:
        item = planner.plan(Action.GRANT, [Identity(name)], [Trustee(Identity("svc" + RLO))], None).items[0]
        step = steps.grant(item, StepOptions(domain_controller="dc" + ZWJ))
        sent = {str(parameter.name): wire_value(parameter.value) for parameter in step.parameters}
        assert sent["Identity"] == name and sent["User"] == "svc" + RLO and sent["DomainController"] == "dc" + ZWJ


# ---------------------------------------------------------------------------------------- end to end


class RecordingEngine(ExchangeEngine):
    """The lab's engine, keeping every string it received (arguments, pipeline input, script text)."""

    received: list[str]

    def run(self, statements: list[Statement], pipeline_input: list[Any], *, user: str | None) -> PipelineResult:
        found = getattr(self, "received", [])
        for statement in statements:
            for command in statement.commands:
                found += _strings(command.name)
                found += [text for argument in command.arguments for text in _strings(argument.value)]
        found += _strings(pipeline_input)
        self.received = found
        return super().run(statements, pipeline_input, user=user)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


def _engine(full_language: bool = False) -> RecordingEngine:
    engine = RecordingEngine.from_seed(options=EngineOptions(
        language_mode="FullLanguage" if full_language else "NoLanguage"))
    for names in (NAMES, DECOYS):
        for display_name, alias in names.items():
            engine.directory.add_mailbox(alias, display_name, "contoso.com/Staff")
    engine.directory.add_user("sync.fa", TRUSTEE)
    engine.directory.add_user("sync.fa.decoy", TRUSTEE.replace(ZWNJ, ""))
    return engine


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab(engine=_engine()) as running:
        yield running


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")], capture_output=True,
                          text=True, encoding="utf-8", cwd=ROOT, env=env, timeout=120, stdin=subprocess.DEVNULL)


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


def _pairs() -> list[tuple[str, str]]:
    """Every (mailbox, trustee) of the names and the decoys, with both trustees and the trustee's decoy."""
    return [(m, t) for m in [*NAMES, *DECOYS] for t in (SERVICE, TRUSTEE, TRUSTEE.replace(ZWNJ, ""))]


def granted(lab: Lab) -> dict[tuple[str, str], bool]:
    with lab.engine.lock:
        return {(m, t): lab.engine.directory.has_full_access(m, t) for m, t in _pairs()}


def exactly_the_names() -> dict[tuple[str, str], bool]:
    """Full Access on exactly the named mailboxes for exactly the two trustees; no decoy touched."""
    return {(m, t): m in NAMES and t in TRUSTEES for m, t in _pairs()}


TRUSTEE_ARGS = ("--service-account", SERVICE, "--trustee", TRUSTEE)
TRUSTEES = (SERVICE, TRUSTEE)


def test_dry_run_grant_and_audit_against_the_lab_use_exactly_these_names(lab: Lab, tmp_path: Path) -> None:
    users = users_file(tmp_path)
    script_path = tmp_path / "review.ps1"
    dry = cli(lab, "grant", "--dry-run", "--script", str(script_path), "--users-file", str(users), *TRUSTEE_ARGS)
    assert dry.returncode == 0, dry.stderr
    for where, char in ((f"{users}:1", "U+200C ZERO WIDTH NON-JOINER"), (f"{users}:2", "U+200D ZERO WIDTH JOINER"),
                        (f"{users}:3", "U+202E RIGHT-TO-LEFT OVERRIDE"), ("--trustee", "U+200C ZERO WIDTH NON-JOINER")):
        assert any(line.startswith(f"warning: {where}: ") and f"'{char}'" in line for line in dry.stderr.splitlines())
    script = script_path.read_text(encoding="utf-8-sig")
    assert psparse.hidden_characters(script) == []
    for code in ("[char]0x200C", "[char]0x200D", "[char]0x202E"):
        assert code in script
    trustees = [Trustee(Identity(SERVICE), role="service-account"), Trustee(Identity(TRUSTEE))]
    expected = [expected_command(ItemState.TO_ADD, name, trustee, None) for name in NAMES for trustee in trustees]
    psparse.prove_script(script, expected)
    assert lab.engine.counters.writes == 0 and not any(granted(lab).values())

    report_path = tmp_path / "grant.json"
    grant = cli(lab, "grant", "--users-file", str(users), *TRUSTEE_ARGS, "--report", str(report_path))
    assert grant.returncode == 0, grant.stderr
    items = json.loads(report_path.read_text(encoding="utf-8"))["items"]
    assert {(i["mailbox"], i["trustee"], i["result"]) for i in items} == {
        (mailbox, trustee, "granted") for mailbox in NAMES for trustee in TRUSTEES
    }
    assert granted(lab) == exactly_the_names()
    assert isinstance(lab.engine, RecordingEngine)
    received = set(lab.engine.received)  # the server got exactly the identities, and never a stripped one
    assert {*NAMES, TRUSTEE} <= received and not {*DECOYS, TRUSTEE.replace(ZWNJ, "")} & received

    audit = cli(lab, "audit", "--users-file", str(users), *TRUSTEE_ARGS, "--format", "json")
    assert audit.returncode == 0, audit.stderr
    results = {(i["mailbox"], i["trustee"]): i["result"] for i in json.loads(audit.stdout)["items"]}
    assert results == {(mailbox, trustee): "present" for mailbox in NAMES for trustee in TRUSTEES}


def test_script_mode_sends_the_codes_and_the_lab_evaluates_them_to_exactly_these_names(tmp_path: Path) -> None:
    with running_lab(engine=_engine(full_language=True), full_language=True) as lab:
        config = tmp_path / "script.toml"
        config.write_text(lab.config_toml() + 'mode = "script"\n', encoding="utf-8")
        result = cli(lab, "grant", "--config", str(config), "--users-file", str(users_file(tmp_path)), *TRUSTEE_ARGS)
        assert result.returncode == 0, result.stderr
        assert granted(lab) == exactly_the_names()
        assert isinstance(lab.engine, RecordingEngine)
        # each name is sent once, to find its one mailbox (Get-Mailbox -Identity); reads and writes then go to the
        # mailbox's GUID, which no invisible character can alter
        lookups = [text for text in lab.engine.received if text.lstrip().startswith("Get-Mailbox ")]
        assert len(lookups) == len(NAMES)
        assert all(psparse.hidden_characters(text) == [] and "[char]0x" in text for text in lookups)
        writes = [text for text in lab.engine.received if "Add-MailboxPermission" in text]
        assert len(writes) == len(NAMES) * len(TRUSTEES)
        assert all(psparse.hidden_characters(text) == [] for text in writes)


@given(st.text(max_size=40))
@example("rtl \u202eevil")
@example("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645")
def test_terminal_lines_show_every_hidden_character_as_a_code(text: str) -> None:
    from provisioner.domain.text import escaped as visible

    shown = visible(text)
    assert shown.isprintable()  # nothing that could reorder, hide or end the line
    from provisioner.domain.text import hidden_characters

    if text.isprintable() and not hidden_characters(text):  # e.g. a lone combining mark (U+1DA00) is shown as a code
        assert shown == text  # letters of any script, as written
    if "\\" not in text:  # and the codes read back to exactly the text
        codes = re.compile(r"\\u([0-9a-f]{4})|\\U([0-9a-f]{8})")
        assert codes.sub(lambda m: chr(int(m[1] or m[2], 16)), shown) == text


@pytest.mark.parametrize("name", ["john\u00a0smith", "alice\u3164", "bob\ufe0f", "x\u2800y"])
def test_every_hidden_character_is_visible_in_reports_and_on_the_terminal(name: str) -> None:
    from provisioner.domain.text import escaped as visible
    from provisioner.domain.text import marked

    assert "<U+" in marked(name)  # the HTML report and the rich table
    assert "\\u" in visible(name)  # problem lines and the drift diff


@pytest.mark.parametrize("name", ["\u3164", "\u115f\u1160", "\ufe0f", "\u2800", "\u0301"])
def test_a_name_of_invisible_characters_only_is_refused(name: str) -> None:
    assert identity_problem(name) is not None


def test_an_invisible_filler_beside_letters_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("alice\u3164\n", encoding="utf-8")
    warnings = [warning.message for warning in read_users_file(path).warnings]
    assert any("U+3164" in message and "invisible character" in message for message in warnings), warnings
