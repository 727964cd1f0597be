"""Property tests for users files: arbitrary bytes never crash, valid identities always read back exactly."""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from provisioner.domain.model import identity_problem
from provisioner.errors import InputError
from provisioner.inputs import users as inputs
from provisioner.inputs.identity import strip_space
from provisioner.inputs.users import IDENTITY_COLUMNS, looks_like_header, read_users_file

# A bounded number of examples keeps the suite fast; FUZZ_SCALE=20 (say) for a longer local run.
_SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=200 * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=100 * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])

FRAGMENTS = [
    b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00", b"\r", b"\n", b"\r\n", b",", b";", b"\t", b'"', b'""',
    b"#", b" ", b"\xc3", b"\xa9", b"\xe9", b"\xf0\x9f", b"\xed\xa0\x80", b"\x00\xdc", b"\xd8\x00",
    b"Identity", b"PrimarySmtpAddress", b"alias", b"MAILBOX", b"UserPrincipalName", b"alice@contoso.com",
    b"CN=A,OU=B,DC=c", b"\xe2\x80\xa8", b"\xd0\xb0", b"\xef\xbc\xa0",
]  # fmt: skip
TEXT_FRAGMENTS = [
    "Identity", "PrimarySmtpAddress", "alias", "Name", ",", ";", "\t", '"', '""', "\n", "\r\n", "\r", "#", " ",
    "alice@contoso.com", "ALICE@contoso.com", "CN=A,OU=B", "\u0430", "\uff20", "\u00a0", "\x00", "\u2028", "é",
]  # fmt: skip
csv_like_text = st.lists(st.one_of(st.sampled_from(TEXT_FRAGMENTS), st.text(max_size=2)), max_size=40).map("".join)
file_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=3)), max_size=40).map(b"".join),
    st.builds(lambda text, encoding: text.encode(encoding, "surrogatepass"), csv_like_text, encodings),
)


def _line_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


@FUZZ
@given(data=file_bytes, chunk_size=st.sampled_from([1, 2, 3, 7, 65536]))
def test_arbitrary_bytes_give_targets_or_an_input_error_at_a_line(data: bytes, chunk_size: int) -> None:
    with tempfile.TemporaryDirectory() as directory, mock.patch.object(inputs, "_CHUNK_SIZE", chunk_size):
        path = Path(directory) / "users.csv"
        path.write_bytes(data)
        physical_lines = data.count(b"\n") + data.count(b"\r") + 1  # an upper bound for any decoding
        try:
            result = read_users_file(path)
        except InputError as exc:
            match = re.match(rf"{re.escape(str(path))}:(\d+): \S", str(exc))
            assert match, str(exc)
            assert 1 <= int(match.group(1)) <= physical_lines
            assert exc.where == f"{path}:{match.group(1)}"
            return
        keys = [target.identity.key for target in result.targets]
        assert len(keys) == len(set(keys))
        for item in [*result.targets, *result.warnings, *(dup.target for dup in result.duplicates)]:
            source = item.source
            assert source.origin == str(path)
            assert source.line is not None and 1 <= source.line <= physical_lines
        for duplicate in result.duplicates:
            assert duplicate.target.identity == duplicate.first.identity
            assert duplicate.first in result.targets


def _stripped(value: str) -> str:
    """Without the leading and trailing whitespace that the reader strips (spaces of any width, tab)."""
    return strip_space(value)[1]


def _valid(value: str) -> bool:
    leading, _, trailing = strip_space(value)
    return identity_problem(value) is None and not leading and not trailing and "*" not in value


identities = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp")), min_size=1, max_size=40
).filter(_valid)
# The same, but also the ASCII punctuation that matters to CSV and to the form detection.
tricky_identities = st.one_of(
    identities,
    st.lists(st.sampled_from([*',;"# \t=\\@.', "Identity", "Alias", "CN=", "a", "é", "а"]), min_size=1)
    .map("".join)
    .filter(_valid),
)
newlines = st.sampled_from(["\n", "\r\n", "\r"])


