"""Two independent readings of PowerShell source, for the tests that prove what a rendered script does.

1. ``tokenize``/``commands``: a small tokenizer that follows PowerShell's own tokenizer rules for the tiny
   subset of the language the scripts use (line comments, single-quoted verbatim strings, ``-Name`` and
   ``-Name:`` parameters, ``$name`` variables, bare words). Anything outside that subset is an error, never a
   guess, so "tokenises cleanly" means "is in the subset, where this reading and PowerShell's agree".
2. ``ts_script``: the tree-sitter-powershell grammar, a third-party parser, reduced to the same shape.

Neither imports ``provisioner``: the code under test must not be its own oracle.

PowerShell rules followed here (PowerShell/PowerShell, ``src/System.Management.Automation/engine/parser``):

* ``CharExtensions.IsSingleQuote``: U+0027, U+2018, U+2019, U+201A and U+201B are all single quotes.
* ``Tokenizer.ScanStringLiteral``: inside a single-quoted string, a quote character followed by another quote
  character is one literal character (the *second* of the pair is kept); a quote character not followed by
  one ends the string. Nothing else is special (no ``$`` expansion, no backtick escapes).
  ``CodeGeneration.EscapeSingleQuotedStringContent`` is the inverse: it doubles every quote character.
* ``CharExtensions.IsDoubleQuote``: U+0022, U+201C, U+201D and U+201E; ``IsDash``: ``-`` U+2013 U+2014 U+2015.
* ``Tokenizer.ScanToEndOfCommentLine``: a ``#`` comment ends at ``\\r`` or ``\\n`` only (not at U+0085,
  U+2028 or U+2029, which are whitespace). A comment that starts ``#requires`` is a requirement, not a
  comment; one whose text (lower-cased, whitespace removed, newline kept) is within Levenshtein distance 10
  of ``sig#beginsignatureblock\\n`` marks the start of a signature block, and every statement after it is
  then a parse error (``TokenAfterEndOfValidScriptText``).

* String concatenation: in expression mode (inside ``( )``), ``+`` with a string on the left converts the
  right operand to a string and appends it; ``[char]0x202E`` casts the hexadecimal integer literal to one
  UTF-16 code unit (a literal with a type suffix or multiplier, ``0x41L`` or ``0x41kb``, is another number:
  refused here); ``+`` is left-associative and a cast binds tighter. So ``('a' + [char]0x202E + 'b')``, a
  single-quoted string first, is the string ``a``, U+202E, ``b`` (Windows PowerShell 2.0 and later). As a
  command argument, a parenthesised expression is one argument. Only this form is read here (``string``
  tokens are single-quoted strings or such concatenations).

tree-sitter-powershell (0.26) does *not* treat U+2018..U+201B as quotes (observed: ``'a’ b'`` is one string
for it, while PowerShell ends the string at ``’``; ``’a b’`` is two bare words for it, one string for
PowerShell). So string *values* are always decoded here by PowerShell's rule, never by the grammar.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import tree_sitter
import tree_sitter_powershell

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
TYPOGRAPHIC_SINGLE_QUOTES = SINGLE_QUOTES[1:]
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
DASHES = "-\u2013\u2014\u2015"
NEWLINES = "\r\n"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters a rendered script must not hold anywhere but as its own line ends: C0 and C1 controls (NEL
included) and the Unicode line and paragraph separators, which other tools show as line breaks."""

_Q = re.escape(SINGLE_QUOTES)
VERBATIM_STRING = re.compile(f"[{_Q}](?:[^{_Q}]|[{_Q}][{_Q}])*[{_Q}](?![{_Q}])", re.DOTALL)
"""A whole single-quoted string by PowerShell's rule. The closing quote is one not followed by another, so a
quote inside is always half of a pair: the match is unique (no backtracking into a pair)."""

