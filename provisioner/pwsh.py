"""PowerShell literals: the only place that turns a value into PowerShell source text.

PowerShell's tokenizer treats five characters as a single quote: the ASCII apostrophe U+0027 and the
typographic U+2018, U+2019, U+201A and U+201B. Inside a single-quoted string, a quote character is written by
doubling it, and nothing else is special (no `$` expansion, no backtick escapes). So a value is safe as
``'`` + value with every quote character doubled + ``'``. This is what PowerShell's own
``CodeGeneration.EscapeSingleQuotedStringContent`` does.
"""

from __future__ import annotations

import re

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
_BARE_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z][A-Za-z0-9]*)?")


class Bare(str):
    """A fixed token written as is: a cmdlet name, a parameter name or an enum value chosen by the code.

    Only tokens of letters and digits (optionally one ``Verb-Noun`` dash) are accepted, so a Bare can never
    carry anything a user typed that could become code.
    """

    __slots__ = ()

    def __new__(cls, token: str) -> Bare:
        if not _BARE_TOKEN.fullmatch(token):
            raise ValueError(f"not a bare PowerShell token: {token!r}")
        return super().__new__(cls, token)


def quote(value: str) -> str:
    """``value`` as a single-quoted PowerShell literal that evaluates to exactly ``value``."""
    return "'" + "".join(char * 2 if char in SINGLE_QUOTES else char for char in value) + "'"


def unquote(literal: str) -> str:
    """The value of a single-quoted PowerShell literal (the inverse of :func:`quote`), by PowerShell's rule."""
    if len(literal) < 2 or literal[0] not in SINGLE_QUOTES or literal[-1] not in SINGLE_QUOTES:
        raise ValueError("not a single-quoted literal")
    body = literal[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char in SINGLE_QUOTES:
            if index + 1 >= len(body) or body[index + 1] not in SINGLE_QUOTES:
                raise ValueError(f"unescaped quote character at {index + 1}")
            out.append(body[index + 1])  # PowerShell keeps the second of the pair
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def literal(value: object) -> str:
    """Any value the renderer may print, as PowerShell source.

    ``Bare`` tokens are written as is; ``bool`` becomes ``$true``/``$false``; ``None`` ``$null``; ``int`` its
    digits; a string a quoted literal; a list/tuple a comma-separated list of those. Anything else is refused.
    """
    if isinstance(value, Bare):
        return str(value)
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if value is None:
        return "$null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return ",".join(literal(element) for element in value)
    raise TypeError(f"cannot render a {type(value).__name__} as PowerShell")
