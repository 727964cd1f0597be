"""One identity as the operator typed it: checked (no wildcard, nothing invisible or unsendable), stripped of
surrounding spaces with a warning, and warned about when it holds format characters or lookalike letters."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from provisioner.domain.model import Identity
from provisioner.domain.text import hidden_characters
from provisioner.errors import InputError

WILDCARD_ADVICE = "Exchange expands * in identities: give the GUID, DN or address"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value came from: a file path as given, ``--mailbox`` or ``config:<path>``; line is 1-based."""

    origin: str
    line: int | None = None

    def __str__(self) -> str:
        return self.origin if self.line is None else f"{self.origin}:{self.line}"


@dataclass(frozen=True)
class InputWarning:
    source: Source
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


# ------------------------------------------------------------------------------------------------- identity


def _is_space(char: str) -> bool:
    """Whitespace that is stripped (with a warning) around an identity: space separators and tab."""
    return char == "\t" or unicodedata.category(char) == "Zs"


def strip_space(text: str) -> tuple[str, str, str]:
    """``(leading, core, trailing)``: ``text`` split around its leading and trailing ``_is_space`` chars."""
    if text == text.strip():  # fast path: no whitespace of any kind at either end
        return "", text, ""
    start, end = 0, len(text)
    while start < end and _is_space(text[start]):
        start += 1
    while end > start and _is_space(text[end - 1]):
        end -= 1
    return text[:start], text[start:end], text[end:]


def is_blank(text: str) -> bool:
    return not text.strip() and all(_is_space(char) for char in text)


def _char_name(char: str) -> str:
    if char == "\t":
        return "tab"
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}" if name else f"U+{ord(char):04X}"


# Lookalikes of ASCII characters used in identities (addresses, UPNs, DOMAIN\user, DNs) that NFKC does not
# map to ASCII; characters whose NFKC form is ASCII (fullwidth @ and ., NBSP, ...) are caught generically.
_LOOKALIKES = {
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u02d7\u058a\u2e3a", "-"),
    **dict.fromkeys("\u3002\uff61\u00b7\u2027\u2219\u22c5\u06d4\u0701\u0702\u2e33", "."),
    **dict.fromkeys("\u2018\u2019\u201b\u2032\u02bc\u02b9\u00b4\u02c8\u275b\u275c", "'"),
    **dict.fromkeys("\u201c\u201d\u201f\u2033\u02ba\u275d\u275e", '"'),
    **dict.fromkeys("\u201a\u060c\u3001\u02cf", ","),
    **dict.fromkeys("\u2044\u2215\u29f8", "/"),
    **dict.fromkeys("\u2216\u29f5\u29f9", "\\"),
    **dict.fromkeys("\u2017", "_"),
}

