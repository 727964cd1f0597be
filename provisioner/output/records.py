"""The ``--format`` choices, in one place: any kind of rows (a run's items, ``check``'s findings, the journal's
runs, the MAPI-profile list) is printed as a table, JSON or CSV by :meth:`Rows.render`. A new format is a name in
:data:`FORMATS` and a branch in :meth:`Rows.render`; every command that takes ``--format`` then has it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.errors import InputError

FORMATS = ("table", "json", "csv")


def check_format(value: str | None) -> None:
    """Refuse an unknown ``--format`` (exit 2, before anything connects)."""
    if value is not None and value not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not '{value}'")


@dataclass(frozen=True)
class Rows:
    """Rows of one kind: their CSV ``fields`` and ``records``, the plain ``table`` a person reads, and the JSON
    ``document`` (default: the records as a list)."""

    fields: tuple[str, ...]
    records: Sequence[Mapping[str, Any]]
    table: Callable[[], str]
    document: Callable[[], Any] | None = None

    def render(self, output_format: str) -> str:
        check_format(output_format)
        if output_format == "json":
            document = self.document() if self.document is not None else list(self.records)
            return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if output_format == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.records)
            return buffer.getvalue()
        return self.table()
