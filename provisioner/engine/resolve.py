"""Targets resolved live on Exchange: selectors, explicit identities, exclusions, and the prune scan.

Everything here is read-only and runs structured commands only (NoLanguage endpoints):

- an OU selector: ``Get-Mailbox -OrganizationalUnit OU -RecipientTypeDetails T -ResultSize Unlimited``;
- a filter selector: ``Get-Mailbox -Filter F -RecipientTypeDetails T -ResultSize Unlimited``;
- a group selector: ``Get-DistributionGroupMember -Identity G -ResultSize Unlimited``, breadth first; members
  that are groups are expanded in turn (each group once, by GUID, so membership loops end);
- explicit identities: ``ids | Get-Mailbox`` (the identities as pipeline input: one invocation, one statement, so
  PowerShell 2.0 runs it too); each input outputs exactly one mailbox, in input order, or a "not found"/"ambiguous"
  error naming it (TargetObject). When outputs and errors cannot be matched to the inputs with certainty, the batch
  is resolved again one identity per pipeline;
- the prune scan: ``Get-Mailbox -ResultSize Unlimited | Get-MailboxPermission -User T`` per managed trustee.

Each read ends in ``| Select-Object -Property`` with the properties read here (:data:`MAILBOX_PROPERTIES`, the ACE's
for the prune scan) where the session has it (:func:`provisioner.engine.shapes.projected`).

Mailboxes are keyed by their GUID (falling back to the DN), never by display names. A selector whose read fails
stops the run: an empty or partial answer must never be mistaken for "no mailboxes" (that would prune access).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from provisioner.domain.model import ErrorInfo, Identity, Trustee
from provisioner.engine import shapes
from provisioner.errors import ProvisionerError
from provisioner.inputs.config import Selector
from provisioner.powershell import steps as step_builders
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import Command, StepOptions
from provisioner.transport import records
from provisioner.transport.runner import Raw, Runner, TransportLost

RESOLVE_BATCH = 2000
#: What :func:`mailbox_ref` reads of a Mailbox object (the one list: a projected lookup asks for these only), and
#: what a group selector reads of each member besides.
MAILBOX_PROPERTIES = ("Identity", "Guid", "DistinguishedName", "Alias", "PrimarySmtpAddress", "UserPrincipalName",
                      "SamAccountName", "Name", "DisplayName", "LegacyExchangeDN")
MEMBER_PROPERTIES = (*MAILBOX_PROPERTIES, "RecipientType", "RecipientTypeDetails")


class SelectorFailed(ProvisionerError):
    """A selector could not be read completely: nothing is changed."""


@dataclass(frozen=True, slots=True)
class MailboxRef:
    """A mailbox as Exchange identifies it, with the names an explicit identity or exclusion may use."""

    key: str  # GUID (or DN when no GUID is shown), case-folded
    identity: Identity  # what commands and reports use
    dn: str
    # case-folded, each once: alias, primary SMTP, UPN, DN, GUID, sAMAccountName (tuples, not sets: a run holds one
    # ref per target, and a tuple of six is a third of a frozenset's size; membership is six comparisons either way)
    names: tuple[str, ...]
    display_name: str = ""
    primary_smtp: str = ""
    legacy_dn: str = ""  # LegacyExchangeDN: the X.500 address a MAPI profile knows the mailbox by
    wire_key: str = ""  # the object's Identity as ACEs of this mailbox carry it (shapes.identity_key)
    labels: tuple[str, ...] = ()  # case-folded Name and DisplayName, each once: inputs may name a mailbox so too

    @property
    def guid_identity(self) -> Identity:
        """The identity that names this mailbox and no other: its GUID (else its DN)."""
        return Identity(self.key)

    @property
    def readable(self) -> str:
        """How people tell this mailbox apart: its primary SMTP address (unique), else its DN or GUID."""
        return self.primary_smtp or self.dn or self.key

    def answers_to(self, given: str) -> bool:
        """Whether ``given`` is one of the names this mailbox answers to (exact forms, case-insensitive)."""
        text = given.strip().casefold()
        return text in self.names or text in self.labels


def _text(props: dict[str, Any], name: str) -> str:
    value = props.get(name)
    return "" if value is None else str(value)


def _distinct(props: dict[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """The case-folded values of ``names`` that are not empty, each once, in that order."""
    return tuple(dict.fromkeys(folded for name in names if (folded := _folded(_text(props, name)))))


def _folded(text: str) -> str:
    """``text.casefold()``, the same string object when folding changes nothing (a run keeps one ref per target)."""
    folded = text.casefold()
    return text if folded == text else folded


def mailbox_ref(obj: Any, given: str | None = None) -> MailboxRef | None:
    """A Mailbox or ReducedRecipient object as a MailboxRef; None when it has no GUID and no DN."""
    props = dict(records.properties(obj))
    guid, dn = _text(props, "Guid"), _text(props, "DistinguishedName")
    if not guid and not dn:
        return None
    names = _distinct(props, ("Alias", "PrimarySmtpAddress", "UserPrincipalName", "DistinguishedName", "Guid",
                              "SamAccountName"))
    shown = given or _text(props, "PrimarySmtpAddress") or dn or guid
    labels = _distinct(props, ("Name", "DisplayName"))
    return MailboxRef(_folded(guid or dn), Identity(shown), dn, names, _text(props, "DisplayName"),
                      _text(props, "PrimarySmtpAddress"), _text(props, "LegacyExchangeDN"), shapes.identity_key(obj),
                      labels)


def ambiguous(identity: Identity, refs: Sequence[MailboxRef]) -> ErrorInfo:
    """One input that Exchange answered with several mailboxes: nothing may be written for it."""
    shown = ", ".join(sorted(ref.readable for ref in refs))
    return ErrorInfo(f"'{identity}' matches {len(refs)} mailboxes ({shown}): give the GUID, DN or primary SMTP "
                     "address of the one you mean", reason="provisioner.AmbiguousIdentity", category="InvalidData",
                     target=identity.value)


def ace_mailbox_key(obj: Any) -> tuple[str, str] | None:
    """(key, identity to address it by) of the mailbox an ACE object belongs to, from its Identity (ADObjectId)."""
    identity = records.properties(obj).get("Identity")
    props = dict(records.properties(identity)) if identity is not None else {}
    guid, dn = _text(props, "ObjectGuid"), _text(props, "DistinguishedName")
    if guid or dn:
        return (guid or dn).casefold(), dn or guid
    return None


def wildcard(identity: Identity) -> ErrorInfo:
    """Exchange expands * in identities (even for the cmdlets that change), so such an input is never sent."""
    return ErrorInfo(f"'{identity}' contains *, which Exchange expands to every matching mailbox: give the GUID, DN "
                     "or primary SMTP address", reason="provisioner.AmbiguousIdentity", category="InvalidArgument",
                     target=identity.value)


def _group_by_input(inputs: Sequence[Identity], refs: Sequence[MailboxRef]) -> list[list[MailboxRef]] | None:
    """The outputs of ``inputs | Get-Mailbox`` per input. Get-Mailbox answers each input in turn with every mailbox
    it names (none for a not-found input, which wrote an error instead), so outputs come in contiguous runs, one per
    input: a run is pinned on its input when the input is one of the names its mailboxes answer to. One output per
    input is pinned by position alone. None: not certain (a name form this cannot check, e.g. a canonical name)."""
    if len(refs) == len(inputs):
        return [[ref] for ref in refs]
    groups: list[list[MailboxRef]] = [[] for _ in inputs]
    position = 0
    for ref in refs:
        while position < len(inputs) and not ref.answers_to(inputs[position].value):
            if not groups[position]:
                return None  # an input that found nothing would have written an error
            position += 1
        if position == len(inputs):
            return None
        groups[position].append(ref)
    return groups if all(groups) else None


def _is_group(props: dict[str, Any]) -> bool:
    return "group" in _text(props, "RecipientType").casefold()


@dataclass
class Resolver:
    runner: Runner
    options: StepOptions
    notes: list[str] = field(default_factory=list)
    batch: int = RESOLVE_BATCH  #: identities per ``ids | Get-Mailbox`` (the engine's read size)

    def _checked(self, what: str, chain: Sequence[Command], properties: Sequence[str]) -> Raw:
        result = shapes.projected(self.runner, chain, properties)
        error = result.first_error
        if error is not None and error.transient:
            raise TransportLost(f"{what}: {error}")  # throttled or cut off: the caller retries
        if error is not None:
            raise SelectorFailed(f"{what} could not be read, so nothing was changed: {error}")
        return result

    def selector(self, selector: Selector) -> list[MailboxRef]:
        types = tuple(Bare(name) for name in selector.recipient_type_details)
        if selector.kind == "group":
            return self._group(selector)
        parameter = "OrganizationalUnit" if selector.kind == "organizational_unit" else "Filter"
        command = step_builders.command("Get-Mailbox", (parameter, selector.value), ("RecipientTypeDetails", types),
                                        ("ResultSize", "Unlimited"), options=self.options)
        result = self._checked(f"selector {selector}", [command], MAILBOX_PROPERTIES)
        refs = [mailbox_ref(obj) for obj in result.output]
        return [ref for ref in refs if ref is not None]

    def _group(self, selector: Selector) -> list[MailboxRef]:
        wanted = {name.casefold() for name in selector.recipient_type_details}
        seen_groups: set[str] = set()
        found: list[MailboxRef] = []
        queue: deque[str] = deque([selector.value])
        while queue:
            group = queue.popleft()
            command = step_builders.command("Get-DistributionGroupMember", ("Identity", group),
                                            ("ResultSize", "Unlimited"), options=self.options)
            result = self._checked(f"selector {selector} (group {group!r})", [command], MEMBER_PROPERTIES)
            for obj in result.output:
                props = dict(records.properties(obj))
                if _is_group(props):
                    key = (_text(props, "Guid") or _text(props, "DistinguishedName")).casefold()
                    if key and key not in seen_groups:
                        seen_groups.add(key)
                        queue.append(_text(props, "Guid") or _text(props, "DistinguishedName"))
                    continue
                if _text(props, "RecipientTypeDetails").casefold() in wanted:
                    ref = mailbox_ref(obj)
                    if ref is not None:
                        found.append(ref)
        return found

    def identities(self, identities: Sequence[Identity]) -> dict[Identity, MailboxRef | ErrorInfo]:
        """Each explicit identity's mailbox, or the error that says why it has none."""
        resolved: dict[Identity, MailboxRef | ErrorInfo] = {
            identity: wildcard(identity) for identity in identities if "*" in identity.value}
        plain = [identity for identity in identities if identity not in resolved]
        for start in range(0, len(plain), self.batch):
            batch = list(plain[start : start + self.batch])
            matched = self._batch(batch)
            if matched is None:
                matched = self._each(batch)
            resolved.update(matched)
        return resolved

    def _each(self, batch: list[Identity]) -> dict[Identity, MailboxRef | ErrorInfo]:
        """One ``Get-Mailbox -Identity X`` per identity, each judged on its own result (sent together where the
        runner can: a REST backend's $batch)."""
        chains = [[step_builders.command("Get-Mailbox", ("Identity", identity.value), options=self.options)]
                  for identity in batch]
        raws = shapes.projected_each(self.runner, chains, MAILBOX_PROPERTIES)
        return {identity: self._one_result(identity, raw) for identity, raw in zip(batch, raws, strict=True)}

    def _batch(self, batch: list[Identity]) -> dict[Identity, MailboxRef | ErrorInfo] | None:
        if len(batch) < 2 or not self.runner.piping:
            return None
        result = shapes.projected(self.runner, [step_builders.lookup(self.options)], MAILBOX_PROPERTIES,
                                  input=[identity.value for identity in batch])
        errors = [error for error, _ in result.errors] + ([result.failure[0]] if result.failure else [])
        if any(error.transient for error in errors):
            raise TransportLost(f"resolving targets: {next(e for e in errors if e.transient)}")
        if result.failure is not None:
            return None
        located = shapes.locate_errors(result, batch, Identity("-"))
        if located.other or located.trustee_errors or not all(e.definitive for e in located.lookups.values()):
            return None  # an error we cannot pin on one input: resolve one by one
        remaining = [index for index in range(len(batch)) if index not in located.lookups]
        matched: dict[Identity, MailboxRef | ErrorInfo] = {batch[i]: e for i, e in located.lookups.items()}
        refs = [mailbox_ref(obj) for obj in result.output]
        if any(ref is None for ref in refs):
            return None
        groups = _group_by_input([batch[i] for i in remaining], [ref for ref in refs if ref is not None])
        if groups is None:
            return None  # outputs that cannot be pinned on inputs with certainty: resolve one by one
        for index, group in zip(remaining, groups, strict=True):
            identity = batch[index]
            matched[identity] = replace(group[0], identity=identity) if len(group) == 1 else ambiguous(identity, group)
        return matched

    def _one_result(self, identity: Identity, result: Raw) -> MailboxRef | ErrorInfo:
        error = result.first_error
        if error is not None and error.transient:
            raise TransportLost(f"resolving {identity}: {error}")
        if error is not None:
            return error
        refs = [mailbox_ref(obj, identity.value) for obj in result.output]
        found = [ref for ref in refs if ref is not None]
        if len(found) != len(refs) or not found:
            return ErrorInfo(f"{identity} resolved to {len(refs)} unreadable mailbox objects", category="InvalidResult")
        return found[0] if len(found) == 1 else ambiguous(identity, found)

    def prune_candidates(self, trustees: Iterable[Trustee]) -> dict[Identity, list[tuple[str, str]]]:
        """Per trustee: (mailbox key, identity) of every mailbox where it holds explicit, allow FullAccess."""
        found: dict[Identity, list[tuple[str, str]]] = {}
        for trustee in trustees:
            chain = [
                step_builders.command("Get-Mailbox", ("ResultSize", "Unlimited"), options=self.options),
                step_builders.command("Get-MailboxPermission", ("User", trustee.identity.value), options=self.options),
            ]
            result = self._checked(f"the prune scan for {trustee.identity}", chain, shapes.ACE_PROPERTIES)
            entries: list[tuple[str, str]] = []
            for obj in result.output:
                entry = records.permission_entry(obj)
                where = ace_mailbox_key(obj)
                if entry is None or where is None:
                    raise SelectorFailed(f"the prune scan for {trustee.identity} returned an unreadable entry")
                if entry.grants_full_access and not entry.inherited:
                    entries.append(where)
            # two explicit Allow entries of one trustee (e.g. InheritanceType All and SelfAndChildren) are one
            # mailbox to prune: one removal step (Remove-MailboxPermission removes the trustee's FullAccess)
            found[trustee.identity] = list(dict.fromkeys(entries))
        return found
