"""Building organisations: from a TOML seed file, or generated at scale for benchmarks.

Seed file format (all keys lower-case; optional keys in brackets)::

    [organization]
    domain = "contoso.com"                      # DNS name of the single domain
    netbios = "CONTOSO"                         # gives DOMAIN\\sam account names
    domain_controllers = ["dc01.contoso.com"]   # the first is the default DC named in error texts
    [domain_sid = "S-1-5-21-..."]               # account SIDs are <domain_sid>-<rid>
    [organizational_units = ["contoso.com/Sales", ...]]   # canonical names; parents are created

    [[mailbox]]                                 # one per mailbox
    alias = "alice.wong"
    display_name = "Alice Wong"
    [ou = "contoso.com/Users"]                  # default contoso.com/Users
    [name = "..."]                              # CN; default display_name
    [type = "UserMailbox"]                      # or SharedMailbox, RoomMailbox, EquipmentMailbox, ...
    [primary_smtp = "..."]  [upn = "..."]  [sam = "..."]   # defaults: alias@domain, alias
    [department = "..."]  [custom_attribute1 = "..."] ... [custom_attribute15 = "..."]

    [[user]]                                    # a user without a mailbox (service account)
    sam = "svc-codetwo"
    display_name = "..."
    [ou = "..."]  [upn = "..."]  [name = "..."]

    [[group]]
    name = "Sales Team"
    type = "MailUniversalDistributionGroup"     # or MailUniversalSecurityGroup, UniversalSecurityGroup
    [alias = "..."]  [primary_smtp = "..."]  [ou = "..."]
    [members = ["alice.wong", "Other Group"]]   # any identity of mailboxes, users or groups (any order)

    [[permission]]                              # an explicit ACE beyond the default ones
    mailbox = "judy.nakamura"                   # any mailbox identity
    user = "CONTOSO\\svc-codetwo"              # any principal identity ... or
    sid = "S-1-5-21-...-1042"                   # ... a raw SID (an orphaned entry)
    rights = ["FullAccess"]
    [deny = false]  [inheritance = "All"]
    [automapping = false]                       # true: also in the mailbox's delegate list (UserMailbox trustee)

Every mailbox also gets the default entries (explicit NT AUTHORITY\\SELF, inherited admin Deny and system
Allow entries), see :mod:`directory`.
"""

from __future__ import annotations

import gc
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from provisioner_lab.exchange.directory import Directory, PermissionEntry, Recipient, parse_rights
from provisioner_lab.exchange.enums import INHERITANCE


class SeedError(ValueError):
    """A seed file that does not describe a valid organisation."""


def demo_seed_text() -> str:
    return resources.files("provisioner_lab").joinpath("seeds", "demo.toml").read_text("utf-8")


def load_seed(path: str | Path | None = None) -> Directory:
    """The organisation described by the TOML file at ``path`` (the shipped demo seed when None)."""
    text = demo_seed_text() if path is None else Path(path).read_text("utf-8")
    return build(tomllib.loads(text))


def _one(directory: Directory, identity: str, what: str, accept: Any = None) -> Recipient:
    found = directory.find(identity, accept or (lambda r: r.kind != "wellknown"))
    if len(found) != 1:
        raise SeedError(f"{what} {identity!r} matches {len(found)} objects")
    return found[0]


