"""Output objects shaped as Exchange's remoting serialises them: type names, adapted properties, ToString.

Type-name chains and property names of MailboxAcePresentationObject are [code]; the Mailbox and
ReducedRecipient property lists are a realistic subset (the real objects carry ~200 properties); IsValid and
ObjectState on ACE objects are UNCONFIRMED (facts file section 2).
"""

from __future__ import annotations

from typing import Any

from provisioner_lab.api import LabObject
from provisioner_lab.exchange.directory import Directory, PermissionEntry, Recipient
from provisioner_lab.exchange.enums import (
    inheritance_enum,
    mailbox_rights_enum,
    object_state_enum,
    recipient_type_details_enum,
    recipient_type_enum,
)

ADOBJECTID_TYPES = (
    "Microsoft.Exchange.Data.Directory.ADObjectId",
    "Microsoft.Exchange.Data.ObjectId",
    "System.Object",
)
ACE_TYPES = (
    "Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",
    "Microsoft.Exchange.Management.RecipientTasks.AcePresentationObject",
    "Microsoft.Exchange.Data.ConfigurableObject",
    "System.Object",
)
MAILBOX_TYPES = (
    "Microsoft.Exchange.Data.Directory.Management.Mailbox",
    "Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
    "Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient",
    "Microsoft.Exchange.Data.Directory.ADPresentationObject",
    "Microsoft.Exchange.Data.Directory.ADObject",
    "Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Microsoft.Exchange.Data.ConfigurableObject",
    "System.Object",
)
REDUCED_RECIPIENT_TYPES = (
    "Microsoft.Exchange.Data.Directory.Management.ReducedRecipient",
    "Microsoft.Exchange.Data.Directory.ADObject",
    "Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Microsoft.Exchange.Data.ConfigurableObject",
    "System.Object",
)
SECURITY_PRINCIPAL_TYPES = (
    "Microsoft.Exchange.Configuration.Tasks.SecurityPrincipalIdParameter",
    "Microsoft.Exchange.Configuration.Tasks.RecipientIdParameter",
    "Microsoft.Exchange.Configuration.Tasks.ADIdParameter",
    "System.Object",
)


def ad_object_id(directory: Directory, recipient: Recipient) -> LabObject:
    """The ``ADObjectId`` of a recipient; ToString is its canonical name (``contoso.com/Users/Alice Wong``)."""
    return LabObject(
        ADOBJECTID_TYPES,
        {
            "IsDeleted": False,
            "Rdn": recipient.dn.split(",", 1)[0],
            "Parent": recipient.ou,
            "Depth": recipient.dn.count(",") + 1 - recipient.dn.count("\\,"),
            "DistinguishedName": recipient.dn,
            "IsRelativeDn": False,
            "DomainId": directory.domain,
            "PartitionFQDN": directory.domain,
            "ObjectGuid": recipient.guid,
            "Name": recipient.name,
        },
        recipient.canonical_name,
    )


def trustee_object(directory: Directory, sid: str) -> LabObject:
    """The ``User`` of an ACE: ToString ``DOMAIN\\account``, or the raw SID of an orphaned entry."""
    account = directory.account_of(sid)
    return LabObject(SECURITY_PRINCIPAL_TYPES, {"RawIdentity": account, "SecurityIdentifier": sid}, account)


def ace_object(directory: Directory, mailbox: Recipient, entry: PermissionEntry) -> LabObject:
    identity = ad_object_id(directory, mailbox)
    return LabObject(
        ACE_TYPES,
        {
            "AccessRights": [mailbox_rights_enum(entry.rights)],
            "Deny": entry.deny,
            "InheritanceType": inheritance_enum(entry.inheritance),
            "User": trustee_object(directory, entry.sid),
            "Identity": identity,
            "IsInherited": entry.inherited,
            "IsValid": True,
            "ObjectState": object_state_enum(),
        },
        identity.to_string,
    )


_CUSTOM_ATTRIBUTES = tuple((number, f"CustomAttribute{number}") for number in range(1, 16))


def _common(directory: Directory, recipient: Recipient) -> dict[str, Any]:
    identity = ad_object_id(directory, recipient)
    props: dict[str, Any] = {
        "Identity": identity,
        "Id": identity,
        "Name": recipient.name,
        "Alias": recipient.alias,
        "DisplayName": recipient.display_name,
        "PrimarySmtpAddress": recipient.primary_smtp,
        "WindowsEmailAddress": recipient.primary_smtp,
        "EmailAddresses": [f"SMTP:{recipient.primary_smtp}"] if recipient.primary_smtp else [],
        "RecipientType": recipient_type_enum(recipient.recipient_type),
        "RecipientTypeDetails": recipient_type_details_enum(recipient.recipient_type_details),
        "Guid": recipient.guid,
        "DistinguishedName": recipient.dn,
        "OrganizationalUnit": recipient.ou,
        "ExchangeGuid": recipient.exchange_guid or "00000000-0000-0000-0000-000000000000",
        "SamAccountName": recipient.sam,
        "Department": recipient.department,
        "IsValid": True,
        "ObjectState": object_state_enum(),
    }
    attributes = recipient.custom_attributes
    for number, name in _CUSTOM_ATTRIBUTES:
        props[name] = attributes.get(number, "")
    return props


def mailbox_object(directory: Directory, recipient: Recipient) -> LabObject:
    props = _common(directory, recipient)
    props.pop("Department")  # a Get-User property, not a Mailbox one
    props.update(
        {
            "UserPrincipalName": recipient.upn,
            "Database": "Mailbox Database 01",
            "ServerName": "ex01",
            "IsMailboxEnabled": True,
            "IsShared": recipient.recipient_type_details == "SharedMailbox",
            "IsResource": recipient.recipient_type_details in ("RoomMailbox", "EquipmentMailbox"),
            "HiddenFromAddressListsEnabled": False,
            "GrantSendOnBehalfTo": [],
            "LegacyExchangeDN": legacy_exchange_dn(recipient),
        }
    )
    return LabObject(MAILBOX_TYPES, props, recipient.name)


LEGACY_DN_PREFIX = "/o=First Organization/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn="
"""The X.500 address Outlook's MAPI profile knows a mailbox by (the property Get-Mailbox shows as LegacyExchangeDN).
Exchange 2010 writes ``cn=<alias>``; 2013 and later ``cn=<32 hex digits>-<alias>``; the lab writes the later form."""


def legacy_exchange_dn(recipient: Recipient) -> str:
    return f"{LEGACY_DN_PREFIX}{recipient.guid.replace('-', '')}-{recipient.alias or recipient.sam}"


def reduced_recipient_object(directory: Directory, recipient: Recipient) -> LabObject:
    props = _common(directory, recipient)
    props["Database"] = "Mailbox Database 01" if recipient.is_mailbox else None
    return LabObject(REDUCED_RECIPIENT_TYPES, props, recipient.name)
