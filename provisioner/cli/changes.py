"""The changing commands: grant, revoke, reapply, and their `plan` variants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from provisioner.cli.apps import app, plan_app
from provisioner.cli.common import (
    check_options,
    check_output,
    connection_of,
    credentials,
    discover,
    edge,
    err,
    given_or_configured,
    hide,
    planning,
    wanted_from,
)
from provisioner.cli.confirm import Confirmation, removals_question
from provisioner.cli.options import (
    BATCHES,
    CONNECT,
    NO_CONNECTION,
    NO_CONSENT,
    NO_REVIEW,
    NO_TARGETS,
    AutomapOpt,
    ConfigOpt,
    ConnectionArgs,
    ConsentArgs,
    DryRunOpt,
    FormatOpt,
    HtmlOpt,
    JournalOpt,
    LockFileOpt,
    NoJournalOpt,
    ReportOpt,
    ReviewArgs,
    ScriptOpt,
    TargetArgs,
    connection_options,
    consent_options,
    review_options,
    target_options,
)
from provisioner.cli.protocol import change_run
from provisioner.cli.running import Finish, profile_for, progress_factory
from provisioner.domain.model import Action
from provisioner.errors import InputError
from provisioner.inputs.config import RunSettings
from provisioner.inputs.desired import TrusteeOptions
from provisioner.runs.context import Hooks
from provisioner.runs.jobs import run
from provisioner.runs.planfile import PlanCapture
from provisioner.runs.result import Job
from provisioner.transport.psrp.connect import check_connection_settings, resolve_password


def _change_command(
    action: Action,
    *,
    config: Path | None,
    targets: TargetArgs,
    trustees: TrusteeOptions,
    review: ReviewArgs,
    connection_args: ConnectionArgs,
    consent: ConsentArgs,
    plan_out: Path | None = None,
    journal: Path | None = None,
    no_journal: bool = False,
    lock_file: Path | None = None,
) -> None:
    dry_run, script, report = review.dry_run, review.script, review.report
    with edge():
        check_output(review.output_format, dry_run and plan_out is None, script)  # a plan's script goes to a file
        if review.offline and not dry_run:
            raise InputError("--offline only makes sense with --dry-run (nothing can be applied without reading)")
        if script is not None and not dry_run:
            raise InputError("--script is written by --dry-run; add --dry-run")
        confirmation = Confirmation.from_terminal(consent.yes)
        if action is Action.REVOKE and not dry_run:
            confirmation.require("revoke")
        settings = discover(config)
        connection = connection_of(settings, connection_args)
        wanted = wanted_from(settings, targets, trustees, connection=connection, offline=review.offline)
        change = change_run(settings, dry_run=dry_run, journal=journal, no_journal=no_journal, lock_file=lock_file,
                            report=report, html=review.html, profile_list=consent.profile_list, script=script,
                            plan_out=plan_out)
        job = Job(action, wanted.mailboxes, wanted.trustees, connection, dry_run=dry_run, offline=review.offline,
                  sources=wanted.sources, automapping_unsupported_ok=consent.accept_automapping)
        profile = profile_for(wanted.trustees, consent.profile_list, dry_run, report)
        capture = PlanCapture(connection) if plan_out is not None else None
        planned = capture if capture is not None else (
            confirmation.hook(removals_question("revoke")) if action is Action.REVOKE and not dry_run else None)
        password = credentials(job)
        with change.locked():
            with progress_factory() as progress:
                result = run(job, password=password, progress=progress, settings=change.settings(settings.reapply),
                             hooks=Hooks(planned, profile=profile))
            finish = Finish(result)
            finish.notes()
            finish.lost()
            finish.report(report)
        change.recorded(result)
        if capture is not None and plan_out is not None:
            finish.plan(capture, plan_out, script)
        else:
            finish.script(script)
        finish.items(review.output_format, review.html)
        finish.profile(profile, consent.profile_list)
        finish.summary()
        finish.exit(result.exit_code)


def _change_cli(action: Action, help_text: str) -> Callable[..., None]:
    """grant and revoke share every option; revoke refuses --automapping (it only shapes new grants)."""

    @connection_options(*CONNECT, "domain_controller", *BATCHES, "deadline", "insecure_lab")
    @target_options
    @review_options
    @consent_options
    def command(
        config: ConfigOpt = None,
        targets: TargetArgs = NO_TARGETS,
        automapping: AutomapOpt = None,
        review: ReviewArgs = NO_REVIEW,
        connection_args: ConnectionArgs = NO_CONNECTION,
        consent: ConsentArgs = NO_CONSENT,
        journal: JournalOpt = None,
        no_journal: NoJournalOpt = False,
        lock_file: LockFileOpt = None,
        plan_out: Path | None = None,
    ) -> None:
        if action is Action.REVOKE and automapping is not None:
            with edge():
                raise InputError("--automapping shapes new grants; revoke does not take it")
        _change_command(action, config=config, targets=targets, trustees=targets.trustee_options(automapping),
                        review=review, connection_args=connection_args, consent=consent, plan_out=plan_out,
                        journal=journal, no_journal=no_journal, lock_file=lock_file)

    command.__doc__ = help_text
    return command


_grant = _change_cli(Action.GRANT, "Give the trustees Full Access on every target mailbox (only what is missing).")
_revoke = _change_cli(
    Action.REVOKE,
    "Remove the trustees' explicit Full Access from the target mailboxes (inherited and Deny entries stay). "
    "Asks for confirmation (--yes without a terminal).",
)
app.command("grant")(hide(_grant, "plan_out", "yes"))
app.command("revoke")(hide(_revoke, "plan_out"))
plan_app.command("grant")(planning(_grant, "Plan a grant: read, then save the changes and their review script."))
plan_app.command("revoke")(planning(_revoke, "Plan a revoke: read, then save the changes and their review script."))


@connection_options(*CONNECT, "domain_controller", "batch_size", "read_batch_size", "parallel", "deadline",
                    "insecure_lab")  # reapply runs in command mode: no --mode
@target_options
@consent_options
def reapply(
    config: ConfigOpt = None,
    targets: TargetArgs = NO_TARGETS,
    automapping: AutomapOpt = None,
    prune: Annotated[bool, typer.Option("--prune", help="Remove the Full Access provisioner granted (the journal "
                                        "knows) from mailboxes no longer targeted")] = False,
    prune_unowned: Annotated[bool, typer.Option(
        "--prune-unowned", help="With --prune: also remove explicit grants of the managed trustees that provisioner "
        "did not make ([reapply] prune_unowned)")] = False,
    dry_run: DryRunOpt = False,
    script: ScriptOpt = None,
    max_changes: Annotated[
        int | None, typer.Option("--max-changes", help="Refuse larger plans (exit 6)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Apply even above --max-changes")] = False,
    report: ReportOpt = None,
    output_format: FormatOpt = None,
    html: HtmlOpt = None,
    journal: JournalOpt = None,
    no_journal: NoJournalOpt = False,
    metrics_file: Annotated[Path | None, typer.Option("--metrics-file", help="Prometheus textfile")] = None,
    lock_file: LockFileOpt = None,
    connection_args: ConnectionArgs = NO_CONNECTION,
    consent: ConsentArgs = NO_CONSENT,
    plan_out: Path | None = None,
) -> None:
    """The scheduled job: reconcile desired state (targets + selectors) with the live permissions, safely. With
    --prune it asks for confirmation before removing (--yes without a terminal)."""
    from dataclasses import replace as with_values

    from provisioner.runs.reapply import ReapplyJob, run_reapply

    with edge():
        check_output(output_format, dry_run and plan_out is None, script)  # a plan's script goes to a file
        if script is not None and not dry_run:
            raise InputError("--script is written by --dry-run; add --dry-run")
        settings = discover(config)
        connection = connection_of(settings, connection_args)
        if connection.mode != "command":
            raise InputError("reapply runs in command mode (structured commands); remove connection.mode")
        if prune_unowned and not prune:
            raise InputError("--prune-unowned widens --prune: add --prune")
        confirmation = Confirmation.from_terminal(consent.yes)
        if prune and not dry_run:
            confirmation.require("reapply --prune")
        wanted_selectors = settings.selectors if not targets.given else ()
        trustee_options = targets.trustee_options(automapping)
        check_options(RunSettings, max_changes=max_changes)
        wanted = wanted_from(settings, targets, trustee_options, selectors_count=len(wanted_selectors),
                             connection=connection)
        if not wanted.targets.targets and not wanted_selectors:
            raise InputError("no targets: give --mailbox/--users-file, or [targets] mailboxes/users_file/selector")
        reapply_settings = settings.reapply
        overrides: dict[str, Any] = {"max_changes": max_changes, "metrics_file": metrics_file, "report": report}
        reapply_settings = with_values(reapply_settings, **{k: v for k, v in overrides.items() if v is not None})
        change = change_run(
            settings, dry_run=dry_run, journal=journal, no_journal=no_journal, lock_file=lock_file, html=html,
            profile_list=consent.profile_list, script=script, plan_out=plan_out,
            extra=(given_or_configured("--report", report, "reapply.report", settings.reapply.report),
                   given_or_configured("--metrics-file", metrics_file, "reapply.metrics_file",
                                       settings.reapply.metrics_file)))
        reapply_settings = change.settings(reapply_settings)
        job = ReapplyJob(
            connection, wanted.trustees, wanted.mailboxes, wanted_selectors, settings.exclude, reapply_settings,
            prune=prune, prune_unowned=prune and (prune_unowned or reapply_settings.prune_unowned), dry_run=dry_run,
            force=force, automapping_unsupported_ok=consent.accept_automapping,
            sources=wanted.sources,
        )
        profile = profile_for(wanted.trustees, consent.profile_list, dry_run, reapply_settings.report)
        capture = PlanCapture(connection) if plan_out is not None else None
        planned = capture if capture is not None else (
            confirmation.hook(removals_question("reapply --prune --prune-unowned (explicit grants provisioner did not "
                                                "make included)" if job.prune_unowned else "reapply --prune"))
            if prune and not dry_run else None)
        check_connection_settings(connection)
        password = resolve_password(connection)
        with change.locked():
            with progress_factory() as progress:
                result = run_reapply(job, password=password, progress=progress,
                                     hooks=Hooks(planned, profile=profile))
            finish = Finish(result)
            finish.reapply_outputs(reapply_settings)
        change.recorded(result)
        finish.notes("note")
        if capture is not None and plan_out is not None and result.refused is None:
            finish.plan(capture, plan_out, script)
        else:
            finish.script(script)
        finish.items(output_format, html)
        finish.profile(profile, consent.profile_list)
        finish.summary(f"run {result.run_id}: ")
        if result.refused is not None:
            err(f"error: {result.refused}")
        finish.lost()  # exit 4, with the report and metrics written
        finish.exit(result.final_exit_code)


app.command("reapply")(hide(reapply, "plan_out"))
plan_app.command("reapply")(planning(
    reapply, "Plan a re-apply (selectors, --prune): read, then save the changes and their review script."))
