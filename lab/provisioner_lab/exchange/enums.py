"""The .NET enums the lab's objects carry, with their real integer values, and helpers to parse them.

Values of ``MailboxRights`` are [code] (decompiled MailboxRights.cs). ``ActiveDirectorySecurityInheritance``
is the public System.DirectoryServices enum. ``RecipientTypeDetails`` values are the Exchange 2013 enum as
remembered (UNCONFIRMED: only the names matter to the product; the integers are for realism).
"""

from __future__ import annotations

import functools

from provisioner_lab.api import LabEnum

MAILBOX_RIGHTS_TYPE = "Microsoft.Exchange.Management.RecipientTasks.MailboxRights"
INHERITANCE_TYPE = "System.DirectoryServices.ActiveDirectorySecurityInheritance"
RECIPIENT_TYPE_DETAILS_TYPE = "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails"
RECIPIENT_TYPE_TYPE = "Microsoft.Exchange.Data.Directory.Recipient.RecipientType"
OBJECT_STATE_TYPE = "Microsoft.Exchange.Data.ObjectState"

MAILBOX_RIGHTS: dict[str, int] = {
    "FullAccess": 1,
    "SendAs": 2,
    "ExternalAccount": 4,
    "DeleteItem": 65536,
    "ReadPermission": 131072,
    "ChangePermission": 262144,
    "ChangeOwner": 524288,
}
FULL_ACCESS = MAILBOX_RIGHTS["FullAccess"]
SEND_AS = MAILBOX_RIGHTS["SendAs"]
READ_PERMISSION = MAILBOX_RIGHTS["ReadPermission"]
ALL_RIGHTS = FULL_ACCESS | MAILBOX_RIGHTS["DeleteItem"] | READ_PERMISSION | 262144 | 524288

# The ActiveDirectoryRights names of the same bits, used by Exchange's removal warnings ("Rights: CreateChild").
AD_RIGHTS_NAMES: dict[int, str] = {
    1: "CreateChild",
    2: "DeleteChild",
    4: "ListChildren",
    65536: "Delete",
    131072: "ReadControl",
    262144: "WriteDacl",
    524288: "WriteOwner",
}

INHERITANCE: dict[str, int] = {"None": 0, "All": 1, "Descendents": 2, "SelfAndChildren": 3, "Children": 4}

RECIPIENT_TYPE_DETAILS: dict[str, int] = {
    "None": 0,
    "UserMailbox": 1,
    "LinkedMailbox": 2,
    "SharedMailbox": 4,
    "LegacyMailbox": 8,
    "RoomMailbox": 16,
    "EquipmentMailbox": 32,
    "MailContact": 64,
    "MailUser": 128,
    "MailUniversalDistributionGroup": 256,
    "MailNonUniversalGroup": 512,
    "MailUniversalSecurityGroup": 1024,
    "DynamicDistributionGroup": 2048,
    "PublicFolder": 4096,
    "SystemAttendantMailbox": 8192,
    "SystemMailbox": 16384,
    "MailForestContact": 32768,
    "User": 65536,
    "Contact": 131072,
    "UniversalDistributionGroup": 262144,
    "UniversalSecurityGroup": 524288,
    "NonUniversalGroup": 1048576,
    "DisabledUser": 2097152,
    "MicrosoftExchange": 4194304,
    "ArbitrationMailbox": 8388608,
    "MailboxPlan": 16777216,
    "LinkedUser": 33554432,
    "RoomList": 268435456,
    "DiscoveryMailbox": 536870912,
    "RoleGroup": 1073741824,
    "RemoteUserMailbox": 2147483648,
    "Computer": 4294967296,
    "RemoteRoomMailbox": 8589934592,
    "RemoteEquipmentMailbox": 17179869184,
    "RemoteSharedMailbox": 34359738368,
    "PublicFolderMailbox": 68719476736,
    "TeamMailbox": 137438953472,
    "RemoteTeamMailbox": 274877906944,
    "MonitoringMailbox": 549755813888,
    "GroupMailbox": 1099511627776,
    "LinkedRoomMailbox": 2199023255552,
    "AuditLogMailbox": 4398046511104,
    "RemoteGroupMailbox": 8796093022208,
    "SchedulingMailbox": 17592186044416,
    "GuestMailUser": 35184372088832,
    "AuxAuditLogMailbox": 70368744177664,
    "SupervisoryReviewPolicyMailbox": 140737488355328,
}

