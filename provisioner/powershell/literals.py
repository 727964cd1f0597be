"""PowerShell literals: the only place that turns a value into PowerShell source text.

PowerShell's tokenizer treats five characters as a single quote: the ASCII apostrophe U+0027 and the
typographic U+2018, U+2019, U+201A and U+201B. Inside a single-quoted string, a quote character is written by
doubling it, and nothing else is special (no `$` expansion, no backtick escapes). So a value is safe as
``'`` + value with every quote character doubled + ``'``. This is what PowerShell's own
``CodeGeneration.EscapeSingleQuotedStringContent`` does.

A reviewer must also *see* the value. A character that is invisible, that looks like another one, or that
changes how the text around it is displayed is therefore not written as itself: the value becomes a
parenthesised concatenation of single-quoted literals and ``[char]`` codes, e.g. ``('rtl ' + [char]0x202E +
'evil')``, which evaluates to exactly the same string (Windows PowerShell 2.0 and later). Which characters
(:func:`needs_code`):

* C0/C1 controls (Cc), format characters (Cf: zero-width characters, bidirectional controls, soft hyphen,
  U+FEFF, ...), surrogates (Cs) and unassigned code points (Cn, which includes U+FFFE/U+FFFF);
* every whitespace but the ASCII space: Zs (NBSP U+00A0, U+2000..U+200A, U+202F, U+205F, U+3000, ...), and
  the line and paragraph separators (Zl, Zp);
* the other default-ignorable code points, which fonts draw as nothing (variation selectors, U+034F
  COMBINING GRAPHEME JOINER, the Hangul fillers, ...), and U+2800 BRAILLE PATTERN BLANK;
* the typographic single quotes U+2018..U+201B: PowerShell takes them for ``'``, readers (and some tools)
  do not;
* a combining mark (Mn, Mc, Me) that does not stand on a base character: at the start of the value, or after
  anything but a letter, a digit or another mark written as itself. Written as itself it would be drawn on
  the quote, the ``+`` or the character before it. Marks on letters (Arabic harakat, Indic vowel signs,
  ``e`` + U+0301) stay as they are.

Everything else, including every letter of every script (Persian, Arabic, Hebrew, CJK, ...), symbols, emoji
and private-use characters, is written as itself inside the literals, so a plain name stays one plain
literal. A character outside the Basic Multilingual Plane that needs a code is written as its two UTF-16
code units (``[char]0xDB40 + [char]0xDC41``), as .NET strings hold it.
"""

from __future__ import annotations

import re

from provisioner.domain.text import SINGLE_QUOTES, needs_code

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


def _pieces(value: str) -> list[str | int]:
    """``value`` cut into runs written as themselves (str) and UTF-16 code units written as codes (int)."""
    pieces: list[str | int] = []
    run: list[str] = []
    after: str | None = None
    for char in value:
        if needs_code(char, after):
            if run:
                pieces.append("".join(run))
                run = []
            data = char.encode("utf-16-be", "surrogatepass")
            pieces += [int.from_bytes(data[index : index + 2], "big") for index in range(0, len(data), 2)]
            after = None
        else:
            run.append(char)
            after = char
    if run:
        pieces.append("".join(run))
    return pieces


def _single_quoted(text: str) -> str:
    return "'" + "".join(char * 2 if char in SINGLE_QUOTES else char for char in text) + "'"


def quote(value: str) -> str:
    """``value`` as PowerShell source that evaluates to exactly ``value``: a single-quoted literal, or, when
    it holds characters a reader could not see (:func:`needs_code`), a parenthesised concatenation of
    literals and ``[char]`` codes. The first operand is always a string, so ``+`` concatenates."""
    if value.isascii() and value.isprintable():
        return _single_quoted(value)  # the common case, decided without a per-character scan
    pieces = _pieces(value)
    if all(isinstance(piece, str) for piece in pieces):
        return _single_quoted(value)
    if not isinstance(pieces[0], str):
        pieces.insert(0, "")
    operands = [_single_quoted(piece) if isinstance(piece, str) else f"[char]0x{piece:04X}" for piece in pieces]
    return "(" + " + ".join(operands) + ")"


def literal(value: object) -> str:
    """Any value the renderer may print, as PowerShell source.

    ``Bare`` tokens are written as is; ``bool`` becomes ``$true``/``$false``; ``None`` ``$null``; ``int`` its
    digits; a string what :func:`quote` writes; a list/tuple a comma-separated list of those. Anything else is
    refused.
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
