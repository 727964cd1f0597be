"""``--html FILE``: a self-contained HTML report of one run, for a manager.

Title, run metadata, a summary with per-state counts, then the problem items (failed, blocked, unknown), then
every item. The page has no script and loads nothing (a Content-Security-Policy says so).

Escaping is the environment's, not the template's: :func:`environment` (the one place this environment is built,
apart from the PowerShell one in :mod:`provisioner.render`) autoescapes, and its finalizer passes every value
through :func:`provisioner.output.visible` first, so a control, format or bidi character (a U+202E in a server's
error message, say) is shown as ``<U+202E>`` and can never reorder or restyle the page.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup

from provisioner import __version__
from provisioner.jobs import RunResult
from provisioner.model import PROBLEM_RESULTS, Outcome, Result
from provisioner.output import visible
from provisioner.render import template_dir

TEMPLATE = "report.html.j2"


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):  # macro output: already built from escaped values
        return value
    if value is None:
        return ""
    return visible(str(value))


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _detail(outcome: Outcome) -> str:
    parts = [outcome.detail] if outcome.detail else []
    if outcome.error is not None:
        if outcome.error.message and outcome.error.message not in outcome.detail:
            parts.append(outcome.error.message)
        if outcome.error.reason:
            parts.append(f"[{outcome.error.reason}]")
    parts.extend(f"warning: {warning}" for warning in outcome.warnings)
    return " ".join(parts)


def _row(outcome: Outcome) -> dict[str, Any]:
    return {
        "mailbox": outcome.mailbox.value,
        "trustee": outcome.trustee.identity.value,
        "role": outcome.trustee.role,
        "result": outcome.result.value,
        "detail": _detail(outcome),
        "problem": outcome.result in PROBLEM_RESULTS,
    }


def _verdict(result: RunResult, problems: int) -> tuple[str, str]:
    if result.refused is not None:
        return "problems", "Refused: nothing was applied."
    if problems:
        return "problems", f"{problems} of {len(result.outcomes)} items need attention."
    if result.job.dry_run:
        return "dry", f"Dry run: nothing was changed; {len(result.outcomes)} items planned or already in place."
    return "ok", f"All {len(result.outcomes)} items are in order."


def report_variables(result: RunResult, now: datetime | None = None) -> dict[str, Any]:
    job = result.job
    problems = [_row(outcome) for outcome in result.outcomes if outcome.result in PROBLEM_RESULTS]
    counts = result.counts
    order = [state.value for state in Result]
    states = sorted(counts, key=lambda state: (Result(state) not in PROBLEM_RESULTS, order.index(state)))
    duration = (result.finished - result.started).total_seconds()
    verdict_class, verdict = _verdict(result, len(problems))
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
        ("Exit code", int(result.final_exit_code)),
    ]
    return {
        "title": f"provisioner {job.action.value} report",
        "verdict": verdict,
        "verdict_class": verdict_class,
        "metadata": metadata,
        "counts": [(state, counts[state], Result(state) in PROBLEM_RESULTS) for state in states],
        "total": len(result.outcomes),
        "refused": str(result.refused) if result.refused is not None else None,
        "notes": result.notes,
        "problems": problems,
        "items": [_row(outcome) for outcome in result.outcomes],
        "version": __version__,
        "generated": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }


def render_html(result: RunResult, *, now: datetime | None = None) -> str:
    return environment().get_template(TEMPLATE).render(report_variables(result, now))
