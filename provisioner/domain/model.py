"""Domain values: identities, trustees, permission entries, plan items and outcomes. Pure, no I/O."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from provisioner.domain.text import hidden_characters

MAX_IDENTITY_LENGTH = 512
"""Longer than any real identity (a DN is the longest form; AD caps CN at 64 and DNs well below this)."""


def identity_problem(raw: str) -> str | None:
    """Why ``raw`` cannot be an Exchange identity, or None if it can.

    Refused: empty or blank values (Exchange Get-* cmdlets treat an empty identity as "all objects") and values
    with no visible character at all (only whitespace, format or other invisible characters:
    :func:`provisioner.domain.text.hidden`), NUL, line breaks and any other control character (Cc), unpaired
    surrogates, the noncharacters U+FFFE/U+FFFF (XML 1.0 cannot carry them: PowerShell remoting's CLIXML would be
    unparsable), and absurd lengths.

    Format characters (Unicode category Cf: ZERO WIDTH NON-JOINER in Persian spelling, ZERO WIDTH JOINER,
    bidirectional controls, ...) are accepted: they are part of real names. The input layer warns about them
    (:func:`provisioner.domain.text.hidden_characters`) and the script renderer writes them as ``[char]`` codes.
    """
    if not raw.strip():
        return "empty identity"
    if len(raw) > MAX_IDENTITY_LENGTH:
        return f"identity is {len(raw)} characters long (at most {MAX_IDENTITY_LENGTH})"
    if raw.isascii() and raw.isprintable():
        return None  # the common case, decided without a per-character scan
    for index, char in enumerate(raw):
        problem = _char_problem(char)
        if problem is not None:
            return f"{problem} at position {index + 1}"
    if len(hidden_characters(raw)) + sum(1 for char in raw if char == " ") == len(raw):
        return "identity has no visible character (only whitespace, format or other invisible characters)"
    return None


def _char_problem(char: str) -> str | None:
    """What ``char`` is, if an identity cannot hold it."""
    if char == "\x00":
        return "NUL character"
    if char in "\r\n\u0085\u2028\u2029":
        return f"line break (U+{ord(char):04X})"
    if unicodedata.category(char) in ("Cc", "Cs"):
        return f"control character U+{ord(char):04X}"
    if char in "\ufffe\uffff":
        return f"noncharacter U+{ord(char):04X}"
    return None


def format_characters(value: str) -> list[tuple[int, str]]:
    """``(1-based position, character)`` of every format character (Unicode category Cf) in ``value``."""
    if value.isascii():
        return []
    return [(index, char) for index, char in enumerate(value, start=1) if unicodedata.category(char) == "Cf"]








@dataclass(frozen=True, order=True, slots=True)
class Identity:
    """A mailbox or trustee identity exactly as the admin wrote it. Compares case-insensitively; never empty."""

    key: str = field(init=False, repr=False, compare=True)
    value: str = field(compare=False)

    def __init__(self, value: str) -> None:
        problem = identity_problem(value)
        if problem is not None:
            raise ValueError(problem)
        object.__setattr__(self, "value", value)
        key = value.casefold()
        object.__setattr__(self, "key", value if key == value else key)  # one string when folding changes nothing

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Trustee:
    """An account that must hold Full Access: the console user, the service account or an extra trustee."""

    identity: Identity
    automapping: bool = False
    role: str = "trustee"  # "admin-user", "service-account" or "trustee": shown in reports and scripts


class AccessState(Enum):
    """What was observed for one (mailbox, trustee)."""

    PRESENT = "present"  # an explicit or inherited Allow FullAccess entry, and no Deny
    ABSENT = "absent"  # the read succeeded and found no Allow FullAccess entry
    DENIED = "denied"  # a Deny FullAccess entry for this trustee exists
    UNKNOWN = "unknown"  # the state could not be read; never treated as absent


@dataclass(frozen=True, slots=True)
class PermissionEntry:
    """One entry of Get-MailboxPermission -User <trustee>, reduced to what the planner needs."""

    access_rights: frozenset[str]
    deny: bool
    inherited: bool

    @property
    def grants_full_access(self) -> bool:
        return not self.deny and "fullaccess" in self.access_rights

    @property
    def denies_full_access(self) -> bool:
        return self.deny and "fullaccess" in self.access_rights


TRANSIENT_REASONS = ("PSRemotingTransportException", "ServerBusy", "TimeoutException")
# Exchange's own "matches multiple entries" (the cmdlets that change refuse so), and provisioner's verdict on an input
# that a Get-* cmdlet answered with several objects (Get-* returns every match and raises nothing)
AMBIGUOUS_REASONS = ("ManagementObjectAmbiguousException", "provisioner.AmbiguousIdentity")
TRANSIENT_CATEGORIES = frozenset(
    {"ResourceBusy", "ResourceUnavailable", "OperationTimeout", "LimitsExceeded", "QuotaExceeded", "ConnectionError"}
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error record as Exchange reported it: decided on by reason/category/FQEID, the message is for humans."""

    message: str
    reason: str = ""  # CategoryInfo.Reason, e.g. ManagementObjectNotFoundException
    category: str = ""  # ErrorCategory name, e.g. ObjectNotFound
    fq_error_id: str = ""
    target: str = ""  # TargetObject: usually the identity the error is about

    @property
    def not_found(self) -> bool:
        """Exchange's "couldn't be found" (ManagementObjectNotFoundException), by exception type, not by text."""
        marker = "ManagementObjectNotFoundException"
        return marker in self.reason or marker in self.fq_error_id

    @property
    def transient(self) -> bool:
        """Throttling or transport trouble: worth retrying. Not found, access denied, binding errors: never."""
        if self.definitive:
            return False
        if any(reason in self.reason or reason in self.fq_error_id for reason in TRANSIENT_REASONS):
            return True
        return self.category in TRANSIENT_CATEGORIES

    @property
    def definitive(self) -> bool:
        """The object does not exist or is ambiguous: retrying or re-reading cannot change the answer."""
        return self.not_found or self.ambiguous

    @property
    def ambiguous(self) -> bool:
        return any(marker in self.reason or marker in self.fq_error_id for marker in AMBIGUOUS_REASONS)

    def __str__(self) -> str:
        parts = [self.message]
        tag = ", ".join(part for part in (self.reason, self.fq_error_id) if part)
        if tag:
            parts.append(f"[{tag}]")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Observation:
    """What was read for one (mailbox, trustee): the relevant entries, or the error that stopped the read."""

    explicit_allow: bool = False
    inherited_allow: bool = False
    deny: bool = False
    error: ErrorInfo | None = None  # set: the state could not be read

    @classmethod
    def from_entries(cls, entries: Iterable[PermissionEntry]) -> Observation:
        explicit_allow = inherited_allow = deny = False
        for entry in entries:
            if entry.denies_full_access:
                deny = True
            elif entry.grants_full_access:
                if entry.inherited:
                    inherited_allow = True
                else:
                    explicit_allow = True
        return _readable(explicit_allow, inherited_allow, deny)

    @classmethod
    def unreadable(cls, error: ErrorInfo) -> Observation:
        return cls(error=error)

    @property
    def state(self) -> AccessState:
        if self.error is not None:
            return AccessState.UNKNOWN
        if self.deny:
            return AccessState.DENIED
        if self.explicit_allow or self.inherited_allow:
            return AccessState.PRESENT
        return AccessState.ABSENT


