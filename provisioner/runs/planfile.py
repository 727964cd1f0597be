"""The saved plan: what ``provisioner plan … --out FILE`` writes and ``provisioner apply FILE`` carries out.

A saved plan holds exactly the changes that were reviewed, and for each the state it depends on: the change's
state when planned (``to-add``: the trustee had no Full Access and no Deny; ``to-remove``: an explicit Allow) and
the mailbox's GUID then (so a mailbox deleted and re-created under the same name is a different mailbox). It also
holds the endpoint and step settings, the server facts that shape the commands (protocol, PowerShell version,
whether -AutoMapping is used) and the trustees. Unchanged items are only counted: apply never touches them.

The body is canonical JSON; its SHA-256 is the plan's digest, stored beside it and printed in the review script's
header, so the approver can tie the script to the file and ``apply`` refuses a file edited after it was made.
No secret is ever part of a plan (passwords, keytabs and tickets are the applier's, at apply time).

A plan is made by a run's ``planned`` hook (:class:`PlanCapture`) and reviewed as :func:`review_script`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner import __version__
from provisioner.domain.model import Action, Identity, ItemState, Plan, PlanItem, Trustee
from provisioner.engine.apply import Engine
from provisioner.engine.resolve import MailboxRef
from provisioner.errors import InputError
from provisioner.inputs.config import Connection
from provisioner.inputs.files import read_regular
from provisioner.inputs.identity import wildcard_problem
from provisioner.powershell.steps import StepOptions
from provisioner.runs.script import plan_script
from provisioner.transport.facts import ServerFacts

FORMAT = "provisioner-plan/1"
ENDPOINT_FIELDS = ("backend", "server", "port", "scheme", "path", "configuration_name", "mode", "domain_controller",
                   "preamble")  # preamble: script mode's, as reviewed (apply runs the plan's, not the config's)
TENANT = "tenant"  # beside ENDPOINT_FIELDS: the Exchange Online tenant a plan is for (None on-prem)
APPLICABLE = (Action.GRANT, Action.REVOKE, Action.REAPPLY)
MAX_PLAN_BYTES = 128 << 20
"""A plan file larger than this (128 MiB, some 500,000 changes) is refused before it is read."""


@dataclass(frozen=True)
class PlannedChange:
    mailbox: Identity
    trustee: Trustee
    state: ItemState  # TO_ADD or TO_REMOVE
    detail: str = ""
    mailbox_key: str = ""  # the mailbox's GUID (or DN) when planned; "" if it could not be read


@dataclass(frozen=True)
class SavedPlan:
    action: Action
    created: str  # ISO 8601, UTC
    tool_version: str
    endpoint: dict[str, Any]  # ENDPOINT_FIELDS of the connection it was planned on
    batch_size: int
    automapping: bool  # -AutoMapping is sent with grants (False: planned with --accept-automapping)
    facts: dict[str, str]  # protocol, ps_version
    trustees: tuple[Trustee, ...]
    changes: tuple[PlannedChange, ...]
    unchanged: dict[str, int]  # items the plan leaves alone, per state

    # ------------------------------------------------------------------ making one
    @classmethod
    def of(
        cls, plan: Plan, connection: Connection, facts: ServerFacts, options: StepOptions, keys: dict[Identity, str],
        created: datetime,
    ) -> SavedPlan:
        if plan.action not in APPLICABLE:
            raise ValueError(f"a {plan.action.value} plan cannot be saved")
        changes = tuple(
            PlannedChange(item.mailbox, item.trustee, item.state, item.detail, keys.get(item.mailbox, ""))
            for item in plan.items if item.changes
        )
        unchanged: dict[str, int] = {}
        for item in plan.items:
            if not item.changes:
                unchanged[item.state.value] = unchanged.get(item.state.value, 0) + 1
        return cls(
            action=plan.action,
            created=created.isoformat(),
            tool_version=__version__,
            endpoint={**{name: getattr(connection, name) for name in ENDPOINT_FIELDS},
                      TENANT: connection.exo.tenant if connection.backend == "exo" else None},
            batch_size=connection.batch_size,
            automapping=options.automapping,
            facts=server_facts(facts),
            trustees=plan.trustees,
            changes=changes,
            unchanged=unchanged,
        )

    # ------------------------------------------------------------------ as a plan again
    def plan(self) -> Plan:
        items = tuple(PlanItem(c.mailbox, c.trustee, c.state, c.detail) for c in self.changes)
        return Plan(self.action, items, self.trustees, observed=True)

    @property
    def removals(self) -> int:
        return sum(1 for change in self.changes if change.state is ItemState.TO_REMOVE)

    # ------------------------------------------------------------------ the file
    def body(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "created": self.created,
            "tool_version": self.tool_version,
            "endpoint": self.endpoint,
            "batch_size": self.batch_size,
            "automapping": self.automapping,
            "facts": self.facts,
            "trustees": [_trustee_record(trustee) for trustee in self.trustees],
            "changes": [
                {"mailbox": c.mailbox.value, "trustee": c.trustee.identity.value, "state": c.state.value,
                 "detail": c.detail, "mailbox_key": c.mailbox_key}
                for c in self.changes
            ],
            "unchanged": self.unchanged,
        }

    @property
    def digest(self) -> str:
        return digest_of(self.body())

    def dumps(self, script_sha256: str | None = None) -> str:
        document: dict[str, Any] = {"format": FORMAT, "digest": self.digest, "body": self.body()}
        if script_sha256 is not None:
            document["review_script_sha256"] = script_sha256
        return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def server_facts(facts: ServerFacts) -> dict[str, str]:
    return {"protocol": facts.protocol_version, "ps_version": facts.ps_version}


def digest_of(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _trustee_record(trustee: Trustee) -> dict[str, Any]:
    return {"identity": trustee.identity.value, "role": trustee.role, "automapping": trustee.automapping}


# ---------------------------------------------------------------------------------------------- reading
def load(path: Path) -> SavedPlan:
    """The plan in ``path``; any damage, an edit after it was made or an unknown format is refused by name."""
    where = str(path)
    try:
        text = read_regular(path, "plan file", MAX_PLAN_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a plan file (not UTF-8 text)", where=where) from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise InputError(f"not a plan file: {exc.msg}", where=f"{where}:{exc.lineno}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"not a plan file: {exc}", where=where) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"not a plan file of this tool (format {FORMAT!r} expected)", where=where)
    body = document.get("body")
    if not isinstance(body, dict):
        raise InputError("the plan has no body", where=where)
    try:
        actual, recorded = digest_of(body), document.get("digest")
    except (UnicodeError, ValueError, RecursionError) as exc:  # e.g. a lone surrogate escape: not a plan we wrote
        raise InputError(f"the plan's content is not valid: {type(exc).__name__}", where=where) from None
    if actual != recorded:
        raise InputError(f"the plan was changed after it was made (digest {recorded}, content {actual}): "
                         "make a new plan and have it reviewed", where=where)
    try:
        return _from_body(body)
    except PlanContentError as exc:
        raise InputError(f"the plan's content is not valid: {exc}", where=where) from None
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InputError(f"the plan's content is not valid: {type(exc).__name__}: {exc}", where=where) from None


class PlanContentError(ValueError):
    """A plan body that parses but cannot be what this tool wrote (named field by field)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object without repeated keys: with them, a reader of the raw file and apply could see different
    content under one digest."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"key {repeated[0]!r} appears twice in one object")
    return dict(pairs)


