"""``--html FILE``: a self-contained HTML report of one run, for a manager.

Title, the run's headline (:attr:`provisioner.output.summary.Summary.headline`, the same sentence the other reports are
built from), run metadata, the count per state, then the items that need attention (missing, failed, blocked,
unknown), then every item; each with a short reason (:func:`provisioner.output.report.short_reason`: the JSON report has
the whole error). The page has no script and loads nothing (a Content-Security-Policy says so).

Escaping is the environment's, not the template's: :func:`environment` (the one place this environment is built,
apart from the PowerShell one in :mod:`provisioner.powershell.render`) autoescapes, and its finalizer passes every value
through :func:`provisioner.domain.text.marked` first, so a control, format or bidi character (a U+202E in a server's
error message, say) is shown as ``<U+202E>`` and can never reorder or restyle the page.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup

from provisioner import __version__
from provisioner.domain.model import Outcome
from provisioner.domain.text import marked
from provisioner.domain.wording import counted
from provisioner.output.report import short_reason
from provisioner.output.summary import Summary, needs_attention
from provisioner.powershell.render import templates
from provisioner.runs.result import RunResult

TEMPLATE = "report.html.j2"


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):  # macro output: already built from escaped values
        return value
    if value is None:
        return ""
    return marked(str(value))


@functools.cache
def environment() -> jinja2.Environment:
    return templates(_finalize)


def _detail(outcome: Outcome) -> str:
    return " ".join([short_reason(outcome), *(f"warning: {warning}" for warning in outcome.warnings)]).strip()


def _row(outcome: Outcome) -> dict[str, Any]:
    return {
        "mailbox": outcome.mailbox.value,
        "trustee": outcome.trustee.identity.value,
        "role": outcome.trustee.role,
        "result": outcome.result.value,
        "detail": _detail(outcome),
        "problem": needs_attention(outcome),
    }


_VERDICT_CLASS = {"refused": "problems", "attention": "problems", "dry-run": "dry", "in-order": "ok", "empty": "ok"}


def report_variables(result: RunResult, now: datetime | None = None) -> dict[str, Any]:
    job = result.job
    summary = Summary.of(result)
    duration = (result.finished - result.started).total_seconds()
    metadata = [
        ("Action", job.action.value + (" (dry run, offline)" if job.offline else " (dry run)" if job.dry_run else "")),
        ("Server", job.connection.server or "(not configured)"),
        ("Mode", job.connection.mode),
        ("Run id", result.run_id or "(not journaled)"),
        ("Started", result.started.isoformat(timespec="seconds")),
        ("Finished", result.finished.isoformat(timespec="seconds")),
        ("Duration", f"{duration:.1f} s"),
        ("Mailboxes", len(job.mailboxes)),
        ("Trustees", ", ".join(f"{t.identity.value} ({t.role})" for t in job.trustees) or "(none)"),
        ("Exit code", summary.exit_code),
    ]
    attention = [_row(outcome) for outcome in result.outcomes if needs_attention(outcome)]
    return {
        "title": f"provisioner {job.action.value} report",
        "verdict": summary.headline,
        "verdict_class": _VERDICT_CLASS[summary.verdict],
        "metadata": metadata,
        "counts": [(state.value, count, state in summary.attention_counts) for state, count in summary.counts.items()],
        "total": summary.total,
        "refused": summary.refused,
        "notes": result.notes,
        "attention_title": f"Needs attention ({counted(len(attention), 'item')})",
        "attention": attention,
        "items": [_row(outcome) for outcome in result.outcomes],
        "version": __version__,
        "generated": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }


def render_html(result: RunResult, *, now: datetime | None = None) -> str:
    return environment().get_template(TEMPLATE).render(report_variables(result, now))
