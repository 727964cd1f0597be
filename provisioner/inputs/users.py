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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from provisioner.domain.model import Identity
from provisioner.errors import InputError
from provisioner.inputs.files import open_regular, too_large
from provisioner.inputs.identity import InputWarning, Source, is_blank, parse_identity, strip_space

IDENTITY_COLUMNS = ("Identity", "PrimarySmtpAddress", "UserPrincipalName", "Alias", "Mailbox")
"""CSV header names of the identity column, in priority order (matched case-insensitively)."""

MAX_USERS_FILE_BYTES = 64 << 20
"""A users file larger than this (64 MiB, some million lines) is refused before it is read."""

_COLUMN_LIKE = re.compile(r"[^\W\d][\w .()/#+&-]*", re.UNICODE)  # a header name as exports write them

CSV_DELIMITERS = (",", ";", "\t")
MAX_LINE_LENGTH = 1_000_000
"""A physical line longer than this is refused (no real users file has one; it bounds memory)."""

_CHUNK_SIZE = 1 << 16
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


# --------------------------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class Target:
    identity: Identity
    source: Source


@dataclass(frozen=True)
class Duplicate:
    target: Target  # the later occurrence, folded away
    first: Target  # the one kept


@dataclass
class TargetList:
    targets: list[Target] = field(default_factory=list)  # unique (case-insensitive), in first-seen order
    duplicates: list[Duplicate] = field(default_factory=list)
    warnings: list[InputWarning] = field(default_factory=list)


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
    _, core, _ = strip_space(_content(line))
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
        ranks = [rank_of.get(strip_space(name)[1].casefold(), len(rank_of)) for name in fields]
        best = min(ranks, default=len(rank_of))
        if best == len(rank_of):
            continue
        if ranks.count(best) > 1:
            name = strip_space(fields[ranks.index(best)])[1]
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
    return [strip_space(name)[1] for name in max(candidates, key=len)]


def looks_like_header(line: str) -> bool:
    """A line that reads as a CSV header: it starts with a double quote (Export-Csv quotes every field), or it
    splits into two or more fields that all look like column names (DNs have ``=``, addresses ``@``, account
    names a backslash, "Last, First" display names a space after the comma: none of those is a header)."""
    core = strip_space(line)[1]
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
        wanted = strip_space(column)[1]
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
    return not "".join(values).strip() and all(is_blank(value) for value in values)


def _csv_items(origin: str, lines: Iterator[tuple[int, str]], header: _Header) -> Iterator[Target | InputWarning]:
    width, column = len(header.fields), header.column
    folded_header = [strip_space(name)[1].casefold() for name in header.fields]
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
        folded = strip_space(raw)[1].casefold()
        if folded == folded_header[column] and [strip_space(v)[1].casefold() for v in row[:width]] == folded_header:
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