def build(data: dict[str, Any]) -> Directory:
    """The organisation described by parsed seed data (see the module docstring)."""
    org = data.get("organization") or {}
    try:
        directory = Directory(
            org["domain"], org["netbios"],
            domain_controllers=org.get("domain_controllers") or [f"dc01.{org['domain']}"],
            **({"domain_sid": org["domain_sid"]} if "domain_sid" in org else {}),
        )
    except KeyError as missing:
        raise SeedError(f"[organization] needs {missing}") from None
    for ou in org.get("organizational_units", []):
        directory.add_ou(ou)
    for row in data.get("mailbox", []):
        custom = {n: row[f"custom_attribute{n}"] for n in range(1, 16) if f"custom_attribute{n}" in row}
        directory.add_mailbox(
            row["alias"], row["display_name"], row.get("ou"), name=row.get("name"),
            recipient_type_details=row.get("type", "UserMailbox"), primary_smtp=row.get("primary_smtp"),
            upn=row.get("upn"), sam=row.get("sam"), department=row.get("department", ""), custom_attributes=custom,
        )
    for row in data.get("user", []):
        directory.add_user(
            row["sam"], row.get("display_name", row["sam"]), row.get("ou"), name=row.get("name"),
            upn=row.get("upn"), department=row.get("department", ""),
        )
    groups = [
        (row, directory.add_group(
            row["name"], row.get("ou"), row.get("type", "UniversalSecurityGroup"), alias=row.get("alias"),
            primary_smtp=row.get("primary_smtp"),
        ))
        for row in data.get("group", [])
    ]
    for row, group in groups:
        for member in row.get("members", []):
            directory.add_member(group, _one(directory, member, "group member"))
    for row in data.get("permission", []):
        mailbox = _one(directory, row["mailbox"], "mailbox", lambda r: r.is_mailbox)
        principal = None if "sid" in row else _one(directory, row["user"], "trustee", lambda r: r.is_principal)
        sid = principal.sid if principal else str(row["sid"])
        inheritance = row.get("inheritance", "All")
        if inheritance not in INHERITANCE:
            raise SeedError(f"unknown inheritance type {inheritance!r}")
        try:
            rights = parse_rights(row["rights"])
        except KeyError as bad:
            raise SeedError(f"unknown mailbox right {bad}") from None
        directory.add_entry(mailbox, PermissionEntry(sid, rights, bool(row.get("deny", False)), False, inheritance))
        if row.get("automapping") and not row.get("deny"):
            trustee = directory.by_sid.get(sid)
            if trustee is not None and trustee.recipient_type_details == "UserMailbox":
                directory.set_delegate(mailbox, sid, present=True)
    return directory


def generate(
    n_mailboxes: int,
    *,
    domain: str = "contoso.com",
    netbios: str = "CONTOSO",
    domain_controllers: Iterable[str] = ("dc01.contoso.com", "dc02.contoso.com"),
    ous: Iterable[str] = ("Staff", "Sales", "Engineering", "Finance"),
    departments: Iterable[str] = ("Sales", "Finance", "Engineering", "Legal", "IT"),
    shared_every: int = 50,
    seed: int = 0,
) -> Directory:
    """A large synthetic organisation, fast: ``user000001`` .. mailboxes spread over the OUs.

    Mailbox ``i`` has alias ``user{i:06d}``, display name ``User {i:06d}``, SMTP/UPN ``alias@domain``; every
    ``shared_every``-th one is a SharedMailbox. The trustees of the demo seed are always present:
    ``svc-codetwo`` (user without mailbox), ``sync.admin`` (mailbox) and the ``Mailbox Sync Admins`` group.
    """
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of small objects: the cyclic GC would rescan them again and again
    try:
        return _generate(n_mailboxes, domain, netbios, domain_controllers, ous, departments, shared_every, seed)
    finally:
        if collecting:
            gc.enable()


def _generate(
    n_mailboxes: int,
    domain: str,
    netbios: str,
    domain_controllers: Iterable[str],
    ous: Iterable[str],
    departments: Iterable[str],
    shared_every: int,
    seed: int,
) -> Directory:
    directory = Directory(domain, netbios, domain_controllers=domain_controllers, seed=seed)
    containers = [directory.add_ou(f"{directory.domain}/{name}").canonical for name in ous]
    department_list = list(departments)
    service = directory.add_user("svc-codetwo", "CodeTwo Sync Service", upn=f"svc-codetwo@{directory.domain}")
    admin = directory.add_mailbox("sync.admin", "Sync Admin")
    directory.add_group("Mailbox Sync Admins", members=[service, admin])
    for index in range(1, n_mailboxes + 1):
        alias = f"user{index:06d}"
        directory.add_mailbox(
            alias,
            f"User {index:06d}",
            containers[index % len(containers)],
            recipient_type_details="SharedMailbox" if shared_every and index % shared_every == 0 else "UserMailbox",
            department=department_list[index % len(department_list)],
        )
    return directory
