"""Target mailboxes from --mailbox options, users files and config: parsed, checked, de-duplicated.

A users file is either a plain list (one identity per physical line, taken whole, so DNs with commas work)
or a CSV file whose header names the identity column. Which one is decided from the first line that is
neither blank nor a ``#`` comment: it is a CSV header if, split as CSV with ``,``, ``;`` or tab, one of
its fields is a known identity column name (see ``IDENTITY_COLUMNS``) or the column named by ``--column``
(``[targets] column``). A first line that looks like a CSV header (it starts with a double quote, or it splits
into two or more column-name-like fields) but names no identity column is refused, naming the columns found:
such a file sent line by line would send its header and whole records as identities. In a CSV file a double
quote inside an unquoted field is refused (``file:line``), and so is a wildcard ``*`` in any identity.

Everything here raises ``InputError`` (never anything else) for bad input, with ``where`` naming the file
and 1-based physical line (``users.csv:12``), so the run stops before anything is sent.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from provisioner.domain.model import Identity
from provisioner.domain.text import hidden_characters
from provisioner.errors import InputError
from provisioner.inputs.files import open_regular, too_large

IDENTITY_COLUMNS = ("Identity", "PrimarySmtpAddress", "UserPrincipalName", "Alias", "Mailbox")
"""CSV header names of the identity column, in priority order (matched case-insensitively)."""

MAX_USERS_FILE_BYTES = 64 << 20
"""A users file larger than this (64 MiB, some million lines) is refused before it is read."""

WILDCARD_ADVICE = "Exchange expands * in identities: give the GUID, DN or address"
_COLUMN_LIKE = re.compile(r"[^\W\d][\w .()/#+&-]*", re.UNICODE)  # a header name as exports write them

CSV_DELIMITERS = (",", ";", "\t")
MAX_LINE_LENGTH = 1_000_000
"""A physical line longer than this is refused (no real users file has one; it bounds memory)."""

_CHUNK_SIZE = 1 << 16
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


# --------------------------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Source:
    """Where a value came from: a file path as given, ``--mailbox`` or ``config:<path>``; line is 1-based."""

    origin: str
    line: int | None = None

    def __str__(self) -> str:
        return self.origin if self.line is None else f"{self.origin}:{self.line}"


@dataclass(frozen=True)
class Target:
    identity: Identity
    source: Source


@dataclass(frozen=True)
class Duplicate:
    target: Target  # the later occurrence, folded away
    first: Target  # the one kept


@dataclass(frozen=True)
class InputWarning:
    source: Source
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass
class TargetList:
    targets: list[Target] = field(default_factory=list)  # unique (case-insensitive), in first-seen order
    duplicates: list[Duplicate] = field(default_factory=list)
    warnings: list[InputWarning] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------- identity


def _is_space(char: str) -> bool:
    """Whitespace that is stripped (with a warning) around an identity: space separators and tab."""
    return char == "\t" or unicodedata.category(char) == "Zs"


def _strip_space(text: str) -> tuple[str, str, str]:
    """``(leading, core, trailing)``: ``text`` split around its leading and trailing ``_is_space`` chars."""
    if text == text.strip():  # fast path: no whitespace of any kind at either end
        return "", text, ""
    start, end = 0, len(text)
    while start < end and _is_space(text[start]):
        start += 1
    while end > start and _is_space(text[end - 1]):
        end -= 1
    return text[:start], text[start:end], text[end:]


def _is_blank(text: str) -> bool:
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
    core = _strip_space(name)[1]
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
    leading, value, trailing = _strip_space(raw)
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


# ---------------------------------------------------------------------------------------- physical lines


def _sniff_encoding(head: bytes, origin: str) -> tuple[str, int]:
    """``(codec, BOM length)`` from the first bytes: UTF-8 (BOM optional) or UTF-16 with a BOM."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise InputError("UTF-32 files are not supported; save the file as UTF-8", where=f"{origin}:1")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    return "utf-8", 0


def _split_lines(buffer: str, final: bool) -> tuple[list[str], str]:
    """Complete lines (with their CRLF, CR or LF terminator) of ``buffer``, and the unterminated rest.

    A trailing CR is held back unless ``final``: it may be the first half of a CRLF split across chunks.
    """
    end = len(buffer) - 1 if buffer.endswith("\r") and not final else len(buffer)
    cut = max(buffer.rfind("\n", 0, end), buffer.rfind("\r", 0, end)) + 1
    return _LINE.findall(buffer, 0, cut), buffer[cut:]


