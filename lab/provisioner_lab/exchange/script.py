"""A tokenizer and parser for the small PowerShell subset the product's rendered scripts use.

Only used when the engine runs in full-language mode (the real Exchange endpoint is NoLanguage). Supported:

* comments ``# ...`` and ``<# ... #>``, blank lines, statements separated by newlines or ``;``;
* pipelines ``A | B`` (a newline may follow ``|``), backtick-newline line continuation;
* commands with ``-Name value``, ``-Name:value`` (``-Confirm:$false``), switches, positional values;
* values: barewords (integers become ``int``), comma lists, ``$true``/``$false``/``$null``, single-quoted
  literals decoded exactly as PowerShell does (a quote is any of U+0027, U+2018, U+2019, U+201A, U+201B; two
  consecutive quote characters inside the literal stand for one quote, the second of the pair), and
  double-quoted strings without expansion (``$`` or a backtick inside one is refused; ``""`` is a quote);
* a parenthesised string concatenation, as the product writes values with invisible characters:
  ``('a' + [char]0x200C + 'b')`` (single-quoted literals and ``[char]0xHHHH`` casts joined by ``+``; the
  first operand must be a literal, so ``+`` concatenates; UTF-16 code units, surrogate pairs combined);
* ``Add-PSSnapin ...``, ``Set-StrictMode ...`` and ``$ErrorActionPreference = '...'`` are accepted and ignored,
  and so is a statement that is a lone literal (``$null``, as a language-mode probe sends; no output).

Everything else raises :class:`ScriptError` naming the line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioner_lab.api import Argument, Invocation, Statement

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
DOUBLE_QUOTES = frozenset('"\u201c\u201d\u201e')
DASHES = frozenset("-\u2013\u2014\u2015")
NO_OP_COMMANDS = frozenset({"add-pssnapin", "set-strictmode"})
_WORD_STOP = frozenset(" \t\r\n|;,(){}`&<>") | SINGLE_QUOTES | DOUBLE_QUOTES  # ends a bareword
_START_STOP = _WORD_STOP | frozenset("@$#=")  # cannot start one
_CHAR_CAST = re.compile(r"\[char\]0x([0-9A-Fa-f]{1,4})(?![0-9A-Za-z])", re.IGNORECASE)

# is_switch(cmdlet, parameter): True for a switch, False for a parameter that takes a value, None if unknown.
SwitchLookup = Callable[[str, str], bool | None]


class ScriptError(ValueError):
    """A construct outside the supported subset (a ParseException in PowerShell terms)."""

    def __init__(self, message: str, line: int, column: int, source_line: str, error_id: str = "UnexpectedToken"):
        super().__init__(f"At line:{line} char:{column}\n+ {source_line}\n{message}")
        self.line = line
        self.column = column
        self.error_id = error_id


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, param, comma, pipe, end, variable, assign
    value: Any
    line: int
    column: int
    colon: bool = False  # for params: written as -Name:


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.index = 0

    def where(self, index: int | None = None) -> tuple[int, int]:
        index = self.index if index is None else index
        line = self.text.count("\n", 0, index) + 1
        start = self.text.rfind("\n", 0, index) + 1
        return line, index - start + 1

    def error(self, message: str, index: int | None = None, error_id: str = "UnexpectedToken") -> ScriptError:
        line, column = self.where(index)
        return ScriptError(message, line, column, self.lines[line - 1], error_id)

    def peek(self, offset: int = 0) -> str:
        position = self.index + offset
        return self.text[position] if position < len(self.text) else ""

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        text = self.text
        while self.index < len(text):
            char = text[self.index]
            start = self.index
            line, column = self.where()
            if char in " \t\f\v\u00a0":
                self.index += 1
            elif char == "`":
                if self.peek(1) == "\n":
                    self.index += 2
                elif self.peek(1) == "\r":
                    self.index += 3 if self.peek(2) == "\n" else 2
                else:
                    raise self.error("Escape sequences (backtick) are not supported by the lab's script subset.")
            elif char == "<" and self.peek(1) == "#":
                end = text.find("#>", self.index + 2)
                if end < 0:
                    raise self.error("The block comment is not closed ('#>' missing).", error_id="MissingEndOfComment")
                self.index = end + 2
            elif char == "#":
                end = text.find("\n", self.index)
                self.index = len(text) if end < 0 else end
            elif char == "\r" and self.peek(1) == "\n":
                self.index += 1
            elif char in "\r\n;":
                out.append(Token("end", char, line, column))
                self.index += 1
            elif char == "|":
                out.append(Token("pipe", char, line, column))
                self.index += 1
            elif char == ",":
                out.append(Token("comma", char, line, column))
                self.index += 1
            elif char == "=":
                out.append(Token("assign", char, line, column))
                self.index += 1
            elif char in SINGLE_QUOTES:
                out.append(Token("string", self._single_quoted(), line, column))
            elif char in DOUBLE_QUOTES:
                out.append(Token("string", self._double_quoted(), line, column))
            elif char == "$":
                self.index += 1
                name = self._word_text(stop="=:")
                lowered = name.lower()
                if lowered in ("true", "false", "null"):
                    out.append(Token("string", {"true": True, "false": False, "null": None}[lowered], line, column))
                elif name:
                    out.append(Token("variable", name, line, column))
                else:
                    raise self.error("A variable name was expected after '$'.", start)
            elif char in DASHES and self.peek(1).isalpha():
                self.index += 1
                name = self._word_text(stop=":")
                colon = self.peek() == ":"
                if colon:
                    self.index += 1
                out.append(Token("param", name, line, column, colon))
            elif char == "(":
                out.append(Token("string", self._concatenation(), line, column))
            elif char in _START_STOP:
                raise self.error(f"Unexpected token '{char}': this construct is not supported by the lab.")
            else:
                word = self._word_text()
                number = word[1:] if word[:1] in DASHES else word
                value: Any = int(word.replace(word[0], "-", 1) if word[:1] in DASHES else word) if (
                    number.isdigit() and number.isascii()
                ) else word
                out.append(Token("word", value, line, column))
        out.append(Token("end", "", *self.where()))
        return out

    def _word_text(self, stop: str = "") -> str:
        start = self.index
        while self.index < len(self.text) and self.text[self.index] not in _WORD_STOP:
            if self.text[self.index] in stop:
                break
            self.index += 1
        return self.text[start:self.index]

    def _single_quoted(self) -> str:
        start = self.index
        self.index += 1
        out: list[str] = []
        while self.index < len(self.text):
            char = self.text[self.index]
            if char in SINGLE_QUOTES:
                following = self.peek(1)
                if following and following in SINGLE_QUOTES:
                    out.append(following)  # PowerShell keeps the second quote of a doubled pair
                    self.index += 2
                    continue
                self.index += 1
                return "".join(out)
            out.append(char)
            self.index += 1
        raise self.error("The string is missing the terminator: '.", start, "TerminatorExpectedAtEndOfString")

    def _skip_blanks(self) -> None:
        while self.peek() in (" ", "\t"):
            self.index += 1

    def _char_code(self) -> str:
        match = _CHAR_CAST.match(self.text, self.index)
        if match is None:
            raise self.error("Only single-quoted strings and [char]0xHHHH casts can be joined by the lab.")
        self.index = match.end()
        return chr(int(match.group(1), 16))

    def _concatenation(self) -> str:
        """``('a' + [char]0x200C + 'b')``: the value, with UTF-16 surrogate pairs combined."""
        start = self.index
        self.index += 1
        self._skip_blanks()
        if self.peek() not in SINGLE_QUOTES:
            raise self.error("A parenthesised value must start with a single-quoted string in the lab.", start)
        parts = [self._single_quoted()]
        while True:
            self._skip_blanks()
            char = self.peek()
            if char == ")":
                self.index += 1
                break
            if char != "+":
                raise self.error("Missing closing ')' in expression.", start, "MissingEndParenthesisInExpression")
            self.index += 1
            self._skip_blanks()
            parts.append(self._single_quoted() if self.peek() in SINGLE_QUOTES else self._char_code())
        # one code unit per [char]: join surrogate pairs into code points (a lone surrogate stays as it is)
        return "".join(parts).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")

    def _double_quoted(self) -> str:
        start = self.index
        self.index += 1
        out: list[str] = []
        while self.index < len(self.text):
            char = self.text[self.index]
            if char in DOUBLE_QUOTES:
                following = self.peek(1)
                if following and following in DOUBLE_QUOTES:
                    out.append(following)
                    self.index += 2
                    continue
                self.index += 1
                return "".join(out)
            if char in "$`":
                raise self.error(
                    "Expansion ('$' or '`') inside a double-quoted string is not supported by the lab; use single "
                    "quotes.", self.index, "ExpandableStringNotSupported",
                )
            out.append(char)
            self.index += 1
        raise self.error('The string is missing the terminator: ".', start, "TerminatorExpectedAtEndOfString")


class _Parser:
    def __init__(self, lexer: _Lexer, is_switch: SwitchLookup | None) -> None:
        self.lexer = lexer
        self.tokens = lexer.tokens()
        self.position = 0
        self.is_switch = is_switch

    def error(self, token: Token, message: str, error_id: str = "UnexpectedToken") -> ScriptError:
        return ScriptError(message, token.line, token.column, self.lexer.lines[token.line - 1], error_id)

    def peek(self) -> Token:
        return self.tokens[self.position]

    def take(self) -> Token:
        token = self.tokens[self.position]
        self.position = min(self.position + 1, len(self.tokens) - 1)
        return token

    def at_end(self) -> bool:
        return self.position >= len(self.tokens) - 1

    def parse(self) -> list[Statement]:
        statements: list[Statement] = []
        while not self.at_end():
            token = self.peek()
            if token.kind == "end":
                self.take()
                continue
            statement = self.statement()
            if statement is not None:
                statements.append(statement)
        return statements

    def statement(self) -> Statement | None:
        first = self.peek()
        if first.kind == "variable":
            self.assignment()
            return None
        if first.kind == "string" and self.tokens[self.position + 1].kind == "end":
            # a lone literal such as `$null` (a language-mode probe): accepted, its value is not output
            self.take()
            self.take()
            return None
        commands: list[Invocation] = []
        while True:
            commands.append(self.command())
            token = self.peek()
            if token.kind == "pipe":
                self.take()
                while self.peek().kind == "end" and self.peek().value in ("\n", "\r"):
                    self.take()
                continue
            if token.kind == "end":
                self.take()
                break
            raise self.error(token, f"Unexpected token '{token.value}' in the statement.")
        names = [command.name.lower() for command in commands]
        if any(name in NO_OP_COMMANDS for name in names):
            if len(commands) > 1:
                raise self.error(first, "Add-PSSnapin and Set-StrictMode can't be used in a pipeline here.")
            return None
        return Statement(tuple(commands))

    def assignment(self) -> None:
        variable = self.take()
        if str(variable.value).lower() != "erroractionpreference":
            raise self.error(variable, f"Variables are not supported by the lab (${variable.value}).",
                             "VariableNotSupported")
        if self.take().kind != "assign":
            raise self.error(variable, "Only '$ErrorActionPreference = <string>' is supported.")
        value = self.take()
        if value.kind != "string" or not isinstance(value.value, str):
            raise self.error(value, "A quoted string was expected after '='.")
        end = self.take()
        if end.kind != "end":
            raise self.error(end, f"Unexpected token '{end.value}' after the assignment.")

    def command(self) -> Invocation:
        head = self.take()
        if head.kind != "word" or not isinstance(head.value, str):
            raise self.error(head, "A command name was expected.", "ExpectedCommandName")
        name = head.value
        arguments: list[Argument] = []
        while self.peek().kind not in ("pipe", "end"):
            token = self.peek()
            if token.kind == "param":
                self.take()
                if token.colon:
                    arguments.append(Argument(token.value, self.value()))
                else:
                    switch = self.is_switch(name, token.value) if self.is_switch is not None else None
                    if switch is True:
                        arguments.append(Argument(token.value, None))
                    elif self.peek().kind in ("word", "string"):
                        arguments.append(Argument(token.value, self.value()))
                    elif switch is False:
                        end = self.peek()
                        raise self.error(
                            end, f"Missing an argument for parameter '{token.value}'. Specify a parameter of the "
                            "required type and try again.", "MissingArgument",
                        )
                    else:
                        arguments.append(Argument(token.value, None))
            elif token.kind in ("word", "string"):
                arguments.append(Argument(None, self.value()))
            else:
                raise self.error(token, f"Unexpected token '{token.value}' in the command arguments.")
        return Invocation(name, tuple(arguments))

    def value(self) -> Any:
        token = self.take()
        if token.kind not in ("word", "string"):
            raise self.error(token, "A value was expected.", "MissingArgument")
        values = [token.value]
        while self.peek().kind == "comma":
            self.take()
            while self.peek().kind == "end" and self.peek().value in ("\n", "\r"):
                self.take()
            item = self.take()
            if item.kind not in ("word", "string"):
                raise self.error(item, "A value was expected after ','.", "MissingExpressionAfterToken")
            values.append(item.value)
        return values if len(values) > 1 else values[0]


def parse_script(text: str, is_switch: SwitchLookup | None = None) -> list[Statement]:
    """Parse ``text`` into statements; ``is_switch(cmdlet, parameter)`` tells switches from valued parameters."""
    return _Parser(_Lexer(text), is_switch).parse()


def tokenize_value(text: str) -> Any:
    """The value of a single argument expression (e.g. ``'O''Brien'``), for tests."""
    tokens = _Lexer(text).tokens()
    if len(tokens) != 2 or tokens[0].kind not in ("word", "string"):
        raise ValueError(f"not a single value: {text!r}")
    return tokens[0].value
