"""The change journal: JSON lines, appended, flushed and fsynced per batch, owner-only.

Each batch first writes one ``intent`` line per step, then, once Exchange has answered, one ``change`` line per
step with its outcome and the inverse action. A run killed between the two leaves intents without changes: the
next run reads them back as *in doubt*, looks at the live state of those pairs and writes ``reconciled`` lines
(attributed to the run that was killed), so the journal ends up holding exactly the changes that were made.
A line torn by a crash or a full disk (no final newline, or not JSON) is ignored when reading, and ended before the
next append so that it costs only itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner.domain.model import Identity, Outcome, Result
from provisioner.errors import InputError, ProvisionerError
from provisioner.powershell.cmdlets import inverse_of
from provisioner.powershell.steps import Step

CHANGED = {Result.GRANTED.value, Result.REMOVED.value}


def step_action(step: Step) -> str:
    """The journal's name for what a change step does: grant or revoke."""
    return step.action.value


def inverse(action: str, mailbox: str, trustee: str, automapping: bool) -> dict[str, Any]:
    """The change that undoes ``action`` on (mailbox, trustee), as the journal records it: the inverse cmdlet of
    the table, with the trustee's automapping when that cmdlet takes -AutoMapping."""
    undo = inverse_of(action)
    record: dict[str, Any] = {"cmdlet": undo.name, "identity": mailbox, "user": trustee}
    if undo.parameter("AutoMapping") is not None:
        record["automapping"] = automapping
    return record


@dataclass(frozen=True)
class InDoubt:
    run_id: str
    mailbox: str
    trustee: str
    action: str
    automapping: bool
    role: str = "trustee"
    mailbox_guid: str = ""  # the mailbox the intent was sent to ("" in journals before GUIDs were recorded)


def _guid(guids: Mapping[Identity, str] | None, mailbox: Identity) -> dict[str, str]:
    guid = guids.get(mailbox) if guids else None
    return {"mailbox_guid": guid} if guid else {}


class JournalUnwritable(ProvisionerError):
    """The journal could not be written (the disk full, its folder gone): the engine sends nothing more, since a
    change it cannot record could be neither undone nor reconciled."""