def _read_chunks(stream: BinaryIO, origin: str) -> Iterator[bytes]:
    read = 0
    while True:
        try:
            chunk = stream.read(_CHUNK_SIZE)
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror or exc}", where=origin) from None
        if not chunk:
            return
        read += len(chunk)
        if read > MAX_USERS_FILE_BYTES:  # the file grew after it was opened
            raise InputError(too_large("users file", MAX_USERS_FILE_BYTES), where=origin)
        yield chunk


def _physical_lines(stream: BinaryIO, origin: str) -> Iterator[tuple[int, str]]:
    """``(line number, line with its terminator)`` for each physical line, decoded as it is read.

    Lines end at CRLF, LF or a lone CR (as in editors). Undecodable bytes raise ``InputError`` at the line
    holding the first bad byte, after every complete line before it has been yielded.
    """
    chunks = _read_chunks(stream, origin)
    head = b""
    for chunk in chunks:  # the BOM needs the first 4 bytes; chunks are rarely shorter, but may be
        head += chunk
        if len(head) >= 4:
            break
    encoding, bom = _sniff_encoding(head, origin)
    label = "UTF-8" if encoding == "utf-8" else "UTF-16"
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    number = 0
    pending = ""
    for data, final in itertools.chain(((head[bom:], False),), ((chunk, False) for chunk in chunks), [(b"", True)]):
        try:
            text = decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            lines, _ = _split_lines(pending + exc.object[: exc.start].decode(encoding, "replace"), final=True)
            for line in lines:
                number += 1
                yield number, line
            bad = " ".join(f"0x{byte:02X}" for byte in exc.object[exc.start : exc.end][:4])
            hint = "; save the file as UTF-8" + (' (Excel: "CSV UTF-8")' if label == "UTF-8" else "")
            raise InputError(f"not valid {label}: {exc.reason} ({bad}){hint}", where=f"{origin}:{number + 1}") from None
        lines, pending = _split_lines(pending + text, final)
        for line in lines:
            number += 1
            yield number, line
        if len(pending) > MAX_LINE_LENGTH:
            raise InputError(f"line is longer than {MAX_LINE_LENGTH} characters", where=f"{origin}:{number + 1}")
    if pending:
        yield number + 1, pending


def _content(line: str) -> str:
    """The line without its terminator."""
    return line.rstrip("\r\n")


def _skipped(line: str) -> bool:
    """Blank lines and ``#`` comment lines (first non-blank character ``#``)."""
    _, core, _ = _strip_space(_content(line))
    return not core or core.startswith("#")


def _line_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


# -------------------------------------------------------------------------------------------- users files


@dataclass(frozen=True)
class _Header:
    delimiter: str
    fields: tuple[str, ...]
    column: int  # index of the identity column
    line: int

    @property
    def name(self) -> str:
        return self.fields[self.column].strip()


def _csv_fields(line: str, delimiter: str) -> list[str] | None:
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True), [])
    except csv.Error:
        return None


def _known_header(line: str, number: int, origin: str, rank_of: dict[str, int], label: str) -> _Header | None:
    """The header ``line`` is when split by the delimiter under which a field names a column of ``rank_of``
    (casefolded name -> priority, lower first), or None."""
    found: list[_Header] = []
    for delimiter in CSV_DELIMITERS:
        fields = _csv_fields(line, delimiter)
        if fields is None:
            continue
        ranks = [rank_of.get(_strip_space(name)[1].casefold(), len(rank_of)) for name in fields]
        best = min(ranks, default=len(rank_of))
        if best == len(rank_of):
            continue
        if ranks.count(best) > 1:
            name = _strip_space(fields[ranks.index(best)])[1]
            raise InputError(f"the header has more than one {name} column{label}", where=f"{origin}:{number}")
        found.append(_Header(delimiter, tuple(fields), ranks.index(best), number))
    # A delimiter absent from the line gives one field, the whole line: a one-column header (read with ",").
    split = [header for header in found if len(header.fields) > 1]
    if len(split) > 1:
        names = " or ".join(_DELIMITER_NAMES[header.delimiter] for header in split)
        raise InputError(
            f"cannot tell the CSV delimiter: the header names an identity column when split by {names}",
            where=f"{origin}:{number}",
        )
    return split[0] if split else found[0] if found else None


