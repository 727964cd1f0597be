"""The end of a run at the command line, in one order for every command (:class:`Finish`): its notes, the report,
the script or the saved plan, the items (--html, --format, or problem lines on stderr), the MAPI-profile list, the
summary line. Each file is written even when another cannot be; a file that cannot be written (its folder gone, the
disk full) is exit 9 in one error line that says what the run did, never a traceback after the changes."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NoReturn

import typer

from provisioner.cli.common import err, plan_script_path
from provisioner.domain.model import PROBLEM_RESULTS, Trustee
from provisioner.domain.text import escaped
from provisioner.domain.wording import counted
from provisioner.engine.apply import ProgressFactory
from provisioner.errors import ExitCode, InputError, OutputError, ProvisionerError
from provisioner.inputs.config import RunSettings
from provisioner.output import metrics
from provisioner.output import report as reports
from provisioner.output.files import write_private
from provisioner.output.report import SCRIPT_ENCODING
from provisioner.output.runlog import RUN
from provisioner.output.summary import Summary
from provisioner.runs.mapi_profile import ProfileList, admin_users, require_admin
from provisioner.runs.planfile import PlanCapture
from provisioner.runs.result import RunResult


def progress_factory() -> AbstractContextManager[ProgressFactory | None]:
    """rich progress bars on stderr when it is a terminal, stopped when the block ends (before any summary line);
    None otherwise: stderr stays quiet in a scheduled job's log."""
    from provisioner.output.emit import progress

    return progress()


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


class Finish:
    """The end of one run: call what the command has, in this order, then :meth:`exit`."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.failed: list[str] = []

    def _write(self, write: Callable[[], None]) -> bool:
        try:
            write()
        except OutputError as exc:
            self.failed.append(str(exc))
            return False
        return True

    def notes(self, prefix: str = "warning") -> None:
        for note in self.result.notes:
            err(f"{prefix}: {note}")

    def lost(self) -> None:
        """A session lost for good (exit 4): one error line, the items being in the report."""
        if self.result.lost is not None:
            err(f"error: {self.result.lost}")

    def report(self, path: Path | None) -> None:
        if path is not None:
            self._write(lambda: reports.write_report(self.result, path))

    def metrics(self, job: str, path: Path | None) -> None:
        """The Prometheus textfile under the label ``job`` (the command)."""
        if path is not None:
            self._write(lambda: metrics.write(path, metrics.of_run(job, self.result)))

    def reapply_outputs(self, settings: RunSettings) -> None:
        """A scheduled re-apply's report and metrics, where ``[reapply]`` (or the options) put them."""
        self.report(settings.report)
        self.metrics("reapply", settings.metrics_file)

    def script(self, path: Path | None) -> None:
        """A dry-run's script to ``--script`` (owner-only) or to stdout; nothing when the run wrote none."""
        text = self.result.script
        if text is None:
            return
        if path is None:
            sys.stdout.write(text)
        elif self._write(lambda: write_private(path, text, SCRIPT_ENCODING, what="the script")):
            err(f"script written to {path}")

    def plan(self, capture: PlanCapture, out: Path, script: Path | None) -> None:
        """The saved plan and its review script (owner-only), and how to apply it."""
        from provisioner.runs.planfile import review_script

        saved = capture.saved
        if saved is None:  # the run stopped before planning (e.g. the session was lost): nothing to save
            raise ProvisionerError("no plan was made, so none was saved")
        text = review_script(saved, capture.connection)
        script_path = plan_script_path(out, script)
        body = saved.dumps(hashlib.sha256(text.encode(SCRIPT_ENCODING)).hexdigest())  # the file's bytes
        if not (self._write(lambda: write_private(script_path, text, SCRIPT_ENCODING, what="the review script"))
                and self._write(lambda: write_private(out, body, what="the plan"))):
            return
        counts = ", ".join(f"{state} {n}" for state, n in sorted(saved.unchanged.items()))
        err(f"plan {saved.digest}: {counted(len(saved.changes), 'change')} ({counted(saved.removals, 'removal')})"
            + (f"; unchanged: {counts}" if counts else ""))
        err(f"plan written to {out}, review script to {script_path}; apply it with: provisioner apply {out}")

    def items(self, output_format: str | None, html: Path | None) -> None:
        """--html to a file; --format on stdout (problem items first in a table); without --format the problem lines
        on stderr, as always."""
        from provisioner.output import emit as output

        if html is not None and self._write(lambda: output.write_html(self.result, html)):
            err(f"HTML report written to {html}")
        if output_format is None:
            self.problems()
        else:
            output.present(self.result, output_format)

    def problems(self) -> None:
        for outcome in self.result.outcomes:
            if outcome.result in PROBLEM_RESULTS:
                detail = f": {outcome.error}" if outcome.error else (f": {outcome.detail}" if outcome.detail else "")
                err(escaped(f"{outcome.result.value}: {outcome.mailbox} / {outcome.trustee.identity}{detail}"))

    def profile(self, profile: ProfileList | None, path: Path | None) -> None:
        if profile is None:
            return
        line = profile.summary()
        if path is not None:
            rows = reports.profile_rows(profile.entries).render("csv")
            if self._write(lambda: write_private(path, rows, what="the MAPI-profile list")):
                err(f"{line or 'MAPI profile of the admin-console user: no change'}: list written to {path}")
        elif line is not None:
            err(f"{line} (list them with --profile-list FILE)")

    def summary(self, prefix: str = "") -> None:
        """The run's one-line summary on stderr; its counts go into the run log's summary line too."""
        summary = Summary.of(self.result)
        RUN.record({state.value: count for state, count in summary.counts.items()}, self.result.run_id,
                   summary.attention)
        err(prefix + reports.summary_line(self.result, ExitCode.OUTPUT if self.failed else None))

    def exit(self, code: int) -> NoReturn:
        """Exit with ``code``; or, when a file could not be written, exit 9 naming each and what the run did."""
        if self.failed:
            raise OutputError("; ".join(self.failed) + f"; the run itself finished: {Summary.of(self.result).items}")
        raise typer.Exit(code)