class Journal:
    """Appends a run's lines. ``plan``: the digest of the saved plan this run applies (on its intent and change
    lines), so a later apply of the same plan can tell its own earlier changes from drift. ``broken``: why it
    could not be written (None: every line was), after a :class:`JournalUnwritable`."""

    def __init__(self, path: Path, plan: str | None = None) -> None:
        self.path = path
        self.mark = {"plan": plan} if plan else {}
        self.broken: str | None = None

    def _append(self, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if not lines:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a line cut short: it ends here
                os.write(fd, (b"\n" if torn else b"") + lines.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.broken = self.broken or f"cannot write the journal {self.path}: {exc.strerror or exc}"
            raise JournalUnwritable(self.broken) from None

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat()

    def intents(self, run_id: str, steps: Iterable[Step], guids: Mapping[Identity, str] | None = None) -> None:
        """One intent line per step; ``guids``: the GUID each mailbox (as written) was sent to."""
        now = self._now()
        self._append(
            {"time": now, "run_id": run_id, "kind": "intent", "action": step_action(step),
             "mailbox": step.mailbox.value, **_guid(guids, step.mailbox), "trustee": step.trustee.identity.value,
             "automapping": step.trustee.automapping, "role": step.trustee.role, **self.mark}
            for step in steps
        )

    def outcomes(self, run_id: str, outcomes: Iterable[Outcome], action_of: dict[tuple[str, str], str],
                 guids: Mapping[Identity, str] | None = None) -> None:
        now = self._now()
        records = []
        for outcome in outcomes:
            mailbox, trustee = outcome.mailbox.value, outcome.trustee.identity.value
            action = action_of[(mailbox.casefold(), trustee.casefold())]
            record: dict[str, Any] = {
                "time": now, "run_id": run_id, "kind": "change", "action": action, "mailbox": mailbox,
                **_guid(guids, outcome.mailbox),
                "trustee": trustee, "automapping": outcome.trustee.automapping, "role": outcome.trustee.role,
                "outcome": outcome.result.value,
                "inverse": inverse(action, mailbox, trustee, outcome.trustee.automapping), **self.mark,
            }
            if outcome.error is not None:
                record["error"] = {"reason": outcome.error.reason, "fq_error_id": outcome.error.fq_error_id,
                                   "message": outcome.error.message}
            records.append(record)
        self._append(records)

    def reconciled(self, entries: Iterable[tuple[InDoubt, str]], by_run: str) -> None:
        now = self._now()
        self._append(
            {"time": now, "run_id": doubt.run_id, "kind": "reconciled", "reconciled_by": by_run,
             "action": doubt.action, "mailbox": doubt.mailbox,
             **({"mailbox_guid": doubt.mailbox_guid} if doubt.mailbox_guid else {}), "trustee": doubt.trustee,
             "automapping": doubt.automapping, "role": doubt.role, "outcome": outcome,
             "inverse": inverse(doubt.action, doubt.mailbox, doubt.trustee, doubt.automapping)}
            for doubt, outcome in entries
        )


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete record; a torn or unparsable line (from a crash mid-write) is skipped."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"cannot read the journal: {exc}", where=str(path)) from None
    with handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # torn final line
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and "run_id" in record and "kind" in record:
                yield record


def in_doubt(path: Path) -> list[InDoubt]:
    """Intents that never got a change or reconciled line: their runs were killed mid-batch."""
    open_intents: dict[tuple[str, str, str, str], InDoubt] = {}
    for record in read(path):
        key = (record["run_id"], str(record.get("mailbox", "")).casefold(),
               str(record.get("trustee", "")).casefold(), str(record.get("action", "")))
        if record["kind"] == "intent":
            open_intents[key] = InDoubt(record["run_id"], record["mailbox"], record["trustee"], record["action"],
                                        bool(record.get("automapping", False)), str(record.get("role", "trustee")),
                                        str(record.get("mailbox_guid", "")))
        else:
            open_intents.pop(key, None)
    return list(open_intents.values())


def changes_of(path: Path, run_id: str) -> list[dict[str, Any]]:
    """The changes a run made (granted or removed, including reconciled ones), in the order they were made."""
    return [
        record for record in read(path)
        if record["run_id"] == run_id and record["kind"] in ("change", "reconciled")
        and record.get("outcome") in CHANGED
    ]


def applied_by_plan(path: Path, plan: str) -> dict[tuple[str, str], str]:
    """(mailbox, trustee) casefolded -> the run that changed it, for every change made by an earlier apply of the
    saved plan ``plan`` (reconciled changes of such a run included)."""
    records = list(read(path))
    runs = {record["run_id"] for record in records if record.get("plan") == plan}
    return {
        (str(record["mailbox"]).casefold(), str(record["trustee"]).casefold()): record["run_id"]
        for record in records
        if record["run_id"] in runs and record["kind"] in ("change", "reconciled") and record.get("outcome") in CHANGED
    }


def owned(path: Path) -> set[tuple[str, str]]:
    """(trustee casefolded, mailbox GUID) of every Full Access provisioner granted and has not removed since: what
    ``reapply --prune`` may remove by default. Grants journaled before GUIDs were recorded belong to nobody."""
    pairs: set[tuple[str, str]] = set()
    for record in read(path):
        guid = str(record.get("mailbox_guid", "")).casefold()
        if not guid or record["kind"] not in ("change", "reconciled") or record.get("outcome") not in CHANGED:
            continue
        pair = (str(record["trustee"]).casefold(), guid)
        if record.get("outcome") == Result.GRANTED.value:
            pairs.add(pair)
        else:
            pairs.discard(pair)
    return pairs


def run_ids(path: Path) -> list[str]:
    seen: dict[str, None] = {}
    for record in read(path):
        seen.setdefault(record["run_id"], None)
    return list(seen)


@dataclass
class RunSummary:
    """One run as ``journal list`` shows it: when it started, what it changed, and what is still in doubt."""

    run_id: str
    started: str = ""
    granted: int = 0
    removed: int = 0
    in_doubt: int = 0

    @property
    def changes(self) -> int:
        return self.granted + self.removed

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started": self.started, "changes": self.changes, "granted": self.granted,
                "removed": self.removed, "in_doubt": self.in_doubt}


def summaries(path: Path) -> list[RunSummary]:
    """Every run in the journal, in the order they first appear, with their counts (one pass over the file)."""
    runs: dict[str, RunSummary] = {}
    for record in read(path):
        run = runs.setdefault(record["run_id"], RunSummary(record["run_id"], str(record.get("time", ""))))
        if record["kind"] in ("change", "reconciled") and record.get("outcome") in CHANGED:
            if record.get("outcome") == Result.GRANTED.value:
                run.granted += 1
            else:
                run.removed += 1
    for doubt in in_doubt(path):
        runs[doubt.run_id].in_doubt += 1
    return list(runs.values())
