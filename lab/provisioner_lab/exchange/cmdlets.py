"""Add-, Get- and Remove-MailboxPermission.

Behaviour sources (see the package docstring for the full list): one output object per handled ACE, also
when it was already present, plus a warning [code]; AutoMapping only for UserMailbox trustees [code];
Remove has ConfirmImpact High and writes no output [code]; with pipeline input the delegate list changes once,
for the last record [code]; the "ACE doesn't exist" warning text [doc];
the "inherited ACE ... was ignored" warning text [3p]; the "already present" warning text is UNCONFIRMED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from provisioner_lab.api import LabEnum, LabObject
from provisioner_lab.exchange.context import Context
from provisioner_lab.exchange.directory import PermissionEntry, Recipient
from provisioner_lab.exchange.enums import FULL_ACCESS, MAILBOX_RIGHTS, SEND_AS, ad_rights_text, canonical_name
from provisioner_lab.exchange.errors import INVALID_OPERATION, TASK
from provisioner_lab.exchange.objects import ace_object

OUTLOOK_LIMIT_WARNING = (
    "Some delegates added may not show up automatically in Outlook. Outlook is limited to displaying only the "
    "first 32 entries (If a delegate user has an archive, the user counts as 2 entries)."
)


@dataclass(frozen=True)
class _Request:
    """What an Add/Remove call asks for, from its parameters or (Instance set) a piped ACE object."""

    identity: Any
    user: Any
    rights: int
    deny: bool
    inheritance: str | None


def _instance_field(instance: Any, name: str) -> Any:
    if isinstance(instance, LabObject):
        return instance.properties.get(name)
    if isinstance(instance, Mapping):
        return instance.get(name)
    return None


def _rights_of(value: Any) -> int:
    mask = 0
    for item in value if isinstance(value, list | tuple) else [value]:
        if isinstance(item, LabEnum):
            mask |= item.value
        elif isinstance(item, int):
            mask |= item
        elif isinstance(item, str):
            for part in item.split(","):
                name = canonical_name("MailboxRights", part)
                mask |= MAILBOX_RIGHTS[name] if name else 0
    return mask


def _request(ctx: Context) -> _Request:
    """The request of the AccessRights set, or of the Instance set (explicit parameters override the ACE)."""
    bound = ctx.bound
    if bound.parameter_set == "AccessRights":
        return _Request(bound.get("Identity"), bound.get("User"), bound.get("AccessRights"), bound.switch("Deny"),
                        bound.get("InheritanceType"))
    if bound.parameter_set != "Instance":
        raise ctx.unsupported()
    instance = bound.get("Instance")
    inheritance = _instance_field(instance, "InheritanceType")
    deny = _instance_field(instance, "Deny")
    return _Request(
        bound.get("Identity") if bound.has("Identity") else _instance_field(instance, "Identity"),
        bound.get("User") if bound.has("User") else _instance_field(instance, "User"),
        bound.get("AccessRights") if bound.has("AccessRights")
        else _rights_of(_instance_field(instance, "AccessRights")),
        bound.switch("Deny") if bound.has("Deny") else str(deny).lower() == "true",
        bound.get("InheritanceType") if bound.has("InheritanceType") else (
            inheritance.text if isinstance(inheritance, LabEnum) else (str(inheritance) if inheritance else None)
        ),
    )


def _canonical_order(entries: list[PermissionEntry]) -> list[PermissionEntry]:
    """Explicit deny, explicit allow, inherited deny, inherited allow (stable within each group)."""
    return sorted(entries, key=lambda entry: (entry.inherited, not entry.deny))


def _apply_automapping(ctx: Context, mailbox: Recipient, sid: str, automapping: bool) -> None:
    trustee = ctx.directory.by_sid.get(sid)
    if not automapping:
        ctx.directory.set_delegate(mailbox, sid, present=False)
        return
    if trustee is None or trustee.kind != "mailbox" or trustee.recipient_type_details != "UserMailbox":
        ctx.say(f"AutoMapping isn't applied for '{ctx.directory.account_of(sid)}' because it isn't a user mailbox.")
        return
    if ctx.directory.set_delegate(mailbox, sid, present=True) and trustee.delegate_of >= 16:
        ctx.warn(OUTLOOK_LIMIT_WARNING)


def _resolve_target(ctx: Context, request: _Request) -> tuple[Recipient, str] | None:
    """The mailbox and trustee SID a change names; None when either lookup wrote its (non-terminating) error."""
    ctx.check_dc()
    mailbox = ctx.resolve_mailbox(request.identity)
    if mailbox is None:
        return None
    sid = ctx.resolve_trustee(request.user)
    if sid is None:
        return None
    return mailbox, sid


def add_mailbox_permission(ctx: Context) -> list[Any]:
    bound = ctx.bound
    request = _request(ctx)
    target = _resolve_target(ctx, request)
    if target is None:
        return []
    mailbox, sid = target
    rights = request.rights
    deny = request.deny
    inheritance = request.inheritance or "All"
    automapping = bound.get("AutoMapping", True)
    if rights & SEND_AS:
        # [code] ErrorSetSendAsOnMailboxPermissionNotAllowed; English text UNCONFIRMED.
        ctx.error(ctx.exchange_error(
            "Send As permission can't be granted with Add-MailboxPermission. Use Add-ADPermission instead.",
            INVALID_OPERATION, "InvalidArgument", request.identity,
        ))
        return []
    if bound.has("AutoMapping") and automapping and not rights & FULL_ACCESS:
        # [code] ErrorSpecifyAutoMappingOnNonFullAccess; English text UNCONFIRMED.
        ctx.error(ctx.exchange_error(
            "The AutoMapping parameter can only be specified together with FullAccess permission.",
            TASK, "InvalidArgument", request.identity,
        ))
        return []
    if not ctx.should_process(high_impact=False):
        return []
    entries = list(ctx.read_acl(mailbox))
    account = ctx.directory.account_of(sid)
    same = next(
        (
            index for index, entry in enumerate(entries)
            if entry.sid == sid and entry.deny == deny and entry.inheritance == inheritance
        ),
        None,
    )
    if same is not None and entries[same].rights & rights == rights:
        # [code] InfoAceAlreadyPresent(<DN>, <account>); English text UNCONFIRMED.
        ctx.warn(
            f"Can't add the access control entry on the object \"{mailbox.dn}\" for account \"{account}\" "
            "because the ACE is already present on the object."
        )
    else:
        if same is not None:
            entries[same] = replace(entries[same], rights=entries[same].rights | rights)
        else:
            entries.append(PermissionEntry(sid, rights, deny=deny, inherited=False, inheritance=inheritance))
        ctx.write_acl(mailbox, _canonical_order(entries))
    if rights & FULL_ACCESS and not deny:
        ctx.delegate(lambda at: _apply_automapping(at, mailbox, sid, bool(automapping)))
    return [ace_object(ctx.directory, mailbox, PermissionEntry(sid, rights, deny, False, inheritance))]


def get_mailbox_permission(ctx: Context) -> list[Any]:
    bound = ctx.bound
    if bound.parameter_set != "AccessRights":
        raise ctx.unsupported()
    ctx.check_dc()
    # a Get-* cmdlet: every mailbox the identity names, each with its entries [code: GetObjectWithIdentityTaskBase]
    mailboxes = ctx.resolve_all(bound.get("Identity"), lambda recipient: recipient.is_mailbox)
    if not mailboxes:
        return []
    sid: str | None = None
    if bound.get("User") is not None:
        sid = ctx.resolve_trustee(bound.get("User"))
        if sid is None:
            return []
    aces = []
    for mailbox in mailboxes:
        entries = _canonical_order([*ctx.read_acl(mailbox), *ctx.directory.inherited_defaults])
        if sid is not None:
            entries = [entry for entry in entries if entry.sid == sid]
        aces += [ace_object(ctx.directory, mailbox, entry) for entry in entries]
    return ctx.limit(aces)


def remove_mailbox_permission(ctx: Context) -> list[Any]:
    request = _request(ctx)
    target = _resolve_target(ctx, request)
    if target is None:
        return []
    mailbox, sid = target
    if not ctx.should_process(high_impact=True):
        return []
    rights = request.rights
    deny = request.deny
    inheritance = request.inheritance
    account = ctx.directory.account_of(sid)
    entries = list(ctx.read_acl(mailbox))

    def matches(entry: PermissionEntry) -> bool:
        return (
            entry.sid == sid and entry.deny == deny and bool(entry.rights & rights)
            and (inheritance is None or entry.inheritance == inheritance)
        )

    if not any(matches(entry) for entry in entries):
        inherited = [entry for entry in ctx.directory.inherited_defaults if matches(entry)]
        if inherited:
            control = "Deny" if deny else "Allow"
            ctx.warn(
                f"An inherited access control entry has been specified: [Rights: {ad_rights_text(rights)}, "
                f"ControlType: {control}] and was ignored on object \"{mailbox.dn}\"."
            )
        else:
            ctx.warn(
                f"Can't remove the access control entry on the object \"{mailbox.dn}\" for account \"{account}\" "
                "because the ACE doesn't exist on the object."
            )
        return []
    kept: list[PermissionEntry] = []
    for entry in entries:
        if matches(entry):
            remaining = entry.rights & ~rights
            if remaining:
                kept.append(replace(entry, rights=remaining))
        else:
            kept.append(entry)
    ctx.write_acl(mailbox, kept)
    if rights & FULL_ACCESS and not deny:
        ctx.delegate(lambda at: _clear_delegate(at, mailbox, sid))
    return []


def _clear_delegate(ctx: Context, mailbox: Recipient, sid: str) -> None:
    ctx.directory.set_delegate(mailbox, sid, present=False)
