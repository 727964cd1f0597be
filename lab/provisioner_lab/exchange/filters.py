"""A subset of OPATH for ``-Filter``: ``-eq -ne -like -notlike -and -or -not``, parentheses, quoted values.

Grammar (operators case-insensitive)::

    expr       := and_expr ( "-or" and_expr )*
    and_expr   := not_expr ( "-and" not_expr )*
    not_expr   := "-not" not_expr | "(" expr ")" | comparison
    comparison := Property ( "-eq" | "-ne" | "-like" | "-notlike" ) value
    value      := 'single quoted' | "double quoted" | bareword | $null | $true | $false

Comparisons are case-insensitive; ``-like`` supports ``*`` wildcards. An unknown property or bad syntax raises
:class:`FilterError`; the cmdlet turns it into a terminating error. The error texts are approximations of
Exchange's (UNCONFIRMED).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from provisioner_lab.exchange.directory import Recipient

Predicate = Callable[[Recipient], bool]

_PROPERTIES: dict[str, Callable[[Recipient], str | None]] = {
    "alias": lambda r: r.alias,
    "name": lambda r: r.name,
    "displayname": lambda r: r.display_name,
    "primarysmtpaddress": lambda r: r.primary_smtp,
    "windowsemailaddress": lambda r: r.primary_smtp,
    "emailaddresses": lambda r: r.primary_smtp,
    "userprincipalname": lambda r: r.upn,
    "samaccountname": lambda r: r.sam,
    "department": lambda r: r.department,
    "recipienttypedetails": lambda r: r.recipient_type_details,
    "recipienttype": lambda r: r.recipient_type,
    "distinguishedname": lambda r: r.dn,
    "guid": lambda r: r.guid,
    "exchangeguid": lambda r: r.exchange_guid,
    "organizationalunit": lambda r: r.ou,
}


def _custom_attribute(number: int) -> Callable[[Recipient], str | None]:
    return lambda recipient: recipient.custom_attributes.get(number, "")


for _number in range(1, 16):
    _PROPERTIES[f"customattribute{_number}"] = _custom_attribute(_number)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<op>-(?:eq|ne|like|notlike|and|or|not)\b) |
        '(?P<squote>(?:[^']|'')*)' |
        "(?P<dquote>(?:[^"]|"")*)" |
        (?P<word>[^\s()'"]+)
    )""",
    re.IGNORECASE | re.VERBOSE,
)


class FilterError(ValueError):
    """A filter that cannot be parsed or uses an unsupported property."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"Invalid filter syntax at position {position + 1}.")
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "squote":
            value = value.replace("''", "'")
        elif kind == "dquote":
            value = value.replace('""', '"')
        elif kind == "op":
            value = value.lower()
        tokens.append(_Token(kind, value, match.start(kind) + 1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise FilterError("Invalid filter syntax: the filter ends unexpectedly.")
        self.index += 1
        return token

    def expr(self) -> Predicate:
        left = self.and_expr()
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "-or":
            self.take()
            right = self.and_expr()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def and_expr(self) -> Predicate:
        left = self.not_expr()
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "-and":
            self.take()
            right = self.not_expr()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def not_expr(self) -> Predicate:
        token = self.take()
        if token.kind == "op" and token.text == "-not":
            inner = self.not_expr()
            return lambda r: not inner(r)
        if token.kind == "lparen":
            inner = self.expr()
            closing = self.take()
            if closing.kind != "rparen":
                raise FilterError(f"Invalid filter syntax: ')' expected at position {closing.position}.")
            return inner
        if token.kind != "word":
            raise FilterError(f"Invalid filter syntax: unexpected '{token.text}' at position {token.position}.")
        getter = _PROPERTIES.get(token.text.lower())
        if getter is None:
            raise FilterError(f"The property '{token.text}' isn't supported in a filter by this lab.")
        operator = self.take()
        if operator.kind != "op" or operator.text not in ("-eq", "-ne", "-like", "-notlike"):
            raise FilterError(
                f"Invalid filter syntax: a comparison operator was expected at position {operator.position}."
            )
        value_token = self.take()
        if value_token.kind not in ("squote", "dquote", "word"):
            raise FilterError(f"Invalid filter syntax: a value was expected at position {value_token.position}.")
        value: str | None = value_token.text
        if value_token.kind == "word" and value_token.text.lower() == "$null":
            value = None
        elif value_token.kind == "word" and value_token.text.startswith("$") and value_token.text.lower() not in (
            "$true", "$false"
        ):
            raise FilterError(f"Variables are not supported in a filter (position {value_token.position}).")
        return _comparison(getter, operator.text, value)


def _comparison(getter: Callable[[Recipient], str | None], operator: str, value: str | None) -> Predicate:
    if operator in ("-eq", "-ne"):
        wanted = None if value is None else value.lower()

        def equal(recipient: Recipient) -> bool:
            actual = getter(recipient)
            actual = actual.lower() if actual else None
            return actual == wanted

        return equal if operator == "-eq" else (lambda r: not equal(r))
    pattern = re.compile(
        "^" + ".*".join(re.escape(part) for part in (value or "").split("*")) + "$", re.IGNORECASE | re.DOTALL
    )

    def like(recipient: Recipient) -> bool:
        return bool(pattern.match(getter(recipient) or ""))

    return like if operator == "-like" else (lambda r: not like(r))


def compile_filter(text: str) -> Predicate:
    """Compile an OPATH filter string into a predicate on recipients (FilterError when invalid)."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        stripped = stripped[1:-1]  # a script block's text, as Exchange accepts it
    tokens = _tokenize(stripped)
    if not tokens:
        raise FilterError("Invalid filter syntax: the filter is empty.")
    parser = _Parser(tokens)
    predicate = parser.expr()
    if parser.peek() is not None:
        token = parser.take()
        raise FilterError(f"Invalid filter syntax: unexpected '{token.text}' at position {token.position}.")
    return predicate
