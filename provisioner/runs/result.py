"""What a run was asked to do (:class:`Job`) and what it found and did (:class:`RunResult`, with the admin-console
user's MAPI-profile changes as :class:`ProfileEntry`): the one record every output (terminal, reports, HTML,
metrics) reads. A RunResult is complete when a run returns it, and frozen: nothing
is added to it afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from provisioner.domain.model import PROBLEM_RESULTS, Action, Identity, ItemState, Outcome, Plan, Trustee
from provisioner.errors import ExitCode, ProvisionerError, SessionLostForGood
from provisioner.inputs.config import Connection

AUTOMAPPED_NOTE = "AutoMapping on: Outlook adds it by Autodiscover; do not also add it to the profile (KB 981245)"
PROFILE_FIELDS = ("change", "display_name", "primary_smtp_address", "legacy_exchange_dn", "mailbox", "admin_user",
                  "automapping", "note")


@dataclass(frozen=True)
class ProfileEntry:
    change: str  # "add", "remove" or (audit --for-profile) "present"
    mailbox: Identity  # as the run named it
    trustee: Trustee
    display_name: str = ""
    primary_smtp: str = ""
    legacy_dn: str = ""
    note: str = ""  # e.g. why the names could not be read

    def record(self) -> dict[str, str]:
        note = self.note or (AUTOMAPPED_NOTE if self.trustee.automapping and self.change != "remove" else "")
        return {
            "change": self.change, "display_name": self.display_name, "primary_smtp_address": self.primary_smtp,
            "legacy_exchange_dn": self.legacy_dn, "mailbox": self.mailbox.value,
            "admin_user": self.trustee.identity.value, "automapping": str(self.trustee.automapping).lower(),
            "note": note,
        }


@dataclass(frozen=True)
class Job:
    action: Action
    mailboxes: tuple[Identity, ...]
    trustees: tuple[Trustee, ...]
    connection: Connection
    dry_run: bool = False
    offline: bool = False  # plan without reading (dry-run only): every pair is listed as a change
    automapping_unsupported_ok: bool = False  # --accept-automapping: a server without -AutoMapping automaps
    # where each target was given (users.csv:12, --mailbox, config:<path>): the report names it per item
    sources: Mapping[Identity, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    job: Job
    plan: Plan
    outcomes: list[Outcome]
    started: datetime
    finished: datetime
    script: str | None = None
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None  # the id the journal (or the scheduled job's report) names this run by
    refused: ProvisionerError | None = None  # the run refused to apply (e.g. too many changes)
    # the admin-console user's MAPI-profile changes (ProfileEntry; provisioner.runs.mapi_profile lists them)
    profile: tuple[ProfileEntry, ...] = ()
    lost: str | None = None  # the session was lost for good (Engine.lost): exit 4, unknown items in the report

    @property
    def exit_code(self) -> ExitCode:
        drift = (ItemState.TO_ADD, ItemState.BLOCKED)
        if self.lost is not None:
            return SessionLostForGood.exit_code
        if self.job.action is Action.AUDIT and any(item.state in drift for item in self.plan.items):
            return ExitCode.DRIFT
        if any(outcome.result in PROBLEM_RESULTS for outcome in self.outcomes):
            return ExitCode.ITEMS_FAILED
        return ExitCode.OK

    @property
    def final_exit_code(self) -> ExitCode:
        return self.refused.exit_code if self.refused is not None else self.exit_code