def _from_body(body: dict[str, Any]) -> SavedPlan:
    trustees = tuple(
        Trustee(Identity(str(record["identity"])), bool(record["automapping"]), str(record["role"]))
        for record in body["trustees"]
    )
    for planned in trustees:
        if wildcard_problem(planned.identity.value) is not None:
            raise PlanContentError(f"trustee: {wildcard_problem(planned.identity.value)}")
    by_identity = {trustee.identity: trustee for trustee in trustees}
    changes = []
    pairs: set[tuple[Identity, Identity]] = set()
    for number, record in enumerate(body["changes"], start=1):
        state = ItemState(record["state"])
        if state not in (ItemState.TO_ADD, ItemState.TO_REMOVE):
            raise PlanContentError(f"change {number}: state {state.value} is not a change")
        trustee = by_identity.get(Identity(str(record["trustee"])))
        if trustee is None:
            raise PlanContentError(f"change {number}: trustee {record['trustee']!r} is not among the plan's trustees")
        mailbox = Identity(str(record["mailbox"]))
        if wildcard_problem(mailbox.value) is not None:
            raise PlanContentError(f"change {number}: {wildcard_problem(mailbox.value)}")
        if (mailbox, trustee.identity) in pairs:
            raise PlanContentError(f"change {number}: ({mailbox}, {trustee.identity}) is planned twice")
        pairs.add((mailbox, trustee.identity))
        changes.append(PlannedChange(mailbox, trustee, state, str(record["detail"]), str(record["mailbox_key"])))
    action = Action(body["action"])
    if action not in APPLICABLE:
        raise ValueError(f"action {action.value} is not applied from a plan")
    endpoint = dict(body["endpoint"])
    if set(endpoint) != {*ENDPOINT_FIELDS, TENANT}:
        raise PlanContentError("endpoint fields differ from this version's")
    if endpoint["mode"] not in ("command", "script") or endpoint["backend"] not in ("psrp", "exo"):
        raise PlanContentError(f"endpoint mode {endpoint['mode']!r} or backend {endpoint['backend']!r}")
    if endpoint["port"] is not None and not (isinstance(endpoint["port"], int) and 0 < endpoint["port"] < 65536):
        raise PlanContentError(f"endpoint port {endpoint['port']!r}")
    batch_size = body["batch_size"]
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 5000:
        raise PlanContentError(f"batch_size {batch_size!r} (1 to 5000)")
    return SavedPlan(
        action=action,
        created=str(body["created"]),
        tool_version=str(body["tool_version"]),
        endpoint=endpoint,
        batch_size=batch_size,
        automapping=bool(body["automapping"]),
        facts={str(k): str(v) for k, v in dict(body["facts"]).items()},
        trustees=trustees,
        changes=tuple(changes),
        unchanged={str(k): int(v) for k, v in dict(body["unchanged"]).items()},
    )