@ROUND_TRIP
@given(identity=tricky_identities, newline=newlines, encoding=encodings)
def test_any_valid_identity_reads_back_from_a_plain_file(identity: str, newline: str, encoding: str) -> None:
    # The first line decides the form; a first line that parses as a CSV header is a header by design,
    # so the identity under test goes on a later line (and is not a comment).
    assume(not identity.startswith("#"))
    assume(identity.casefold() != "first@contoso.com")
    text = newline.join(["# users", "first@contoso.com", "", identity]) + newline
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "users.txt"
        path.write_bytes(text.encode(encoding))
        result = read_users_file(path)
    assert [(t.identity.value, t.source.line) for t in result.targets] == [("first@contoso.com", 2), (identity, 4)]


@ROUND_TRIP
@given(identity=tricky_identities, newline=newlines)
def test_any_valid_identity_reads_back_as_the_first_line_unless_it_is_a_header(identity: str, newline: str) -> None:
    assume(not identity.startswith("#") and identity.casefold() != "second@contoso.com")
    names = {column.casefold() for column in IDENTITY_COLUMNS}
    header_like = looks_like_header(identity) or any(
        _stripped(field).casefold() in names
        for delimiter in ",;\t"
        for field in next(csv.reader([identity], delimiter=delimiter), [])
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "users.txt"
        path.write_text(identity + newline + "second@contoso.com", encoding="utf-8", newline="")
        try:
            values = [target.identity.value for target in read_users_file(path).targets]
        except InputError:
            values = []
    # Read as a CSV header (then the next line is a row, or the header is refused) is the only way for the
    # first line not to be an identity.
    assert values == [identity, "second@contoso.com"] or header_like


other_cells = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@ROUND_TRIP
@given(
    identity=tricky_identities,
    before=st.lists(other_cells, max_size=3),
    after=st.lists(other_cells, max_size=2),
    earlier=st.lists(st.lists(other_cells, min_size=5, max_size=5), max_size=3),
    delimiter=st.sampled_from([",", ";", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL]),
    column=st.sampled_from(IDENTITY_COLUMNS),
    encoding=encodings,
)
def test_any_valid_identity_reads_back_from_a_csv_cell(
    identity: str,
    before: list[str],
    after: list[str],
    earlier: list[list[str]],
    delimiter: str,
    quoting: int,
    column: str,
    encoding: str,
) -> None:
    """Other cells are arbitrary text (line breaks, quotes, delimiters, NUL): only the identity cell matters."""
    header = [f"Before{n}" for n in range(len(before))] + [column] + [f"After{n}" for n in range(len(after))]
    if len(header) == 1:
        delimiter = ","  # a one-column header shows no delimiter: such files are read as comma-separated
    at = len(before)

    def written(row: list[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator="\r\n").writerow(row)
        return buffer.getvalue()

    def skipped_by_design(row: list[str]) -> bool:  # a row whose first line is a comment, or a repeated header
        return _stripped(written(row)).startswith("#") or [_stripped(c).casefold() for c in row] == [
            name.casefold() for name in header
        ]

    rows = [[*cells[:at], f"row{n}@contoso.com", *cells[at:]][: len(header)] for n, cells in enumerate(earlier)]
    rows = [r for r in rows if not skipped_by_design(r)]
    row = [*before, identity, *after]
    assume(not skipped_by_design(row))
    prefix = written(header) + "".join(written(r) for r in rows)
    if before:
        prefix += written(before).removesuffix("\r\n") + delimiter
    text = written(header) + "".join(written(r) for r in rows) + written(row)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "users.csv"
        path.write_bytes(text.encode(encoding))
        result = read_users_file(path)
    line = _line_breaks(prefix) + 1
    read = [*result.targets, *(duplicate.target for duplicate in result.duplicates)]
    assert [target.identity.value for target in read if target.source.line == line] == [identity]
    assert [target.identity.value for target in read] == [*(r[at] for r in rows), identity]