@functools.cache
def _readable(explicit_allow: bool, inherited_allow: bool, deny: bool) -> Observation:
    """One shared (immutable) observation per combination: a run holds one per pair, most of them alike."""
    return Observation(explicit_allow=explicit_allow, inherited_allow=inherited_allow, deny=deny)


class Action(Enum):
    GRANT = "grant"
    REVOKE = "revoke"
    AUDIT = "audit"
    REAPPLY = "reapply"
    UNDO = "undo"


class ItemState(Enum):
    """Where each (mailbox, trustee) of a plan ends up before anything runs."""

    TO_ADD = "to-add"
    ALREADY_PRESENT = "already-present"
    BLOCKED = "blocked"  # a Deny FullAccess entry exists: reported, never "fixed"
    UNKNOWN = "unknown"  # state unreadable: nothing is done, never treated as absent
    TO_REMOVE = "to-remove"
    ABSENT = "absent"  # revoke: nothing to remove
    INHERITED_ONLY = "inherited-only"  # revoke: access is inherited, Remove-MailboxPermission cannot remove it


CHANGING_STATES = frozenset({ItemState.TO_ADD, ItemState.TO_REMOVE})


PairKey = tuple[Identity, Identity]
"""(mailbox, trustee identity): the one key of a pair everywhere; compares case-insensitively as Identity does."""