def _header_fields(line: str) -> list[str]:
    """The fields of a header line, split by the delimiter that gives the most of them."""
    candidates = [_csv_fields(line, delimiter) or [line] for delimiter in CSV_DELIMITERS]
    return [_strip_space(name)[1] for name in max(candidates, key=len)]


def looks_like_header(line: str) -> bool:
    """A line that reads as a CSV header: it starts with a double quote (Export-Csv quotes every field), or it
    splits into two or more fields that all look like column names (DNs have ``=``, addresses ``@``, account
    names a backslash, "Last, First" display names a space after the comma: none of those is a header)."""
    core = _strip_space(line)[1]
    if core.startswith('"'):
        return True
    for delimiter in CSV_DELIMITERS:
        fields = core.split(delimiter)
        if len(fields) > 1 and all(_COLUMN_LIKE.fullmatch(name) and name == name.strip() for name in fields):
            return True
    return False


def _columns_text(fields: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in fields) if fields else "none"


def _detect_header(line: str, number: int, origin: str, column: str | None = None) -> _Header | None:
    """The CSV header that ``line`` is, or None if it is not one (then the file is a plain list). With
    ``column`` the line must be a header naming that column."""
    where = f"{origin}:{number}"
    if column is not None:
        wanted = _strip_space(column)[1]
        header = _known_header(line, number, origin, {wanted.casefold(): 0}, " (--column)")
        if header is None:
            raise InputError(f"no column {wanted!r} (--column) in the header: the columns found are "
                             f"{_columns_text(_header_fields(line))}", where=where)
        return header
    priority = {name.casefold(): rank for rank, name in enumerate(IDENTITY_COLUMNS)}
    header = _known_header(line, number, origin, priority, "")
    if header is None and looks_like_header(line):
        raise InputError(
            f"this looks like a CSV header, but it names no identity column: the columns found are "
            f"{_columns_text(_header_fields(line))}; accepted: {', '.join(IDENTITY_COLUMNS)} (any letter case), "
            "or pick the column with --column NAME ([targets] column in the config)",
            where=where,
        )
    return header


_STRAY_QUOTE = ('stray double quote in an unquoted field: quote the whole field ("...") and double each quote '
                'inside it ("")')


def _stray_quote(text: str, delimiter: str) -> int | None:
    """The index in ``text`` (one CSV record, as written) of a double quote inside an unquoted field, or None.
    Python's csv module keeps such a quote as data; Excel and Export-Csv never write one."""
    if '"' not in text:
        return None
    start, unquoted, quoted, closed = range(4)
    state = start
    for index, char in enumerate(text):
        if state == quoted:
            state = closed if char == '"' else quoted
        elif char == delimiter or char in "\r\n":
            state = start
        elif char == '"':
            if state == unquoted:
                return index
            state = quoted  # the opening quote, or (after a closing one) a doubled quote inside the field
        elif state == start:
            state = unquoted
    return None


def _plain_items(origin: str, lines: Iterable[tuple[int, str]]) -> Iterator[Target | InputWarning]:
    for number, line in lines:
        if _skipped(line):
            continue
        source = Source(origin, number)
        identity, warnings = parse_identity(_content(line), source)
        yield from warnings
        value = identity.value
        if len(value) >= 2 and value[0] == value[-1] == '"':
            yield InputWarning(
                source, f"{value!r} is in double quotes, which are kept: this is a plain list, not a CSV file"
            )
        yield Target(identity, source)


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if text == "unexpected end of data":
        return 'unterminated quote: no closing " before the end of the file'
    if text.startswith("field larger than field limit"):
        return f"field longer than {csv.field_size_limit()} characters (unterminated quote?)"
    if "expected after" in text:
        return f'malformed CSV: {text} (characters after a closing quote; double quotes inside a field: "")'
    return f"malformed CSV: {text}"