# Script sets that may be mixed in one identity (UTS #39 "highly restrictive"): Latin with Japanese, Chinese
# or Korean. Any other mix, Latin with Cyrillic or Greek above all, is how lookalike addresses are built.
_ALLOWED_SCRIPT_MIXES = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name (after NFKC), or None for non-letters."""
    if not unicodedata.category(char).startswith("L"):
        return None
    normal = unicodedata.normalize("NFKC", char)[:1] or char
    words = unicodedata.name(normal, "").split()
    if words and words[0] in ("FULLWIDTH", "HALFWIDTH"):
        words = words[1:]
    if not words or words[0] in ("MODIFIER", "KATAKANA-HIRAGANA"):
        return None
    if words[0] == "CJK":
        return "Han"
    return words[0].title()


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


def _lookalike_warnings(value: str) -> list[str]:
    """Messages for mixed scripts and for lookalikes of ASCII characters in ``value``; none for ASCII."""
    if value.isascii():
        return []
    messages = []
    lookalikes: list[str] = []
    letters: dict[str, list[tuple[int, str]]] = {}
    for index, char in enumerate(value, start=1):
        if char.isascii():
            if char.isalpha():
                letters.setdefault("Latin", []).append((index, char))
            continue
        normal = unicodedata.normalize("NFKC", char)
        if char in _LOOKALIKES or (normal.isascii() and normal):
            looks_like = _LOOKALIKES.get(char, normal)
            lookalikes.append(f"{char!r} ({_char_name(char)}, looks like {looks_like!r}) at position {index}")
            continue
        script = _script(char)
        if script is not None:
            letters.setdefault(script, []).append((index, char))
    scripts = set(letters)
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_SCRIPT_MIXES):
        main = max(sorted(scripts), key=lambda name: (len(letters[name]), name == "Latin"))
        others = sorted(scripts - {main})
        odd = sorted((index, char) for name in others for index, char in letters[name])
        details = [f"{char!r} ({_char_name(char)}) at position {index}" for index, char in odd]
        messages.append(
            f"{value!r} mixes {' and '.join([main, *others])} letters: {_listing(details)};"
            " check it is not a lookalike of another identity"
        )
    if lookalikes:
        messages.append(f"{value!r} contains lookalike characters: {_listing(lookalikes)}")
    return messages


_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _format_warnings(value: str) -> list[str]:
    """A message for the invisible characters in ``value`` (format characters, fillers, variation selectors, a
    combining mark without a base; :func:`provisioner.domain.text.hidden`): accepted, but invisible (or
    reordering).
    Spaces other than U+0020 are left to the lookalike warning."""
    found = [(index, char) for index, char in hidden_characters(value) if unicodedata.category(char) != "Zs"]
    if not found:
        return []
    details = []
    for index, char in found:
        bidi = " (bidirectional control: text around it may display in another order)" if char in _BIDI_CONTROLS else ""
        details.append(f"'{_char_name(char)}'{bidi} at position {index}")
    kind = "an invisible character" if len(found) == 1 else f"{len(found)} invisible characters"
    return [f"{value!r} contains {kind}, kept as written: {_listing(details)}"]


def wildcard_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as an identity because of a wildcard, or None. Exchange's identity parameters
    expand ``*``: a grant for ``j*`` would land on whichever mailbox matched, one nobody listed."""
    return f"{value!r} contains a wildcard (*): {WILDCARD_ADVICE}" if "*" in value else None


def column_problem(name: str) -> str | None:
    """Why ``name`` cannot be a users file's identity column (``--column``, ``[targets] column``), or None."""
    core = strip_space(name)[1]
    if not core:
        return "empty column name"
    if any(char in core for char in '"\r\n') or not core.isprintable():
        return f"{name!r} is not a CSV column name"
    return None


def parse_identity(raw: str, source: Source) -> tuple[Identity, list[InputWarning]]:
    """Check one identity. Surrounding spaces and tabs are stripped with a warning; format characters (kept
    as written) and lookalikes warn.

    Raises ``InputError(reason, where=str(source))`` when ``identity_problem`` refuses the value, or when it
    holds a wildcard (:func:`wildcard_problem`).
    """
    leading, value, trailing = strip_space(raw)
    try:
        identity = Identity(value)  # checks identity_problem(value)
    except ValueError as exc:
        raise InputError(str(exc), where=str(source)) from None
    wildcard = wildcard_problem(value)
    if wildcard is not None:
        raise InputError(wildcard, where=str(source))
    warnings = []
    if leading or trailing:
        side = " and ".join(name for name, part in (("leading", leading), ("trailing", trailing)) if part)
        odd = sorted(set(leading + trailing) - {" "})
        kinds = f" ({', '.join(_char_name(char) for char in odd)})" if odd else ""
        warnings.append(InputWarning(source, f"removed {side} whitespace{kinds} around {value!r}"))
    warnings.extend(InputWarning(source, message) for message in _format_warnings(value))
    warnings.extend(InputWarning(source, message) for message in _lookalike_warnings(value))
    return identity, warnings
