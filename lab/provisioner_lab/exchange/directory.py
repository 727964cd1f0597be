"""The in-memory Active Directory / Exchange organisation: recipients, principals, OUs, groups and mailbox ACLs.

Identity resolution is O(1): every recipient is indexed under each of its identity forms (alias, name,
display name, primary SMTP address, UPN, ``DOMAIN\\sam``, bare sam, GUID, Exchange GUID, DN, canonical name
and SID), lower-cased. Which *kinds* of object an identity may resolve to is decided by the caller (a mailbox
for ``MailboxIdParameter``, a user/group/well-known principal for ``SecurityPrincipalIdParameter`` ...).

Mailbox ACLs keep the explicit entries per mailbox; the inherited entries (from the mailbox database and AD)
are shared by every mailbox and appended when the ACL is read, as Get-MailboxPermission shows them. Writes
may be held back by a replication delay: each write is stored as a pending snapshot that becomes the
replicated state once its time has come, and is visible earlier only to a reader naming the writer's DC.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from provisioner_lab.exchange.enums import (
    ALL_RIGHTS,
    DISTRIBUTION_GROUP_TYPES,
    FULL_ACCESS,
    GROUP_TYPES,
    MAILBOX_RIGHTS,
    MAILBOX_TYPES,
    READ_PERMISSION,
    SECURITY_GROUP_TYPES,
)

SELF_SID = "S-1-5-10"
SYSTEM_SID = "S-1-5-18"
NETWORK_SERVICE_SID = "S-1-5-20"
EXCHANGE_GROUPS_OU = "Microsoft Exchange Security Groups"


@dataclass(frozen=True, slots=True)
class PermissionEntry:
    """One mailbox ACE: trustee SID (resolved or orphaned), MailboxRights mask, allow/deny, inheritance."""

    sid: str
    rights: int
    deny: bool = False
    inherited: bool = False
    inheritance: str = "All"

    @property
    def rights_names(self) -> list[str]:
        """The MailboxRights flags of ``rights`` by name (``["FullAccess", "ReadPermission"]``)."""
        return [name for name, bit in MAILBOX_RIGHTS.items() if self.rights & bit]


_DEFAULT_EXPLICIT = (PermissionEntry(SELF_SID, FULL_ACCESS | READ_PERMISSION, inheritance="All"),)


@dataclass(slots=True)
class _Pending:
    visible_at: float
    dc: str | None
    entries: tuple[PermissionEntry, ...]


class MailboxAcl:
    """The explicit entries of one mailbox, with not-yet-replicated writes."""

    __slots__ = ("base", "pending")

    def __init__(self, entries: Iterable[PermissionEntry]) -> None:
        self.base: tuple[PermissionEntry, ...] = entries if isinstance(entries, tuple) else tuple(entries)
        self.pending: list[_Pending] = []

    def _settle(self, now: float) -> None:
        while self.pending and self.pending[0].visible_at <= now:
            self.base = self.pending.pop(0).entries

    def view(self, now: float, dc: str | None) -> tuple[PermissionEntry, ...]:
        """The explicit entries as a reader at ``now`` using domain controller ``dc`` sees them."""
        self._settle(now)
        result = self.base
        if dc is not None:
            for pending in self.pending:
                if pending.dc is not None and pending.dc.lower() == dc.lower():
                    result = pending.entries
        return result

    def latest(self) -> tuple[PermissionEntry, ...]:
        """The last written state, replicated or not (what the writing DC holds)."""
        return self.pending[-1].entries if self.pending else self.base

    def write(self, entries: Iterable[PermissionEntry], now: float, dc: str | None, delay: float) -> None:
        snapshot = tuple(entries)
        if delay <= 0:
            self.base = snapshot
            self.pending.clear()
        else:
            self.pending.append(_Pending(now + delay, dc, snapshot))


@dataclass(frozen=True, slots=True)
class OrganizationalUnit:
    canonical: str  # contoso.com/Sales
    dn: str
    name: str
    guid: str


@dataclass(eq=False, slots=True)
class Recipient:
    """An AD object the lab knows: mailbox user, user without mailbox, group or well-known principal."""

    kind: str  # "mailbox", "user", "group" or "wellknown"
    name: str
    sid: str
    guid: str
    ou: str  # canonical name of the parent container; "" for well-known principals
    dn: str
    sam: str
    account: str  # DOMAIN\sam or NT AUTHORITY\NAME: how an ACE shows this trustee
    display_name: str
    recipient_type_details: str
    alias: str | None = None
    primary_smtp: str | None = None
    upn: str | None = None
    exchange_guid: str | None = None
    department: str = ""
    custom_attributes: dict[int, str] = field(default_factory=dict)
    members: list[Recipient] = field(default_factory=list)
    acl: MailboxAcl | None = None
    delegates: list[str] = field(default_factory=list)  # msExchDelegateListLink, as trustee SIDs
    delegate_of: int = 0  # size of msExchDelegateListBL

    @property
    def canonical_name(self) -> str:
        return f"{self.ou}/{self.name}" if self.ou else self.account

    @property
    def is_mailbox(self) -> bool:
        return self.acl is not None

    @property
    def is_principal(self) -> bool:
        """Can be a trustee: a user (with or without mailbox), a security group or a well-known principal."""
        return self.kind in ("mailbox", "user", "wellknown") or self.recipient_type_details in SECURITY_GROUP_TYPES

    @property
    def is_mail_enabled(self) -> bool:
        return self.primary_smtp is not None

    @property
    def is_distribution_group(self) -> bool:
        return self.kind == "group" and self.recipient_type_details in DISTRIBUTION_GROUP_TYPES

    @property
    def recipient_type(self) -> str:
        rtd = self.recipient_type_details
        if rtd in MAILBOX_TYPES:
            return "UserMailbox"
        if rtd in ("MailUniversalDistributionGroup", "MailUniversalSecurityGroup", "MailNonUniversalGroup"):
            return rtd
        if rtd in GROUP_TYPES:
            return "Group"
        if rtd == "MailUser":
            return "MailUser"
        return "User"

    def identity_keys(self) -> list[str]:
        """The lower-cased identity forms kept in the index (may repeat; the index ignores repeats).

        ``DOMAIN\\sam``, DN, canonical name and SID are not stored: :meth:`Directory.lookup` derives them
        from sam/name and the SID table, which halves the index of a large organisation.
        """
        keys = [self.name, self.sam, self.guid]
        if self.display_name != self.name:
            keys.append(self.display_name)
        if self.alias and self.alias != self.sam:
            keys.append(self.alias)
        if self.primary_smtp:
            keys.append(self.primary_smtp)
        if self.upn and self.upn != self.primary_smtp:
            keys.append(self.upn)
        if self.exchange_guid:
            keys.append(self.exchange_guid)
        if not self.ou:
            keys.append(self.account)
        return [key.lower() for key in keys]


_RDN_SPECIAL = re.compile(r'[,+"\\<>;=]|^[# ]| $')


def escape_rdn(value: str) -> str:
    """Escape a value for use in a DN's RDN (RFC 4514 special characters)."""
    if not _RDN_SPECIAL.search(value):
        return value
    out = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;=' or (char == "#" and index == 0) or (char == " " and index in (0, len(value) - 1)):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _first_rdn_value(dn: str) -> str:
    """The unescaped value of a DN's first RDN (``CN=O\\, Brien,OU=x`` -> ``O, Brien``)."""
    value = []
    index = dn.index("=") + 1
    while index < len(dn):
        char = dn[index]
        if char == "\\" and index + 1 < len(dn):
            value.append(dn[index + 1])
            index += 2
            continue
        if char == ",":
            break
        value.append(char)
        index += 1
    return "".join(value)