def _csv_records(origin: str, lines: Iterator[tuple[int, str]], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(first physical line, fields)`` per CSV record; blank and comment lines between records skipped."""
    start = 0
    at_record_start = True
    raw: list[str] = []

    def feed() -> Iterator[str]:
        nonlocal start, at_record_start
        for number, line in lines:
            if at_record_start:
                if _skipped(line):
                    continue
                start, at_record_start = number, False
                raw.clear()
            raw.append(line)
            yield line  # a continuation line of a quoted field is data, even if it looks like a comment

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    while True:
        at_record_start = True
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(_csv_reason(exc), where=f"{origin}:{start}") from None
        text = "".join(raw)
        stray = _stray_quote(text, delimiter)
        if stray is not None:
            raise InputError(_STRAY_QUOTE, where=f"{origin}:{start + _line_breaks(text[:stray])}")
        yield start, row


def _all_blank(values: list[str]) -> bool:
    return not "".join(values).strip() and all(_is_blank(value) for value in values)


def _csv_items(origin: str, lines: Iterator[tuple[int, str]], header: _Header) -> Iterator[Target | InputWarning]:
    width, column = len(header.fields), header.column
    folded_header = [_strip_space(name)[1].casefold() for name in header.fields]
    for start, row in _csv_records(origin, lines, header.delimiter):
        if _all_blank(row):
            continue  # e.g. ",,," rows that Excel writes for formatted but empty rows
        if len(row) < width:
            raise InputError(f"row has {len(row)} fields, the header has {width}", where=f"{origin}:{start}")
        if len(row) > width and not _all_blank(row[width:]):
            raise InputError(
                f"row has {len(row)} fields, the header has {width}"
                f" (an unquoted {_DELIMITER_NAMES[header.delimiter]} inside a value?)",
                where=f"{origin}:{start}",
            )
        raw = row[column]
        folded = _strip_space(raw)[1].casefold()
        if folded == folded_header[column] and [_strip_space(v)[1].casefold() for v in row[:width]] == folded_header:
            yield InputWarning(Source(origin, start), "repeated header line skipped")
            continue
        # The identity's own line: quoted fields before it may span lines (their line breaks are kept).
        line = start + sum(_line_breaks(value) for value in row[:column] if "\n" in value or "\r" in value)
        source = Source(origin, line)
        if not folded:
            raise InputError(f"empty identity in column {header.name}", where=str(source))
        identity, warnings = parse_identity(raw, source)
        yield from warnings
        yield Target(identity, source)


def _users_file_items(path: Path, column: str | None = None) -> Iterator[Target | InputWarning]:
    """Targets and warnings of one users file, in file order, read as a stream."""
    origin = str(path)
    with open_regular(path, "users file", MAX_USERS_FILE_BYTES) as stream:
        lines = _physical_lines(stream, origin)
        for number, line in lines:
            if _skipped(line):
                continue
            header = _detect_header(_content(line), number, origin, column)
            if header is None:
                yield from _plain_items(origin, itertools.chain([(number, line)], lines))
            else:
                stray = _stray_quote(_content(line), header.delimiter)
                if stray is not None:
                    raise InputError(_STRAY_QUOTE, where=f"{origin}:{number}")
                yield from _csv_items(origin, lines, header)
            return


# ------------------------------------------------------------------------------------------------ folding


class _Folder:
    """Accumulates targets in first-seen order, folding case-insensitive duplicates."""

    def __init__(self) -> None:
        self._seen: dict[Identity, Target] = {}
        self.result = TargetList()

    def add(self, item: Target | InputWarning) -> None:
        if isinstance(item, InputWarning):
            self.result.warnings.append(item)
            return
        first = self._seen.setdefault(item.identity, item)
        if first is item:
            self.result.targets.append(item)
        else:
            self.result.duplicates.append(Duplicate(item, first))


def read_users_file(path: Path, column: str | None = None) -> TargetList:
    """Read one users file (plain list or CSV; with ``column``, a CSV file with that identity column). Raises
    ``InputError`` naming the file (and line)."""
    folder = _Folder()
    for item in _users_file_items(Path(path), column):
        folder.add(item)
    return folder.result


def collect_targets(
    mailboxes: Sequence[str], users_files: Sequence[Path], config_targets: Sequence[Target] = (),
    column: str | None = None,
) -> TargetList:
    """All targets: config targets first, then each users file in order, then ``--mailbox`` values.

    Duplicates within and across sources are folded onto the first occurrence and reported.
    """
    folder = _Folder()
    for target in config_targets:
        folder.add(target)
    for path in users_files:
        for item in _users_file_items(Path(path), column):
            folder.add(item)
    for raw in mailboxes:
        source = Source("--mailbox")
        identity, warnings = parse_identity(raw, source)
        for warning in warnings:
            folder.add(warning)
        folder.add(Target(identity, source))
    return folder.result