CHAR_CAST = re.compile(r"\[char\]0x([0-9A-Fa-f]{1,4})(?![0-9A-Za-z.])", re.IGNORECASE)
"""``[char]`` applied to a hexadecimal integer literal of at most four digits (one UTF-16 code unit)."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_BAREWORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z][A-Za-z0-9]*)*")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class PSSyntaxError(ValueError):
    """Source outside the subset read here (or not valid PowerShell at all)."""


# ------------------------------------------------------------------------------------------- characters


def is_whitespace(char: str) -> bool:
    """``CharExtensions.IsWhitespace``: space, tab, VT, FF, NBSP, NEL, and any Unicode separator (Zs/Zl/Zp)."""
    return char in " \t\v\f\u00a0\u0085" or unicodedata.category(char) in ("Zs", "Zl", "Zp")


def decode_verbatim(literal: str) -> str:
    """The value of a whole single-quoted string, by PowerShell's rule; PSSyntaxError if it is not one."""
    if not VERBATIM_STRING.fullmatch(literal):
        raise PSSyntaxError(f"not one single-quoted string: {literal!r}")
    body = literal[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        if body[index] in SINGLE_QUOTES:
            index += 1  # the escape: the second quote character of the pair is the one kept
        out.append(body[index])
        index += 1
    return "".join(out)


def _utf16_join(units: list[str]) -> str:
    """Characters as .NET would hold them once joined: UTF-16 surrogate pairs become one code point."""
    return "".join(units).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _skip_whitespace(source: str, index: int) -> int:
    while index < len(source) and is_whitespace(source[index]):
        index += 1
    return index


def read_concatenation(source: str, index: int) -> tuple[str, int]:
    """``(value, end)`` of the concatenation ``( 'literal' + [char]0xHHHH + ... )`` starting at ``index``.

    The first operand must be a single-quoted string (so every ``+`` concatenates) and there must be at least
    two operands (as tree-sitter's reduction requires too); PSSyntaxError otherwise.
    """
    if not source.startswith("(", index):
        raise PSSyntaxError(f"no '(' at {index}")
    position = _skip_whitespace(source, index + 1)
    units: list[str] = []
    expect_string = True
    while True:
        match = VERBATIM_STRING.match(source, position)
        if match is not None:
            units.append(decode_verbatim(match.group()))
        elif expect_string:
            raise PSSyntaxError(f"the expression at {index} does not start with a single-quoted string")
        else:
            match = CHAR_CAST.match(source, position)
            if match is None:
                raise PSSyntaxError(f"operand at {position} is neither a string nor [char]0xHHHH")
            units.append(chr(int(match.group(1), 16)))
        expect_string = False
        position = _skip_whitespace(source, match.end())
        if source.startswith(")", position) and len(units) > 1:
            return _utf16_join(units), position + 1
        if not source.startswith("+", position):
            raise PSSyntaxError(f"expected '+' or ')' at {position} in the expression at {index}")
        position = _skip_whitespace(source, position + 1)


def string_value(text: str) -> str:
    """The value of a ``string`` token: a single-quoted string or a whole concatenation expression."""
    if text.startswith("("):
        value, end = read_concatenation(text, 0)
        if end != len(text):
            raise PSSyntaxError(f"text after the expression: {text!r}")
        return value
    return decode_verbatim(text)


def decode_verbatim_ascii(literal: str) -> str:
    """The value tree-sitter-powershell's reading implies: only ``''`` is an escape. Differs from PowerShell
    for typographic quotes; used to show the divergence, never to decide what a script does."""
    return literal[1:-1].replace("''", "'")


def verbatim_literals(text: str) -> list[str]:
    """Values of the single-quoted strings and concatenation expressions in ``text`` (a comment body), left to
    right. A ``(`` that does not start a whole concatenation is ordinary comment text."""
    values = []
    index = 0
    while index < len(text):
        if text[index] == "(":
            try:
                value, end = read_concatenation(text, index)
            except PSSyntaxError:
                index += 1
                continue
            values.append(value)
            index = end
        elif text[index] in SINGLE_QUOTES:
            match = VERBATIM_STRING.match(text, index)
            if match is None:
                raise PSSyntaxError(f"unterminated string at {index} in {text!r}")
            values.append(decode_verbatim(match.group()))
            index = match.end()
        else:
            index += 1
    return values


# ------------------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Token:
    kind: str  # newline, comment, string, parameter, variable, bareword
    text: str  # the source text of the token
    start: int

    @property
    def value(self) -> str:
        """string: the decoded value; parameter: the name (no dash, no colon); variable: the name."""
        if self.kind == "string":
            return string_value(self.text)
        if self.kind == "parameter":
            return self.text[1:].rstrip(":")
        if self.kind == "variable":
            return self.text[1:]
        return self.text


def _token_end_ok(source: str, index: int) -> bool:
    return index >= len(source) or source[index] in NEWLINES or is_whitespace(source[index])


def tokenize(source: str) -> list[Token]:
    """PowerShell tokens of ``source``, for the subset described in the module docstring."""
    tokens: list[Token] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char in NEWLINES:
            end = index + 2 if source.startswith("\r\n", index) else index + 1
            tokens.append(Token("newline", source[index:end], index))
            index = end
            continue
        if is_whitespace(char):
            index += 1
            continue
        if char == "#":
            end = index
            while end < len(source) and source[end] not in NEWLINES:
                end += 1
            tokens.append(Token("comment", source[index:end], index))
            index = end
            continue
        if char in SINGLE_QUOTES:
            match = VERBATIM_STRING.match(source, index)
            if match is None:
                raise PSSyntaxError(f"unterminated single-quoted string at {index}")
            end = match.end()
            if not _token_end_ok(source, end):
                raise PSSyntaxError(f"string at {index} is glued to {source[end]!r}")
            tokens.append(Token("string", match.group(), index))
            index = end
            continue
        if char == "(":
            _, end = read_concatenation(source, index)
            if not _token_end_ok(source, end):
                raise PSSyntaxError(f"expression at {index} is glued to {source[end]!r}")
            tokens.append(Token("string", source[index:end], index))
            index = end
            continue
        if char in DASHES:
            match = _NAME.match(source, index + 1)
            if match is None:
                raise PSSyntaxError(f"{char!r} at {index} does not start a parameter")
            end = match.end()
            if end < len(source) and source[end] == ":":
                end += 1
                if _token_end_ok(source, end):
                    raise PSSyntaxError(f"colon-bound parameter at {index} has no argument")
            elif not _token_end_ok(source, end):
                raise PSSyntaxError(f"parameter at {index} is glued to {source[end]!r}")
            tokens.append(Token("parameter", source[index:end], index))
            index = end
            continue
        if char == "$":
            match = _VARIABLE.match(source, index)
            if match is None or not _token_end_ok(source, match.end()):
                raise PSSyntaxError(f"'$' at {index} is not a simple variable")
            tokens.append(Token("variable", match.group(), index))
            index = match.end()
            continue
        match = _BAREWORD.match(source, index)
        if match is None or not _token_end_ok(source, match.end()):
            raise PSSyntaxError(f"{char!r} at {index} is outside the subset (expandable string, operator, ...)")
        tokens.append(Token("bareword", match.group(), index))
        index = match.end()
    return tokens


Element = tuple[str, str]
"""One command element: ("parameter", "-Name"), ("parameter", "-Name:"), ("string", raw source of the string
or of the whole concatenation expression),
("variable", "$name") or ("bareword", "Word")."""


@dataclass(frozen=True)
class Command:
    name: str
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class Script:
    commands: tuple[Command, ...]
    comments: tuple[str, ...]
    values: tuple[str, ...] = ()  # tree-sitter's reading: the value of each string argument, in order


ENCODING_GUARD = ("if ('Ω'.Length -ne 1) { throw 'This script was not read as UTF-8: save it as UTF-8 with BOM and "
                  "run it again.' }")
"""The one statement a rendered script has besides its commands: it stops the script when Windows PowerShell read
the file in the ANSI code page. Stated here on its own (not imported), so a changed guard fails the proofs."""


def without_guard(source: str) -> str:
    """``source`` with the encoding guard's line left blank; a script has it at most once, as a whole line."""
    lines = source.split("\n")
    at = [index for index, line in enumerate(lines) if ENCODING_GUARD in line]
    if not at:
        return source
    assert len(at) == 1 and lines[at[0]] == ENCODING_GUARD, "the encoding guard, but not once as a whole line"
    lines[at[0]] = ""
    return "\n".join(lines)


def command_lines(source: str) -> list[str]:
    """The lines of a rendered script that are code: neither blank, nor a comment, nor the encoding guard."""
    return [line for line in source.split("\n") if line and not line.startswith("#") and line != ENCODING_GUARD]


def commands(source: str) -> Script:
    """The statements of ``source`` (one command per line, as the scripts write them) and its comments; the
    encoding guard (:data:`ENCODING_GUARD`) is not a statement of the plan."""
    source = without_guard(source)
    found: list[Command] = []
    comments: list[str] = []
    line: list[Token] = []

    def flush() -> None:
        if not line:
            return
        first, *rest = line
        if first.kind != "bareword":
            raise PSSyntaxError(f"a statement starts with a {first.kind}: {first.text!r}")
        found.append(Command(first.text, tuple((token.kind, token.text) for token in rest)))
        line.clear()

    for token in tokenize(source):
        if token.kind == "newline":
            flush()
        elif token.kind == "comment":
            if line:
                raise PSSyntaxError(f"comment after code on one line: {token.text!r}")
            comments.append(token.text)
        else:
            line.append(token)
    flush()
    return Script(tuple(found), tuple(comments))


# ----------------------------------------------------------------------------------- comment semantics


def is_requires(comment: str) -> bool:
    """``#requires`` (any case, nothing between ``#`` and ``requires``): PowerShell acts on it."""
    head = comment[1:9]
    return head.isascii() and head.lower() == "requires"


def _levenshtein(first: str, second: str) -> int:
    previous = list(range(len(second) + 1))
    for row, a in enumerate(first, start=1):
        current = [row]
        for column, b in enumerate(second, start=1):
            current.append(previous[column - 1] if a == b else 1 + min(previous[column], current[-1],
                                                                        previous[column - 1]))
        previous = current
    return previous[-1]


def _utf16(text: str) -> list[str]:
    """``text`` as .NET sees it: one element per UTF-16 code unit (an astral character is a surrogate pair)."""
    data = text.encode("utf-16-le", "surrogatepass")
    return [chr(int.from_bytes(data[index : index + 2], "little")) for index in range(0, len(data), 2)]


def looks_like_signature(comment: str, *, line_end: str = "\n") -> bool:
    """Whether PowerShell would take this line comment for the start of a signature block."""
    kept = [char for char in _utf16(comment[1:]) if not is_whitespace(char)]
    kept.append(line_end)
    if not 14 <= len(kept) <= 34:
        return False
    lowered = "".join(char.lower() if len(char.lower()) == 1 else char for char in kept)
    return _levenshtein(lowered, "sig#beginsignatureblock\n") < 10


def _try_concatenation(text: str, index: int) -> tuple[str, int] | None:
    try:
        return read_concatenation(text, index)
    except PSSyntaxError:
        return None


def signature_distance_bound(comment: str, free: Callable[[str], bool]) -> int:
    """The least Levenshtein distance to ``sig#beginsignatureblock\\n`` that *any* values could give this line.

    The content of each single-quoted string or concatenation expression whose value is ``free`` stands for
    any text at all (a wildcard that costs nothing; its delimiters, quotes or parentheses, match nothing in the
    target, so the bound holds whichever of the two forms a value is written in); a run of digits stands for
    any number (counted as one digit: the target has none, and a character that matches nothing never lowers
    the distance); the rest of the line is fixed. PowerShell
    compares the line lower-cased and without whitespace, in UTF-16 code units. If the bound is 10 or more, no
    values printed in those places can make PowerShell take the line for the start of a signature block.
    """
    target = "sig#beginsignatureblock\n"
    pattern: list[str | None] = []  # None: a wildcard
    body = comment[1:]
    index = 0
    while index < len(body):
        char = body[index]
        match = VERBATIM_STRING.match(body, index) if char in SINGLE_QUOTES else None
        concatenation = _try_concatenation(body, index) if char == "(" else None
        if match is not None and free(decode_verbatim(match.group())):
            pattern += [char, None, body[match.end() - 1]]
            index = match.end()
        elif concatenation is not None and free(concatenation[0]):
            pattern += ["(", None, ")"]
            index = concatenation[1]
        elif char.isdigit():
            while index < len(body) and body[index].isdigit():
                index += 1
            pattern.append("0")
        else:
            pattern.append(char)
            index += 1
    units: list[str | None] = []
    for item in [*pattern, "\n"]:
        if item is None:
            units.append(None)
        elif not is_whitespace(item):
            units += [unit.lower() if len(unit.lower()) == 1 else unit for unit in _utf16(item)]
    row = list(range(len(target) + 1))  # row[j]: least cost of the pattern so far against target[:j]
    for unit in units:
        if unit is None:
            row = [min(row[: column + 1]) for column in range(len(row))]
            continue
        new = [row[0] + 1]
        for column, expected in enumerate(target, start=1):
            new.append(min(row[column] + 1, new[-1] + 1, row[column - 1] + (unit != expected)))
        row = new
    return row[-1]


# ----------------------------------------------------------------------------------------- tree-sitter


@functools.cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def ts_tree(source: str) -> tree_sitter.Tree:
    return _parser().parse(source.encode("utf-8"))


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def ts_problems(source: str) -> list[str]:
    """Every ERROR or MISSING node of tree-sitter's parse, as ``type 'text'``."""
    tree = ts_tree(source)
    return [
        f"{'MISSING ' if node.is_missing else ''}{node.type} {_text(node)!r}"
        for node in _walk(tree.root_node)
        if node.is_error or node.is_missing or node.type == "ERROR"
    ]


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8")


class TsShapeError(AssertionError):
    """tree-sitter's tree is not the flat list of simple commands the scripts consist of."""


def _only_child(node: tree_sitter.Node, kind: str) -> tree_sitter.Node:
    if node.child_count != 1 or node.children[0].type != kind:
        raise TsShapeError(f"{node.type} should hold exactly one {kind}: {[c.type for c in node.children]}")
    return node.children[0]


_WRAPPERS = frozenset({
    "pipeline", "pipeline_chain", "logical_expression", "bitwise_expression", "comparison_expression",
    "additive_expression", "multiplicative_expression", "format_expression", "range_expression",
    "array_literal_expression", "unary_expression", "expression_with_unary_operator",
})
"""Grammar nodes that, with a single child, are just that child (precedence levels)."""


def _unwrap(node: tree_sitter.Node) -> tree_sitter.Node:
    while node.type in _WRAPPERS and node.child_count == 1:
        node = node.children[0]
    return node


def _ts_operand(node: tree_sitter.Node) -> tuple[str, str]:
    """One operand of a concatenation, by the grammar: ("string", value) or ("char", the one code unit)."""
    node = _unwrap(node)
    if node.type == "string_literal":
        return "string", decode_verbatim_ascii(_text(_only_child(node, "verbatim_string_characters")))
    if node.type == "cast_expression" and node.child_count == 2:
        cast, operand = node.children
        literal = _unwrap(operand)
        if _text(cast).lower() == "[char]" and literal.type == "integer_literal":
            digits = _text(_only_child(literal, "hexadecimal_integer_literal"))
            if re.fullmatch("0[xX][0-9A-Fa-f]{1,4}", digits):
                return "char", chr(int(digits, 16))
    raise TsShapeError(f"unexpected operand {node.type} {_text(node)!r}")


def _ts_concatenation(node: tree_sitter.Node) -> str:
    """The value of ``( 'a' + [char]0xHHHH + ... )`` by the grammar's tree (left-associative additions)."""
    if node.child_count != 3 or node.children[0].type != "(" or node.children[2].type != ")":
        raise TsShapeError(f"unexpected parenthesised expression {_text(node)!r}")
    operands: list[tuple[str, str]] = []
    current = _unwrap(node.children[1])
    while current.type == "additive_expression":
        if current.child_count != 3 or current.children[1].type != "+":
            raise TsShapeError(f"not an addition: {_text(current)!r}")
        operands.insert(0, _ts_operand(current.children[2]))
        current = _unwrap(current.children[0])
    operands.insert(0, _ts_operand(current))
    if operands[0][0] != "string" or len(operands) < 2:
        raise TsShapeError(f"a concatenation must start with a string and join two operands: {_text(node)!r}")
    return _utf16_join([value for _, value in operands])


def _argument(node: tree_sitter.Node, values: list[str]) -> Element:
    if node.type == "generic_token":
        return ("bareword", _text(node))
    if node.type != "array_literal_expression":
        raise TsShapeError(f"unexpected command element {node.type} {_text(node)!r}")
    unary = _only_child(node, "unary_expression")
    if unary.child_count != 1:
        raise TsShapeError(f"unexpected argument expression {_text(unary)!r}")
    inner = unary.children[0]
    if inner.type == "variable":
        return ("variable", _text(inner))
    if inner.type == "string_literal":
        verbatim = _only_child(inner, "verbatim_string_characters")
        values.append(decode_verbatim_ascii(_text(verbatim)))
        return ("string", _text(verbatim))
    if inner.type == "parenthesized_expression":
        values.append(_ts_concatenation(inner))
        return ("string", _text(inner))
    raise TsShapeError(f"unexpected argument {inner.type} {_text(inner)!r}")


def _command(node: tree_sitter.Node, values: list[str]) -> Command:
    children = node.children
    if not children or children[0].type != "command_name" or len(children) > 2:
        raise TsShapeError(f"unexpected command shape: {[c.type for c in children]}")
    elements: list[Element] = []
    if len(children) == 2:
        if children[1].type != "command_elements":
            raise TsShapeError(f"unexpected command part {children[1].type}")
        for element in children[1].children:
            if element.type == "command_argument_sep":
                if _text(element) == ":":
                    if not elements or elements[-1][0] != "parameter":
                        raise TsShapeError("a colon that does not follow a parameter")
                    elements[-1] = ("parameter", elements[-1][1] + ":")
                elif _text(element).strip(" \t"):
                    raise TsShapeError(f"unexpected separator {_text(element)!r}")
            elif element.type == "command_parameter":
                elements.append(("parameter", _text(element)))
            else:
                elements.append(_argument(element, values))
    return Command(_text(children[0]), tuple(elements))


SENTINEL = "Stop-ProofSentinel"


def ts_script(source: str) -> Script:
    """tree-sitter's reading of ``source``, which must be comments and simple one-command pipelines only.

    The grammar refuses a program without any statement (an empty or comment-only file is one ERROR node,
    although PowerShell accepts it), so one sentinel command is appended on a line of its own and must come
    back as the last command, unchanged: anything left open in ``source`` (a string, a block comment, a line
    continuation) would swallow or change it.
    """
    source = without_guard(source)
    if not source.endswith("\n"):
        source += "\n"
    source += SENTINEL + "\n"
    tree = ts_tree(source)
    problems = ts_problems(source)
    if problems:
        raise TsShapeError(f"tree-sitter found errors: {problems}")
    found: list[Command] = []
    comments: list[str] = []
    values: list[str] = []

    def statements(node: tree_sitter.Node) -> None:
        for child in node.children:
            if child.type == "comment":
                text = _text(child)
                if not text.startswith("#") or text.startswith("#>") or any(c in text for c in NEWLINES):
                    raise TsShapeError(f"not a one-line # comment: {text!r}")
                comments.append(text)
            elif child.type == "statement_list":
                statements(child)
            elif child.type == "pipeline":
                chain = _only_child(child, "pipeline_chain")
                found.append(_command(_only_child(chain, "command"), values))
            else:
                raise TsShapeError(f"unexpected top-level node {child.type} {_text(child)!r}")

    statements(tree.root_node)
    if not found or found[-1] != Command(SENTINEL, ()):
        raise TsShapeError(f"the sentinel command did not come back: {found[-1:]}")
    return Script(tuple(found[:-1]), tuple(comments), tuple(values))


# ------------------------------------------------------------------------------------------------ proof

Expected = tuple[str, list[tuple[str, str]]]
"""A command as the tests expect it: (name, [(kind, text)]), string elements given by their decoded value."""


def decoded(command: Command) -> Expected:
    return command.name, [
        (kind, string_value(text) if kind == "string" else text) for kind, text in command.elements
    ]


_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
# The Hangul fillers by name (U+115F, U+1160, U+3164, U+FFA0): other "fillers" such as U+10AF6 MANICHAEAN
# PUNCTUATION LINE FILLER are visible punctuation.
_DRAWN_AS_NOTHING = ("VARIATION SELECTOR", "HANGUL FILLER", "CHOSEONG FILLER", "JUNGSEONG FILLER", "GRAPHEME JOINER",
                     "BRAILLE PATTERN BLANK", "VOWEL INHERENT")


def hidden_characters(text: str) -> list[tuple[int, str]]:
    """``(index, character)`` of each character of ``text`` a reader could not see or would misread.

    Written down here independently of the renderer: controls (but the ``\n`` line ends), format characters
    (zero-width, bidirectional controls, ...), surrogates, unassigned code points, every whitespace but the
    ASCII space, the typographic single quotes (PowerShell takes them for ``'``), characters fonts draw as
    nothing (by their Unicode names: variation selectors, fillers, the grapheme joiner, the braille blank,
    the Khmer inherent vowels), and combining marks that do not follow a letter, a digit or another mark.
    """
    found = []
    for index, char in enumerate(text):
        if char == "\n" or (char.isascii() and char.isprintable()):
            continue
        category = unicodedata.category(char)
        name = unicodedata.name(char, "")
        hidden = (
            category in _HIDDEN_CATEGORIES
            or category == "Zs"
            or char in TYPOGRAPHIC_SINGLE_QUOTES
            or any(part in name for part in _DRAWN_AS_NOTHING)
            or (category.startswith("M") and (index == 0 or unicodedata.category(text[index - 1])[0] not in "LNM"))
        )
        if hidden:
            found.append((index, char))
    return found


def has_typographic_quote(text: str) -> bool:
    return any(char in TYPOGRAPHIC_SINGLE_QUOTES for char in text)


def prove_script(script: str, expected_commands: list[Expected]) -> list[list[str]]:
    """Check a whole rendered script; return the values of the single-quoted strings of each comment line that
    has any (for the caller to compare). Raises AssertionError, PSSyntaxError or TsShapeError with the reason.

    1. By PowerShell's rules (this module's tokenizer), the script is exactly ``expected_commands``: the same
       command names, parameters, argument kinds and (decoded) string values, in order; nothing else but
       comments.
    2. tree-sitter-powershell parses it without ERROR/MISSING nodes into the same commands, with the same
       token boundaries and the same comments; for strings without typographic quotes its own reading of the
       value (a concatenation evaluated from the grammar's tree) agrees too (with them, it keeps both quotes
       of a pair; see the module docstring).
    3. Every physical line is blank, one whole ``#`` comment, or one whole command.
    4. No comment is a ``#requires`` line or looks like the start of a signature block.
    5. No character of the script is one a reviewer cannot see (:func:`hidden_characters`), comments included.
    6. The encoding guard (:data:`ENCODING_GUARD`) stands on its own line before any command.
    """
    assert "\r" not in script, "a carriage return in the script"
    assert not CONTROL.search(script.replace("\n", "")), "a control character reached the script"
    hidden = hidden_characters(script)
    assert not hidden, f"characters a reviewer cannot see: {[(i, f'U+{ord(c):04X}') for i, c in hidden[:5]]}"

    physical = script.split("\n")
    assert ENCODING_GUARD in physical, "no encoding guard"  # 6. it comes before any code
    assert all(not line or line.startswith("#") for line in physical[:physical.index(ENCODING_GUARD)])
    script = without_guard(script)
    mine = commands(script)
    theirs = ts_script(script)
    assert [decoded(command) for command in mine.commands] == expected_commands

    assert theirs.commands == mine.commands
    assert theirs.comments == mine.comments
    strings = [text for command in mine.commands for kind, text in command.elements if kind == "string"]
    assert len(theirs.values) == len(strings)
    for text, value in zip(strings, theirs.values, strict=True):
        if not has_typographic_quote(text):
            assert value == string_value(text)  # the grammar's own reading of the value agrees

    lines = script.split("\n")
    assert lines[-1] == "", "the script does not end with a line break"
    code_lines = [line for line in lines if line and not line.startswith("#")]
    assert [line for line in lines if line.startswith("#")] == list(mine.comments)
    assert len(code_lines) == len(mine.commands)
    for line, command in zip(code_lines, mine.commands, strict=True):
        assert commands(line).commands == (command,), line

    for comment in mine.comments:
        assert not is_requires(comment), comment
        assert not looks_like_signature(comment), comment
    return [values for values in (verbatim_literals(comment) for comment in mine.comments) if values]
