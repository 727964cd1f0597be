"""The end of a run at the command line: running a job with progress, then what the user sees and gets, in one
order for every command: the script or the saved plan, the items (--html, --format, or problem lines on stderr), the
MAPI-profile list, the summary line."""

from __future__ import annotations

import hashlib
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from provisioner.cli.common import err, plan_script_path
from provisioner.domain.model import PROBLEM_RESULTS, Trustee
from provisioner.domain.text import escaped
from provisioner.domain.wording import counted
from provisioner.engine.apply import ProgressFactory
from provisioner.errors import InputError, ProvisionerError
from provisioner.output import report as reports
from provisioner.output.report import SCRIPT_ENCODING, write_private
from provisioner.output.runlog import RUN
from provisioner.runs.mapi_profile import ProfileList, admin_users, require_admin
from provisioner.runs.planfile import PlanCapture
from provisioner.runs.result import RunResult


def summary_line(result: RunResult) -> str:
    """The run's one-line summary for stderr; its counts go into the run log's summary line too."""
    from provisioner.output.summary import Summary

    summary = Summary.of(result)
    RUN.record({state.value: count for state, count in summary.counts.items()}, result.run_id, summary.attention)
    return reports.summary_line(result)


def progress_factory() -> AbstractContextManager[ProgressFactory | None]:
    """rich progress bars on stderr when it is a terminal, stopped when the block ends (before any summary line);
    None otherwise: stderr stays quiet in a scheduled job's log."""
    from provisioner.output.emit import progress

    return progress()


def present(result: RunResult, output_format: str | None, html: Path | None) -> None:
    """The items: --html to a file; --format on stdout (problem items first in a table); without --format the
    problem lines on stderr, as always."""
    from provisioner.output import emit as output

    if html is not None:
        output.write_html(result, html)
        err(f"HTML report written to {html}")
    if output_format is None:
        report_problems(result)
    else:
        output.present(result, output_format)


def after_run(result: RunResult, report: Path | None) -> None:
    """A grant, revoke or audit run's notes and lost session on stderr, and its report."""
    for note in result.notes:
        err(f"warning: {note}")
    say_lost(result)
    if report is not None:
        reports.write_report(result, report)


def say_lost(result: RunResult) -> None:
    """A session lost for good (exit 4, :attr:`RunResult.lost`): one error line, the items being in the report."""
    if result.lost is not None:
        err(f"error: {result.lost}")


def profile_for(trustees: tuple[Trustee, ...], path: Path | None, dry_run: bool, *shown_in: Path | None
                 ) -> ProfileList | None:
    """The MAPI-profile list of a run that changes the admin-console user's access (None: nothing to list). The
    mailboxes' names are read from Exchange only when a list or report (``path``, ``shown_in``) will show them."""
    if path is not None:
        require_admin(trustees, "--profile-list")
        if dry_run:
            raise InputError("--profile-list lists what a run granted or removed; a dry-run changes nothing")
    names = any(target is not None for target in (path, *shown_in))
    return ProfileList(names=names) if admin_users(trustees) and not dry_run else None


def emit_profile(profile: ProfileList | None, path: Path | None) -> None:
    if profile is None:
        return
    line = profile.summary()
    if path is not None:
        write_private(path, reports.profile_rows(profile.entries).render("csv"))
        err(f"{line or 'MAPI profile of the admin-console user: no change'}: list written to {path}")
    elif line is not None:
        err(f"{line} (list them with --profile-list FILE)")


def save_plan(capture: PlanCapture, out: Path, script: Path | None) -> None:
    """Write the saved plan and its review script (owner-only), and say how to apply it."""
    from provisioner.runs.planfile import review_script

    saved = capture.saved
    if saved is None:  # the run stopped before planning (e.g. the session was lost): nothing to save
        raise ProvisionerError("no plan was made, so none was saved")
    text = review_script(saved, capture.connection)
    script_path = plan_script_path(out, script)
    write_private(script_path, text, SCRIPT_ENCODING)
    write_private(out, saved.dumps(hashlib.sha256(text.encode(SCRIPT_ENCODING)).hexdigest()))  # the file's bytes
    counts = ", ".join(f"{state} {n}" for state, n in sorted(saved.unchanged.items()))
    err(f"plan {saved.digest}: {counted(len(saved.changes), 'change')} ({counted(saved.removals, 'removal')})"
         + (f"; unchanged: {counts}" if counts else ""))
    err(f"plan written to {out}, review script to {script_path}; apply it with: provisioner apply {out}")


def emit_script(result: RunResult, script: Path | None) -> None:
    """A dry-run's script to ``--script`` (owner-only) or to stdout; nothing when the run wrote none."""
    if result.script is None:
        return
    if script is None:
        sys.stdout.write(result.script)
    else:
        write_private(script, result.script, SCRIPT_ENCODING)
        err(f"script written to {script}")


def report_problems(result: RunResult) -> None:
    for outcome in result.outcomes:
        if outcome.result in PROBLEM_RESULTS:
            detail = f": {outcome.error}" if outcome.error else (f": {outcome.detail}" if outcome.detail else "")
            err(escaped(f"{outcome.result.value}: {outcome.mailbox} / {outcome.trustee.identity}{detail}"))