@dataclass
class PlanCapture:
    """The ``planned`` hook of ``provisioner plan``: the run's plan as a :class:`SavedPlan`, with each changed
    mailbox's GUID read now (one ``ids | Get-Mailbox`` per batch) so that apply can tell it is still the same one."""

    connection: Connection
    saved: SavedPlan | None = None

    def __call__(self, plan: Plan, engine: Engine) -> None:
        found = engine.mailboxes(list(dict.fromkeys(item.mailbox for item in plan.items if item.changes)))
        keys = {mailbox: ref.key for mailbox, ref in found.items() if isinstance(ref, MailboxRef)}
        self.saved = SavedPlan.of(plan, self.connection, engine.session.facts, engine.options, keys,
                                  datetime.now(UTC).replace(microsecond=0))


def review_script(saved: SavedPlan, connection: Connection) -> str:
    """The script a reviewer reads for ``saved`` (planned on ``connection``): its changes only, with the plan's
    digest in the header, and the backend's header (on-prem server, or Exchange Online's Connect-ExchangeOnline)."""
    options = StepOptions(domain_controller=saved.endpoint.get("domain_controller"), automapping=saved.automapping)
    plan = saved.plan()
    return plan_script(plan, options, connection, now=datetime.fromisoformat(saved.created), digest=saved.digest)
