"""The ``--format`` choices, in one place: any kind of rows (a run's items, ``check``'s findings, the journal's
runs, the MAPI-profile list) is printed as a table, JSON or CSV by :meth:`Rows.render`. A new format is a name in
:data:`FORMATS` and a branch in :meth:`Rows.render`; every command that takes ``--format`` then has it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from provisioner.errors import InputError

FORMATS = ("table", "json", "csv")


def check_format(value: str | None) -> None:
    """Refuse an unknown ``--format`` (exit 2, before anything connects)."""
    if value is not None and value not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not '{value}'")


@dataclass(frozen=True)
class Stream:
    """A list in a JSON document whose items are made as they are written (:func:`write_json`): a run's 100,000
    report items are never all held at once."""

    items: Callable[[], Iterable[Any]]


def _encoded(value: Any, indent: str) -> str:
    """``value`` as ``json.dumps(..., indent=2)`` writes it at the nesting level whose lines start with ``indent``
    (a JSON string holds no raw line break, so each line break starts a line of the value)."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)


def write_json(document: Any, out: TextIO) -> None:
    """``json.dumps(document, indent=2, ensure_ascii=False)`` and a line break, written into ``out`` value by value;
    a top-level :class:`Stream` is written as the list of its items (the same text)."""
    if not isinstance(document, Mapping) or not document or not all(isinstance(key, str) for key in document):
        out.write(_encoded(document, "") + "\n")
        return
    out.write("{")
    for position, (key, value) in enumerate(document.items()):
        out.write(("," if position else "") + f"\n  {json.dumps(key, ensure_ascii=False)}: ")
        if not isinstance(value, Stream):
            out.write(_encoded(value, "  "))
            continue
        count = 0
        for count, item in enumerate(value.items(), start=1):
            out.write(("," if count > 1 else "[") + "\n    " + _encoded(item, "    "))
        out.write("\n  ]" if count else "[]")
    out.write("\n}\n")


@dataclass(frozen=True)
class Rows:
    """Rows of one kind: their CSV ``fields`` and ``records`` (or what makes them, called only by a format that
    prints them: a run's JSON document does not), the plain ``table`` a person reads, and the JSON ``document``
    (default: the records as a list)."""

    fields: tuple[str, ...]
    records: Sequence[Mapping[str, Any]] | Callable[[], Sequence[Mapping[str, Any]]]
    table: Callable[[], str]
    document: Callable[[], Any] | None = None

    def _records(self) -> Sequence[Mapping[str, Any]]:
        return self.records() if callable(self.records) else self.records

    def write(self, output_format: str, out: TextIO) -> None:
        """:meth:`render` into ``out``; JSON is written as it is encoded (the same text), never held whole."""
        check_format(output_format)
        if output_format != "json":
            out.write(self.render(output_format))
            return
        write_json(self.document() if self.document is not None else list(self._records()), out)

    def render(self, output_format: str) -> str:
        check_format(output_format)
        if output_format == "json":
            buffer = io.StringIO()
            write_json(self.document() if self.document is not None else list(self._records()), buffer)
            return buffer.getvalue()
        if output_format == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self._records())
            return buffer.getvalue()
        return self.table()
