"""Run results as a JSON report, a CSV, or a human table. Files are created owner-only (0600)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from provisioner import __version__
from provisioner.domain.model import Outcome
from provisioner.domain.text import aligned
from provisioner.output.files import write_private
from provisioner.output.records import Rows, Stream
from provisioner.output.runlog import RUN
from provisioner.output.summary import Summary, attention_first
from provisioner.runs.result import PROFILE_FIELDS, ProfileEntry, RunResult
from provisioner.version import commit


def outcome_record(outcome: Outcome, source: str | None = None) -> dict[str, Any]:
    """One item of the report; ``source`` is where its target was given (``users.csv:12``), when known."""
    record: dict[str, Any] = {
        "mailbox": outcome.mailbox.value,
        **({"source": source} if source else {}),
        "trustee": outcome.trustee.identity.value,
        "role": outcome.trustee.role,
        "result": outcome.result.value,
        "detail": outcome.detail,
    }
    if outcome.error is not None:
        record["error"] = {
            "message": outcome.error.message,
            "reason": outcome.error.reason,
            "category": outcome.error.category,
            "fq_error_id": outcome.error.fq_error_id,
            "target": outcome.error.target,
        }
    if outcome.warnings:
        record["warnings"] = list(outcome.warnings)
    return record


def report_document(result: RunResult) -> dict[str, Any]:
    job = result.job
    return {
        "tool": "provisioner",
        "version": __version__,
        "commit": commit(),
        "config": RUN.config,  # the configuration file the run used (None: none found)
        "log_run": RUN.run or None,  # the run log's id (its start and summary lines)
        "action": job.action.value,
        "run_id": result.run_id,
        "dry_run": job.dry_run,
        "offline": job.offline,
        "server": job.connection.server,
        "mode": job.connection.mode,
        "started": result.started.isoformat(),
        "finished": result.finished.isoformat(),
        "duration_seconds": round((result.finished - result.started).total_seconds(), 3),
        "trustees": [
            {"identity": t.identity.value, "role": t.role, "automapping": t.automapping} for t in job.trustees
        ],
        "summary": {"mailboxes": len(job.mailboxes), **Summary.of(result).record(), "plan": result.plan.counts()},
        "notes": result.notes,
        "items": Stream(lambda: (outcome_record(outcome, job.sources.get(outcome.mailbox))
                                 for outcome in result.outcomes)),
        # the seed's second step: what the admin-console user's MAPI profile must add or drop
        # (provisioner.runs.mapi_profile)
        "mapi_profile": [entry.record() for entry in result.profile],
    }


SCRIPT_ENCODING = "utf-8-sig"
"""PowerShell scripts are written as UTF-8 with a BOM: without one, Windows PowerShell (5.1 and 2.0, the Exchange
Management Shell) reads a .ps1 in the ANSI code page, where a name's UTF-8 bytes can turn into a typographic quote
(which PowerShell reads as ') and end a literal early."""


def write_report(result: RunResult, path: Path) -> None:
    write_private(path, as_json(result), what="the report")


CSV_FIELDS = ("mailbox", "trustee", "role", "result", "detail", "reason", "fq_error_id", "source")


def rows(result: RunResult) -> Rows:
    """``result``'s items as every ``--format`` prints them: the CSV row of each (the error's reason and FQEID as
    columns), the plain table, and the JSON report."""

    def records() -> list[dict[str, Any]]:
        made = []
        for outcome in result.outcomes:
            row = outcome_record(outcome, result.job.sources.get(outcome.mailbox))
            error = row.pop("error", None) or {}
            row["reason"] = error.get("reason", "")
            row["fq_error_id"] = error.get("fq_error_id", "")
            made.append(row)
        return made

    return Rows(CSV_FIELDS, records, lambda: as_table(result), lambda: report_document(result))


def as_csv(result: RunResult) -> str:
    return rows(result).render("csv")


SHORT_REASON = 120
"""At most this many characters of an item's detail in a table cell or the HTML page; the JSON report and the CSV
keep Exchange's whole error."""


def short_reason(outcome: Outcome) -> str:
    """An item's detail for one table or HTML cell, on one line and at most :data:`SHORT_REASON` characters.

    For an item with an error: ``'x' not found`` or ``'x' matches several objects`` when Exchange said so by
    exception type and its message names the error's target ``x``, else the error's first sentence; then the
    exception type in brackets (``[ManagementObjectNotFoundException]``), which is kept whole. Exchange's server,
    request id, time stamp and FQEID are left to the JSON report and the CSV."""
    error = outcome.error
    if error is None:
        return _cut(outcome.detail, SHORT_REASON)
    reason, target = _oneline(error.reason), _oneline(error.target)
    suffix = f" [{reason}]" if reason else ""
    text = _first_sentence(error.message if not outcome.detail or error.message in outcome.detail else outcome.detail)
    if error.definitive and target and error.target in error.message:  # the message names it: say only that
        text = f"'{target}' {'not found' if error.not_found else 'matches several objects'}"
    if len(suffix) > SHORT_REASON // 2:
        return _cut(text + suffix, SHORT_REASON)
    return (_cut(text, SHORT_REASON - len(suffix)) + suffix).strip()


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _first_sentence(text: str) -> str:
    line = _oneline(text)
    end = line.find(". ")
    return line[: end + 1] if end > 0 else line


def _cut(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word boundary (when there is one in its second half) to ``limit`` characters,
    ``…`` marking the cut."""
    text = _oneline(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def as_json(result: RunResult) -> str:
    return rows(result).render("json")


def as_table(result: RunResult) -> str:
    """Plain aligned text (no terminal): one line per item, those needing attention first, a short reason each."""
    rows = [("MAILBOX", "TRUSTEE", "RESULT", "DETAIL")]
    for outcome in attention_first(result.outcomes):
        rows.append((outcome.mailbox.value, outcome.trustee.identity.value, outcome.result.value,
                     short_reason(outcome)))
    return aligned(rows)


def summary_line(result: RunResult, exit_code: int | None = None) -> str:
    """The run's one line on stderr (:meth:`provisioner.output.summary.Summary.line`); ``exit_code``: the one the
    command ends with when it is not the run's (a file it could not write)."""
    summary = Summary.of(result)
    if exit_code is not None:
        summary = replace(summary, exit_code=exit_code)
    return summary.line((result.finished - result.started).total_seconds())


def profile_rows(entries: Sequence[ProfileEntry]) -> Rows:
    """The MAPI-profile list (``--profile-list``, ``audit --for-profile``): one row per mailbox."""
    rows = [("CHANGE", "DISPLAY NAME", "PRIMARY SMTP", "LEGACYEXCHANGEDN")]
    rows += [(e.change, e.display_name, e.primary_smtp, e.legacy_dn or e.note) for e in entries]
    return Rows(PROFILE_FIELDS, [entry.record() for entry in entries], lambda: aligned(rows))