def pair_key(mailbox: Identity, trustee: Trustee) -> PairKey:
    return (mailbox, trustee.identity)


@dataclass(frozen=True, slots=True)
class PlanItem:
    mailbox: Identity
    trustee: Trustee
    state: ItemState
    detail: str = ""
    error: ErrorInfo | None = None  # why the state is UNKNOWN

    @property
    def pair(self) -> PairKey:
        return pair_key(self.mailbox, self.trustee)

    @property
    def changes(self) -> bool:
        return self.state in CHANGING_STATES


@dataclass(frozen=True)
class Plan:
    action: Action
    items: tuple[PlanItem, ...]
    trustees: tuple[Trustee, ...]
    observed: bool  # False when planned offline (every grant listed, nothing read)

    @property
    def changes(self) -> tuple[PlanItem, ...]:
        return tuple(item for item in self.items if item.changes)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.state.value] = counts.get(item.state.value, 0) + 1
        return counts


class Result(Enum):
    """The one final outcome of each (mailbox, trustee): the vocabulary of every report (stderr lines, tables, JSON,
    CSV, HTML, metrics, the dry-run script's comments), documented in docs/reports.md."""

    GRANTED = "granted"
    ALREADY_PRESENT = "already-present"  # grant, reapply: Full Access was already there, nothing sent
    PRESENT = "present"  # audit: the trustee has Full Access (explicit or inherited)
    REMOVED = "removed"
    ABSENT = "absent"
    FAILED = "failed"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"
    PLANNED = "planned"  # dry-run: would be changed
    MISSING = "missing"  # audit: the trustee lacks Full Access (drift)
    INHERITED_ONLY = "inherited-only"


PROBLEM_RESULTS = frozenset({Result.FAILED, Result.BLOCKED, Result.UNKNOWN})
"""Items that went wrong or could not be decided: exit 1 on a changing run."""
ATTENTION_RESULTS = PROBLEM_RESULTS | {Result.MISSING}
"""Items someone must act on: the problems, and access an audit found missing. Every report lists them first and
counts them in its headline (:mod:`provisioner.output.summary`)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    mailbox: Identity
    trustee: Trustee
    result: Result
    detail: str = ""
    error: ErrorInfo | None = None
    warnings: tuple[str, ...] = ()

    @property
    def pair(self) -> PairKey:
        return pair_key(self.mailbox, self.trustee)


ORDER: tuple[Result, ...] = (
    Result.FAILED, Result.BLOCKED, Result.UNKNOWN, Result.MISSING,  # need attention
    Result.PLANNED, Result.GRANTED, Result.REMOVED,  # changes (planned by a dry run, or made)
    Result.PRESENT, Result.ALREADY_PRESENT, Result.ABSENT, Result.INHERITED_ONLY,  # nothing to do
)
"""The order states are listed in everywhere: what needs attention first, then changes, then the rest."""


def count_results(outcomes: Iterable[Outcome]) -> dict[Result, int]:
    """How many outcomes ended in each state, only the states that occur, in :data:`ORDER`."""
    tally: dict[Result, int] = {}
    for outcome in outcomes:
        tally[outcome.result] = tally.get(outcome.result, 0) + 1
    return {state: tally[state] for state in ORDER if state in tally}
