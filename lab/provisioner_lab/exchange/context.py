"""What a cmdlet sees while it runs: the directory, its bound parameters, and the error/warning streams.

Also holds the identity resolution shared by the cmdlets (mailbox, trustee, OU, group) with the errors real
Exchange writes for unknown or ambiguous identities.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner_lab.api import LabError, LabObject
from provisioner_lab.exchange.binding import BoundCommand
from provisioner_lab.exchange.directory import Directory, OrganizationalUnit, PermissionEntry, Recipient
from provisioner_lab.exchange.errors import (
    AMBIGUOUS,
    HOST,
    NON_INTERACTIVE_MESSAGE,
    NOT_FOUND,
    CmdletError,
    engine_error,
    exchange_error,
)

_SID = re.compile(r"^S-1-\d+(-\d+)+$", re.IGNORECASE)
DEFAULT_RESULT_SIZE = 1000
PERMISSION_CMDLETS = frozenset({"Add-MailboxPermission", "Get-MailboxPermission", "Remove-MailboxPermission"})

TRUNCATED_DEFAULT = (
    "By default, only the first 1000 items are returned. Use the ResultSize parameter to specify the number of "
    "items returned. To return all items, specify \"-ResultSize Unlimited\". Be aware that, depending on the "
    "actual number of items, returning all items can take a long time and consume a large amount of memory. "
    "Also, we don't recommend storing the results in a variable. Instead, pipe the results to another task or "
    "script to perform batch changes."
)
TRUNCATED_EXPLICIT = (
    "There are more results available than are currently displayed. To view them, increase the value for the "
    "ResultSize parameter."
)


@dataclass
class Streams:
    """Non-output streams of one command."""

    errors: list[LabError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verbose: list[str] = field(default_factory=list)


_KEY_PROPERTIES = ("ObjectGuid", "Guid", "SecurityIdentifier", "DistinguishedName", "RawIdentity",
                   "PrimarySmtpAddress", "Name")


def _properties(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, LabObject):
        return value.properties
    if isinstance(value, Mapping):
        return value
    return None


def identity_text(value: Any) -> str:
    """How an identity value reads in messages (``ToString`` of objects; a property bag's best name)."""
    if isinstance(value, LabObject):
        return value.to_string
    props = _properties(value)
    if props is not None:
        if props.get("Identity") is not None:
            return identity_text(props["Identity"])
        for name in ("DistinguishedName", "RawIdentity", "Name"):
            if props.get(name):
                return str(props[name])
    return str(value)


def identity_keys(value: Any) -> list[str]:
    """Lookup keys for an identity value, most specific first (GUID, SID, DN, then names and text).

    Objects come back as :class:`LabObject` from an earlier command of the same pipeline, or as plain
    property bags (dicts) when a client sends deserialised objects as pipeline input.
    """
    props = _properties(value)
    if props is None:
        return [str(value)]
    keys: list[str] = []
    inner = props.get("Identity")
    if inner is not None and inner is not value:
        keys += identity_keys(inner)
    keys += [str(props[name]) for name in _KEY_PROPERTIES if props.get(name)]
    if isinstance(value, LabObject):
        keys.append(value.to_string)
    return keys or [identity_text(value)]


#: A change of a mailbox's automapping list (msExchDelegateListLink), run with the Context it is applied in.
Delegation = Callable[["Context"], None]


def wildcard(text: str) -> re.Pattern[str]:
    """An identity with ``*`` as Exchange matches it: anchored, case-insensitive, ``*`` any run of characters."""
    return re.compile("^" + ".*".join(re.escape(part) for part in text.split("*")) + "$", re.IGNORECASE)


@dataclass
class Context:
    directory: Directory
    bound: BoundCommand
    now: float
    server: str
    timestamp: str
    replication_delay: float
    on_write: Callable[[], None]
    streams: Streams = field(default_factory=Streams)
    #: With pipeline input, Add-/Remove-MailboxPermission change the delegate list once, in EndProcessing, for
    #: the last record (its DataObject and SecurityPrincipal) [code: SetMailboxPermissionTaskBase]: the engine
    #: passes a holder here, and keeps only the last record's change.
    deferred: list[Delegation] | None = None

    def delegate(self, change: Delegation) -> None:
        """Apply a delegate-list change now, or hold it for the end of the pipeline input (see ``deferred``)."""
        if self.deferred is None:
            change(self)
        else:
            self.deferred[:] = [change]

    # ---------------------------------------------------------------- streams
    @property
    def dc(self) -> str:
        value = self.bound.get("DomainController")
        return str(value) if value else self.directory.default_dc

    def error(self, record: LabError) -> None:
        self.streams.errors.append(record)

    def warn(self, text: str) -> None:
        self.streams.warnings.append(text)

    def say(self, text: str) -> None:
        self.streams.verbose.append(text)

    def exchange_error(self, message: str, exception_type: str, category: str, target: Any = None) -> LabError:
        return exchange_error(
            message, exception_type, category, cmdlet=self.bound.cmdlet, server=self.server,
            timestamp=self.timestamp, target=target, bound=self.bound.display(),
        )

    def fail(self, message: str, exception_type: str, category: str, target: Any = None) -> CmdletError:
        return CmdletError(self.exchange_error(message, exception_type, category, target), terminating=True)

    def unsupported(self) -> CmdletError:
        return self.fail(
            f"The lab does not implement the {self.bound.parameter_set} parameter set of {self.bound.cmdlet}.",
            "System.NotSupportedException", "NotImplemented",
        )

    # ---------------------------------------------------------------- checks
    def check_dc(self) -> None:
        """A named domain controller must exist (terminating error otherwise; text UNCONFIRMED)."""
        value = self.bound.get("DomainController")
        if value and self.bound.switch("IgnoreDefaultScope"):
            # [doc] the two cannot be combined; the English text is the lab's.
            raise self.fail(
                "The DomainController parameter can't be used together with the IgnoreDefaultScope parameter.",
                "System.ArgumentException", "InvalidArgument", value,
            )
        if value and str(value).lower() not in self.directory.domain_controllers:
            raise self.fail(
                f"Active Directory server {value} is not available. Error message: Active directory response: "
                "The LDAP server is unavailable.",
                "Microsoft.Exchange.Data.Directory.ADTransientException", "NotSpecified", value,
            )

    def should_process(self, *, high_impact: bool) -> bool:
        """ShouldProcess: False under -WhatIf; a prompt (which a remote host cannot show) fails the pipeline."""
        if self.bound.common.get("WhatIf"):
            return False
        confirm = self.bound.common.get("Confirm")
        if confirm is True or (high_impact and confirm is None):
            record = engine_error(
                NON_INTERACTIVE_MESSAGE, HOST, "ResourceUnavailable", "HostException",
                command=self.bound.cmdlet, bound=self.bound.display(),
            )
            raise CmdletError(record, terminating=True)
        return True

    # ---------------------------------------------------------------- resolution
    def _category(self) -> str:
        # [code] for the permission cmdlets; NotSpecified for Get-* is an UNCONFIRMED recollection.
        return "InvalidData" if self.bound.cmdlet in PERMISSION_CMDLETS else "NotSpecified"

    def matches(
        self, value: Any, accept: Callable[[Recipient], bool], scope: OrganizationalUnit | None = None
    ) -> list[Recipient]:
        """Every object ``value`` names: its first identity form that matches anything, or, for a string with
        ``*``, every object whose name, alias, display name or primary SMTP address the wildcard matches [doc]."""
        text = identity_text(value)
        found: list[Recipient] = []
        if isinstance(value, str) and "*" in text:
            pattern = wildcard(text)
            found = [r for r in self.directory.recipients
                     if accept(r) and any(pattern.match(v or "") for v in (r.name, r.alias, r.display_name,
                                                                            r.primary_smtp))]
        else:
            for key in identity_keys(value):
                found = self.directory.find(key, accept)
                if found:
                    break
        return [r for r in found if scope is None or self.directory.in_ou(r, scope)]

    def resolve_all(
        self, value: Any, accept: Callable[[Recipient], bool], scope: OrganizationalUnit | None = None
    ) -> list[Recipient]:
        """What a Get-* cmdlet acts on: every object ``value`` names, with no error for several [code:
        GetObjectWithIdentityTaskBase]; a not-found error (non-terminating) for none."""
        found = self.matches(value, accept, scope)
        if not found:
            text = identity_text(value)
            self.error(self.exchange_error(
                f"The operation couldn't be performed because object '{text}' couldn't be found on '{self.dc}'.",
                NOT_FOUND, self._category(), text,
            ))
        return found

    def resolve(
        self, value: Any, accept: Callable[[Recipient], bool], scope: OrganizationalUnit | None = None
    ) -> Recipient | None:
        """The one object ``value`` names, for the cmdlets that need one (Add-/Remove-MailboxPermission, Set-*,
        Get-DistributionGroupMember's group); writes not-found/ambiguous errors (non-terminating) and returns None."""
        found = self.resolve_all(value, accept, scope)
        if len(found) == 1:
            return found[0]
        if found:
            text = identity_text(value)
            self.error(self.exchange_error(
                f"The operation couldn't be performed because '{text}' matches multiple entries.",
                AMBIGUOUS, self._category(), text,
            ))
        return None

    def resolve_mailbox(self, value: Any, scope: OrganizationalUnit | None = None) -> Recipient | None:
        return self.resolve(value, lambda recipient: recipient.is_mailbox, scope)

    def resolve_trustee(self, value: Any) -> str | None:
        """The SID ``-User`` names (principals only; a raw SID string is taken as is, even if orphaned)."""
        text = identity_text(value)
        found: list[Recipient] = []
        for key in identity_keys(value):
            found = self.directory.find(key, lambda recipient: recipient.is_principal)
            if found:
                break
        if len(found) == 1:
            return found[0].sid
        if len(found) > 1:
            self.error(self.exchange_error(
                f"There are multiple users or groups matching the identity \"{text}\". Please specify a unique value.",
                AMBIGUOUS, "InvalidData", text,
            ))
            return None
        if _SID.match(text.strip()):
            return text.strip().upper()
        self.error(self.exchange_error(
            f"User or group \"{text}\" wasn't found. Please make sure you've typed it correctly.",
            NOT_FOUND, "InvalidData", text,
        ))
        return None

    def resolve_ou(self) -> OrganizationalUnit | None:
        value = self.bound.get("OrganizationalUnit")
        if value is None:
            return None
        text = identity_text(value)
        found = self.directory.find_ou(text)
        if len(found) == 1:
            return found[0]
        if not found:
            raise self.fail(
                f"The operation couldn't be performed because object '{text}' couldn't be found on '{self.dc}'.",
                NOT_FOUND, "NotSpecified", text,
            )
        raise self.fail(
            f"The operation couldn't be performed because '{text}' matches multiple entries.",
            AMBIGUOUS, "NotSpecified", text,
        )

    # ---------------------------------------------------------------- ACL access
    def read_acl(self, mailbox: Recipient) -> tuple[PermissionEntry, ...]:
        assert mailbox.acl is not None
        return mailbox.acl.view(self.now, self.bound.get("DomainController"))

    def write_acl(self, mailbox: Recipient, entries: Iterable[PermissionEntry]) -> None:
        assert mailbox.acl is not None
        mailbox.acl.write(entries, self.now, self.bound.get("DomainController"), self.replication_delay)
        self.on_write()

    # ---------------------------------------------------------------- ResultSize
    def limit(self, items: Sequence[Any]) -> list[Any]:
        """Apply ``-ResultSize`` (default 1000; None means Unlimited), warning when results are cut off."""
        if not self.bound.has("ResultSize"):
            size: int | None = DEFAULT_RESULT_SIZE
            warning = TRUNCATED_DEFAULT
        else:
            size = self.bound.get("ResultSize")
            warning = TRUNCATED_EXPLICIT
        if size is None or len(items) <= size:
            return list(items)
        self.warn(warning)
        return list(items[:size])