RECIPIENT_TYPES: dict[str, int] = {
    "Invalid": 0,
    "User": 1,
    "UserMailbox": 2,
    "MailUser": 3,
    "Contact": 4,
    "MailContact": 5,
    "Group": 6,
    "MailUniversalDistributionGroup": 7,
    "MailUniversalSecurityGroup": 8,
    "MailNonUniversalGroup": 9,
    "DynamicDistributionGroup": 10,
    "PublicFolder": 11,
    "SystemAttendantMailbox": 12,
    "SystemMailbox": 13,
    "MicrosoftExchange": 14,
    "Computer": 15,
}

MAILBOX_TYPES = frozenset(
    {"UserMailbox", "LinkedMailbox", "SharedMailbox", "LegacyMailbox", "RoomMailbox", "EquipmentMailbox",
     "DiscoveryMailbox", "TeamMailbox", "GroupMailbox", "LinkedRoomMailbox", "SchedulingMailbox"}
)
GROUP_TYPES = frozenset(
    {"MailUniversalDistributionGroup", "MailUniversalSecurityGroup", "MailNonUniversalGroup",
     "UniversalDistributionGroup", "UniversalSecurityGroup", "NonUniversalGroup", "RoleGroup"}
)
SECURITY_GROUP_TYPES = frozenset({"MailUniversalSecurityGroup", "UniversalSecurityGroup", "RoleGroup"})
DISTRIBUTION_GROUP_TYPES = frozenset(
    {"MailUniversalDistributionGroup", "MailUniversalSecurityGroup", "MailNonUniversalGroup"}
)

ENUMS: dict[str, tuple[str, dict[str, int]]] = {
    "MailboxRights": (MAILBOX_RIGHTS_TYPE, MAILBOX_RIGHTS),
    "ActiveDirectorySecurityInheritance": (INHERITANCE_TYPE, INHERITANCE),
    "RecipientTypeDetails": (RECIPIENT_TYPE_DETAILS_TYPE, RECIPIENT_TYPE_DETAILS),
    "RecipientType": (RECIPIENT_TYPE_TYPE, RECIPIENT_TYPES),
}

_FOLDED: dict[str, dict[str, str]] = {
    key: {name.lower(): name for name in values} for key, (_, values) in ENUMS.items()
}


def canonical_name(enum: str, text: str) -> str | None:
    """The properly cased member name of ``enum`` matching ``text`` case-insensitively, or None."""
    return _FOLDED[enum].get(text.strip().lower())


def enum_type_names(full_name: str) -> tuple[str, ...]:
    """The type-name list PowerShell serialises for an enum value."""
    return (full_name, "System.Enum", "System.ValueType", "System.Object")


def flags_text(mask: int, values: dict[str, int]) -> str:
    """The .NET ``[Flags]`` ToString of ``mask``: member names in value order, joined by ``", "``."""
    names = [name for name, bit in sorted(values.items(), key=lambda item: item[1]) if bit and mask & bit == bit]
    return ", ".join(names) if names else "0"


def rights_names(mask: int) -> list[str]:
    """The MailboxRights member names set in ``mask``."""
    return [name for name, bit in MAILBOX_RIGHTS.items() if mask & bit]


@functools.lru_cache(maxsize=256)
def mailbox_rights_enum(mask: int) -> LabEnum:
    """The MailboxRights value of ``mask`` (these enum values are frozen, so one instance serves every object)."""
    return LabEnum(enum_type_names(MAILBOX_RIGHTS_TYPE), mask, flags_text(mask, MAILBOX_RIGHTS))


@functools.lru_cache(maxsize=256)
def inheritance_enum(name: str) -> LabEnum:
    return LabEnum(enum_type_names(INHERITANCE_TYPE), INHERITANCE[name], name)


@functools.lru_cache(maxsize=256)
def recipient_type_details_enum(name: str) -> LabEnum:
    return LabEnum(enum_type_names(RECIPIENT_TYPE_DETAILS_TYPE), RECIPIENT_TYPE_DETAILS[name], name)


@functools.lru_cache(maxsize=256)
def recipient_type_enum(name: str) -> LabEnum:
    return LabEnum(enum_type_names(RECIPIENT_TYPE_TYPE), RECIPIENT_TYPES[name], name)


@functools.lru_cache(maxsize=256)
def object_state_enum() -> LabEnum:
    """ConfigurableObject.ObjectState of an object read from AD (``Unchanged``; integer UNCONFIRMED)."""
    return LabEnum(enum_type_names(OBJECT_STATE_TYPE), 1, "Unchanged")


def ad_rights_text(mask: int) -> str:
    """The ActiveDirectoryRights text for a MailboxRights mask, as Exchange's ACE warnings print it."""
    return ", ".join(name for bit, name in sorted(AD_RIGHTS_NAMES.items()) if mask & bit)