def _default_inherited(netbios: str, sid_of: Callable[[str], str]) -> tuple[PermissionEntry, ...]:
    """The inherited entries Get-MailboxPermission shows on every mailbox (names [doc], exact rights approx.)."""

    def entry(name: str, rights: int, deny: bool = False) -> PermissionEntry:
        return PermissionEntry(sid_of(name), rights, deny=deny, inherited=True, inheritance="All")

    admins = ("Administrator", "Domain Admins", "Enterprise Admins", "Organization Management")
    rows = [entry(f"{netbios}\\{name}", FULL_ACCESS, deny=True) for name in admins]
    rows += [
        entry("NT AUTHORITY\\SYSTEM", FULL_ACCESS),
        entry("NT AUTHORITY\\NETWORK SERVICE", READ_PERMISSION),
        entry(f"{netbios}\\Exchange Servers", FULL_ACCESS | READ_PERMISSION),
        entry(f"{netbios}\\Exchange Trusted Subsystem", ALL_RIGHTS),
        entry(f"{netbios}\\Managed Availability Servers", READ_PERMISSION),
    ]
    rows += [entry(f"{netbios}\\{name}", ALL_RIGHTS) for name in admins]
    return tuple(rows)


class Directory:
    """One forest with one domain, its Exchange recipients and their mailbox permissions."""

    def __init__(
        self,
        domain: str = "contoso.com",
        netbios: str = "CONTOSO",
        *,
        domain_controllers: Iterable[str] = ("dc01.contoso.com",),
        domain_sid: str = "S-1-5-21-3623811015-3361044348-30300820",
        seed: int = 0,
    ) -> None:
        self.domain = domain.lower()
        self.netbios = netbios.upper()
        self.domain_sid = domain_sid
        self.domain_controllers = [dc.lower() for dc in domain_controllers]
        if not self.domain_controllers:
            raise ValueError("at least one domain controller is needed")
        self.domain_dn = ",".join(f"DC={part}" for part in self.domain.split("."))
        self._random = random.Random(seed)
        prefix = f"{self._random.getrandbits(80):020x}"
        self._guid_prefix = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[13:16]}-a{prefix[17:20]}-"
        self._guid_counter = self._random.getrandbits(32) << 8
        self._next_rid = 1104
        self.recipients: list[Recipient] = []
        self.by_sid: dict[str, Recipient] = {}
        self._index: dict[str, Recipient | list[Recipient]] = {}
        self.ous: dict[str, OrganizationalUnit] = {}
        self._ou_index: dict[str, list[OrganizationalUnit]] = {}
        self.add_ou(f"{self.domain}/Users")
        self.add_ou(f"{self.domain}/{EXCHANGE_GROUPS_OU}")
        self._add_builtin_principals()
        self.inherited_defaults = _default_inherited(self.netbios, self._sid_of_account)

    # ----------------------------------------------------------------- construction
    @property
    def default_dc(self) -> str:
        return self.domain_controllers[0]

    def new_guid(self) -> str:
        # A random per-directory prefix and a counter: unique, deterministic for a seed, and cheap to make.
        self._guid_counter += 1
        return f"{self._guid_prefix}{self._guid_counter:012x}"

    def new_sid(self) -> str:
        self._next_rid += 1
        return f"{self.domain_sid}-{self._next_rid}"

    def _sid_of_account(self, account: str) -> str:
        found = [r for r in self.lookup(account) if r.account.lower() == account.lower()]
        if len(found) != 1:
            raise KeyError(account)
        return found[0].sid

    def _add_builtin_principals(self) -> None:
        for name, sid in (("SELF", SELF_SID), ("SYSTEM", SYSTEM_SID), ("NETWORK SERVICE", NETWORK_SERVICE_SID)):
            self._register(
                Recipient(kind="wellknown", name=name, sid=sid, guid=self.new_guid(), ou="",
                          dn=f"CN={sid},CN=WellKnown Security Principals,CN=Configuration,{self.domain_dn}",
                          sam=name, account=f"NT AUTHORITY\\{name}", display_name=name,
                          recipient_type_details="User")
            )
        users = f"{self.domain}/Users"
        self.add_user("Administrator", "Administrator", users, sid=f"{self.domain_sid}-500")
        self.add_group("Domain Admins", users, "UniversalSecurityGroup", sid=f"{self.domain_sid}-512")
        self.add_group("Enterprise Admins", users, "UniversalSecurityGroup", sid=f"{self.domain_sid}-519")
        exchange = f"{self.domain}/{EXCHANGE_GROUPS_OU}"
        for group in ("Organization Management", "Exchange Servers", "Exchange Trusted Subsystem",
                      "Managed Availability Servers", "Recipient Management"):
            self.add_group(group, exchange, "UniversalSecurityGroup")

    def add_ou(self, canonical: str) -> OrganizationalUnit:
        """Add an OU (or container) by canonical name, e.g. ``contoso.com/Sales/EMEA``; parents are created."""
        parts = [part for part in canonical.strip("/").split("/") if part]
        if not parts or parts[0].lower() != self.domain:
            raise ValueError(f"OU {canonical!r} is not in domain {self.domain}")
        existing = self.ous.get(canonical.lower())
        if existing:
            return existing
        if len(parts) > 2:
            self.add_ou("/".join(parts[:-1]))
        rdns = []
        for depth, part in enumerate(parts[1:]):
            prefix = "CN" if depth == 0 and part.lower() == "users" else "OU"
            rdns.append(f"{prefix}={escape_rdn(part)}")
        dn = ",".join([*reversed(rdns), self.domain_dn])
        ou = OrganizationalUnit("/".join(parts), dn, parts[-1], self.new_guid())
        self.ous[ou.canonical.lower()] = ou
        for key in {ou.canonical.lower(), ou.dn.lower(), ou.name.lower(), ou.guid}:
            self._ou_index.setdefault(key, []).append(ou)
        return ou

    def _container(self, ou: str) -> OrganizationalUnit:
        found = self.ous.get(ou.lower())
        return found if found else self.add_ou(ou)

    def _register(self, recipient: Recipient) -> Recipient:
        index = self._index
        for key in recipient.identity_keys():
            current = index.setdefault(key, recipient)
            if current is recipient:
                continue
            if isinstance(current, list):
                if recipient not in current:
                    current.append(recipient)
            else:
                index[key] = [current, recipient]
        self.recipients.append(recipient)
        self.by_sid[recipient.sid] = recipient
        return recipient

    def add_mailbox(
        self,
        alias: str,
        display_name: str,
        ou: str | None = None,
        *,
        name: str | None = None,
        recipient_type_details: str = "UserMailbox",
        primary_smtp: str | None = None,
        upn: str | None = None,
        sam: str | None = None,
        department: str = "",
        custom_attributes: dict[int, str] | None = None,
        sid: str | None = None,
    ) -> Recipient:
        """Add a mailbox with the default explicit ``NT AUTHORITY\\SELF`` FullAccess, ReadPermission entry."""
        if recipient_type_details not in MAILBOX_TYPES:
            raise ValueError(f"{recipient_type_details} is not a mailbox type")
        container = self._container(ou or f"{self.domain}/Users")
        name = name or display_name
        sam = sam or alias[:20]
        smtp = primary_smtp or f"{alias}@{self.domain}"
        upn = upn or (smtp if recipient_type_details == "UserMailbox" else f"{alias}@{self.domain}")
        recipient = Recipient(
            kind="mailbox", name=name, sid=sid or self.new_sid(), guid=self.new_guid(), ou=container.canonical,
            dn=f"CN={escape_rdn(name)},{container.dn}", sam=sam, account=f"{self.netbios}\\{sam}",
            display_name=display_name, recipient_type_details=recipient_type_details, alias=alias,
            primary_smtp=smtp, upn=upn,
            exchange_guid=self.new_guid(), department=department, custom_attributes=dict(custom_attributes or {}),
            acl=MailboxAcl(_DEFAULT_EXPLICIT),
        )
        return self._register(recipient)

    def add_user(
        self,
        sam: str,
        display_name: str,
        ou: str | None = None,
        *,
        name: str | None = None,
        upn: str | None = None,
        department: str = "",
        sid: str | None = None,
    ) -> Recipient:
        """Add a user account without a mailbox (e.g. a service account)."""
        container = self._container(ou or f"{self.domain}/Users")
        name = name or display_name
        return self._register(
            Recipient(
                kind="user", name=name, sid=sid or self.new_sid(), guid=self.new_guid(), ou=container.canonical,
                dn=f"CN={escape_rdn(name)},{container.dn}", sam=sam, account=f"{self.netbios}\\{sam}",
                display_name=display_name, recipient_type_details="User", upn=upn or f"{sam}@{self.domain}",
                department=department,
            )
        )

    def add_group(
        self,
        name: str,
        ou: str | None = None,
        group_type: str = "UniversalSecurityGroup",
        *,
        alias: str | None = None,
        primary_smtp: str | None = None,
        display_name: str | None = None,
        sam: str | None = None,
        members: Iterable[Recipient] = (),
        sid: str | None = None,
    ) -> Recipient:
        """Add a group; mail-enabled types (``MailUniversal*``) get an alias and SMTP address."""
        if group_type not in GROUP_TYPES:
            raise ValueError(f"{group_type} is not a group type")
        container = self._container(ou or f"{self.domain}/Users")
        mail_enabled = group_type.startswith("Mail")
        if mail_enabled:
            alias = alias or "".join(char for char in name if char.isalnum() or char in "-_.")
            primary_smtp = primary_smtp or f"{alias}@{self.domain}"
        else:
            alias = primary_smtp = None
        sam = sam or name
        return self._register(
            Recipient(
                kind="group", name=name, sid=sid or self.new_sid(), guid=self.new_guid(), ou=container.canonical,
                dn=f"CN={escape_rdn(name)},{container.dn}", sam=sam, account=f"{self.netbios}\\{sam}",
                display_name=display_name or name, recipient_type_details=group_type, alias=alias,
                primary_smtp=primary_smtp, members=list(members),
            )
        )

    def add_member(self, group: Recipient, member: Recipient) -> None:
        if group.kind != "group":
            raise ValueError(f"{group.name} is not a group")
        if member not in group.members:
            group.members.append(member)

    def add_entry(self, mailbox: Recipient, entry: PermissionEntry) -> None:
        """Seed an explicit ACE directly (no replication delay, no delegation)."""
        if mailbox.acl is None:
            raise ValueError(f"{mailbox.name} has no mailbox")
        mailbox.acl.write([*mailbox.acl.latest(), entry], 0.0, None, 0.0)

    def set_delegate(self, mailbox: Recipient, trustee_sid: str, present: bool) -> bool:
        """Add or remove ``trustee_sid`` in the mailbox's delegate list; True when something changed."""
        trustee = self.by_sid.get(trustee_sid)
        if present and trustee_sid not in mailbox.delegates:
            mailbox.delegates.append(trustee_sid)
            if trustee:
                trustee.delegate_of += 1
            return True
        if not present and trustee_sid in mailbox.delegates:
            mailbox.delegates.remove(trustee_sid)
            if trustee:
                trustee.delegate_of -= 1
            return True
        return False

    def remove(self, recipient: Recipient) -> None:
        """Delete an object, as an admin deleting a mailbox would (tests of state that moves under a plan)."""
        for key in recipient.identity_keys():
            current = self._index.get(key)
            if current is recipient:
                del self._index[key]
            elif isinstance(current, list) and recipient in current:
                current.remove(recipient)
                if len(current) == 1:
                    self._index[key] = current[0]
        self.recipients.remove(recipient)
        self.by_sid.pop(recipient.sid, None)

    # ----------------------------------------------------------------- lookup
    def _indexed(self, key: str) -> list[Recipient]:
        found = self._index.get(key)
        if found is None:
            return []
        return list(found) if isinstance(found, list) else [found]

    def lookup(self, identity: str) -> list[Recipient]:
        """Every object having ``identity`` as one of its identity forms (case-insensitive).

        Forms: name, display name, alias, sam, primary SMTP, UPN, GUID, Exchange GUID (indexed), and
        ``DOMAIN\\sam``, DN, canonical name, SID (derived here).
        """
        key = identity.strip().lower()
        found = self._indexed(key)
        derived: list[Recipient] = []
        if key.startswith("s-1-"):
            by_sid = self.by_sid.get(key.upper())
            derived = [by_sid] if by_sid else []
        elif key.startswith("cn=") and key.endswith(self.domain_dn.lower()):
            name = _first_rdn_value(identity.strip())
            derived = [r for r in self._indexed(name.lower()) if r.dn.lower() == key]
        elif key.startswith(self.domain + "/"):
            name = key.rsplit("/", 1)[1]
            derived = [r for r in self._indexed(name) if r.canonical_name.lower() == key]
        elif "\\" in key:
            domain, _, sam = key.partition("\\")
            if domain == self.netbios.lower():
                derived = [r for r in self._indexed(sam) if r.account.lower() == key]
        for recipient in derived:
            if recipient not in found:
                found.append(recipient)
        return found

    def find(self, identity: str, accept: Callable[[Recipient], bool]) -> list[Recipient]:
        """The objects matching ``identity`` that ``accept`` allows (empty: not found; >1: ambiguous)."""
        return [recipient for recipient in self.lookup(identity) if accept(recipient)]

    def find_ou(self, identity: str) -> list[OrganizationalUnit]:
        return list(self._ou_index.get(identity.strip().lower(), []))

    def in_ou(self, recipient: Recipient, ou: OrganizationalUnit) -> bool:
        """True when the recipient is in the OU or one of its sub-OUs (subtree scope)."""
        parent = recipient.ou.lower()
        root = ou.canonical.lower()
        return parent == root or parent.startswith(root + "/")

    def account_of(self, sid: str) -> str:
        """How an ACE shows a trustee: ``DOMAIN\\account``, or the raw SID when it does not resolve."""
        principal = self.by_sid.get(sid)
        return principal.account if principal else sid

    def mailboxes(self) -> Iterator[Recipient]:
        return (recipient for recipient in self.recipients if recipient.acl is not None)

    # ----------------------------------------------------------------- inspection (tests, benchmarks)
    def mailbox(self, identity: str) -> Recipient:
        """The single mailbox ``identity`` names; KeyError when none or several do."""
        found = self.find(identity, lambda recipient: recipient.is_mailbox)
        if len(found) != 1:
            raise KeyError(f"{identity!r} matches {len(found)} mailboxes")
        return found[0]

    def principal(self, identity: str) -> Recipient:
        found = self.find(identity, lambda recipient: recipient.is_principal)
        if len(found) != 1:
            raise KeyError(f"{identity!r} matches {len(found)} principals")
        return found[0]

    def permissions_of(self, identity: str, *, include_inherited: bool = False) -> list[PermissionEntry]:
        """The mailbox's explicit entries as last written (plus the inherited defaults when asked)."""
        mailbox = self.mailbox(identity)
        assert mailbox.acl is not None
        entries = list(mailbox.acl.latest())
        if include_inherited:
            entries += self.inherited_defaults
        return entries

    def has_full_access(self, mailbox: str, trustee: str, *, include_inherited: bool = False) -> bool:
        """True when ``trustee`` holds an allow FullAccess entry on ``mailbox`` (explicit unless asked)."""
        sid = self.principal(trustee).sid
        return any(
            entry.sid == sid and not entry.deny and entry.rights & FULL_ACCESS
            for entry in self.permissions_of(mailbox, include_inherited=include_inherited)
        )

    def delegates_of(self, identity: str) -> list[str]:
        """The accounts in the mailbox's automapping list (msExchDelegateListLink)."""
        return [self.account_of(sid) for sid in self.mailbox(identity).delegates]


def parse_rights(names: Iterable[str]) -> int:
    """A MailboxRights mask from member names (exact case)."""
    mask = 0
    for name in names:
        mask |= MAILBOX_RIGHTS[name]
    return mask
