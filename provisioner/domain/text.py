"""Text as the tool shows it: the one rule of which characters are hidden or easily mistaken (shared by the review
scripts, terminal lines, the HTML report and the input warnings), the two ways a line shows them, and plain-text
columns. Standard library only."""

from __future__ import annotations

import unicodedata

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
"""The five characters PowerShell reads as a single quote: the apostrophe and U+2018..U+201B."""

_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
"""Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt): drawn as nothing."""

_CODED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_BASE_CATEGORIES = ("L", "N", "M")  # a mark written as itself after one of these stands on a base character
_BLANK = frozenset("\u2800")


def _ignorable(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def needs_code(char: str, after: str | None) -> bool:
    """Whether ``char`` is written as a ``[char]`` code (see the module docstring).

    ``after`` is the character written just before it as itself, or None (start of the value, or the
    previous character was written as a code).
    """
    if char.isascii():
        return not char.isprintable()  # the ASCII controls; ' ' and the apostrophe (doubled) are written as is
    category = unicodedata.category(char)
    if category in _CODED_CATEGORIES or category == "Zs" or char in _BLANK or char in SINGLE_QUOTES:
        return True
    if _ignorable(char):
        return True
    if category.startswith("M"):
        return after is None or not unicodedata.category(after).startswith(_BASE_CATEGORIES)
    return False


def hidden(char: str, after: str | None) -> bool:
    """Invisible or easily mistaken when shown as is: what :func:`needs_code` codes, less the typographic quotes
    (visible; coded in scripts only because PowerShell reads them as quotes). One rule for scripts, terminal lines,
    the HTML report and the input warnings."""
    return needs_code(char, after) and char not in SINGLE_QUOTES


def hidden_characters(value: str) -> list[tuple[int, str]]:
    """``(1-based position, character)`` of every :func:`hidden` character of ``value``."""
    found: list[tuple[int, str]] = []
    after: str | None = None
    for index, char in enumerate(value, start=1):
        if hidden(char, after):
            found.append((index, char))
            after = None
        else:
            after = char
    return found


def escaped(text: str) -> str:
    """``text`` for a terminal line: every character Python does not count as printable (format, bidi, control,
    non-ASCII spaces) as ``\\uXXXX`` (``\\UXXXXXXXX`` above U+FFFF), so a name cannot reorder or hide part of a
    message; letters of every script stay as they are."""
    if text.isascii() and text.isprintable():
        return text
    coded = {index for index, _ in hidden_characters(text)}
    return "".join(_code(char) if index in coded or not char.isprintable() else char
                   for index, char in enumerate(text, start=1))


def _code(char: str) -> str:
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


# Shown as <U+XXXX>: controls, format characters (every bidi control is one), surrogates, line and paragraph
# separators, and the noncharacters U+FFFE/U+FFFF.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def marked(text: str) -> str:
    """``text`` with every control, format (bidi included) or separator character as a visible ``<U+202E>``."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without a per-character scan
    coded = {index for index, _ in hidden_characters(text)}
    return "".join(
        f"<U+{ord(char):04X}>" if index in coded or unicodedata.category(char) in _HIDDEN else char
        for index, char in enumerate(text, start=1)
    )


def aligned(rows: list[tuple[str, str, str, str]]) -> str:
    """Four columns as plain text: the first three padded to their widest cell, the last (free text) as is."""
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
