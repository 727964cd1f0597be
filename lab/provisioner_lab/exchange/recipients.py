"""Get-Mailbox, Get-Recipient, Get-User and Get-DistributionGroupMember."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provisioner_lab.api import LabObject
from provisioner_lab.exchange.context import Context, identity_text
from provisioner_lab.exchange.directory import Recipient
from provisioner_lab.exchange.errors import PARAMETER_BINDING, CmdletError, engine_error
from provisioner_lab.exchange.filters import FilterError, compile_filter
from provisioner_lab.exchange.objects import mailbox_object, reduced_recipient_object

USER_TYPES = (
    "Microsoft.Exchange.Data.Directory.Management.User",
    "Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
    "Microsoft.Exchange.Data.Directory.ADPresentationObject",
    "Microsoft.Exchange.Data.Directory.ADObject",
    "Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Microsoft.Exchange.Data.ConfigurableObject",
    "System.Object",
)


def _select(
    ctx: Context,
    accept: Callable[[Recipient], bool],
    render: Callable[[Recipient], LabObject],
    *,
    default_scope: Callable[[Recipient], bool] | None = None,
) -> list[Any]:
    bound = ctx.bound
    if bound.parameter_set not in ("Identity", "AnrSet"):
        raise ctx.unsupported()
    ctx.check_dc()
    ou = ctx.resolve_ou()
    predicate: Callable[[Recipient], bool] | None = None
    if bound.get("Filter") is not None:
        try:
            predicate = compile_filter(str(bound.get("Filter")))
        except FilterError as error:
            record = engine_error(
                f"Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": \"{error}\"",
                PARAMETER_BINDING, "InvalidArgument", f"ParameterBindingFailed,{bound.cmdlet}",
                target=bound.get("Filter"), command=bound.cmdlet, bound=bound.display(),
            )
            raise CmdletError(record, terminating=True) from None
    types = {name.lower() for name in bound.get("RecipientTypeDetails") or []}
    kinds = {name.lower() for name in bound.get("RecipientType") or []}
    identity = bound.get("Identity")
    if identity is not None and identity_text(identity) != "":
        # every object the identity names (a wildcard, or a name two mailboxes share): Get-* returns them all [code]
        candidates = ctx.matches(identity, accept, ou) if "*" in identity_text(identity) \
            else ctx.resolve_all(identity, accept, ou)
    else:
        scope = default_scope if default_scope is not None and not types and not kinds else accept
        candidates = [r for r in ctx.directory.recipients if scope(r)]
        if ou is not None:
            candidates = [r for r in candidates if ctx.directory.in_ou(r, ou)]
    if bound.get("Anr"):
        anr = str(bound.get("Anr")).lower()
        candidates = [
            r for r in candidates
            if any((v or "").lower().startswith(anr) for v in (r.name, r.alias, r.display_name, r.primary_smtp, r.sam))
        ]
    if types:
        candidates = [r for r in candidates if r.recipient_type_details.lower() in types]
    if kinds:
        candidates = [r for r in candidates if r.recipient_type.lower() in kinds]
    if predicate is not None:
        candidates = [r for r in candidates if predicate(r)]
    return [render(r) for r in ctx.limit(candidates)]


def get_mailbox(ctx: Context) -> list[Any]:
    return _select(ctx, lambda r: r.is_mailbox, lambda r: mailbox_object(ctx.directory, r))


def get_recipient(ctx: Context) -> list[Any]:
    return _select(
        ctx,
        lambda r: r.kind != "wellknown",
        lambda r: reduced_recipient_object(ctx.directory, r),
        default_scope=lambda r: r.is_mail_enabled,
    )


def get_user(ctx: Context) -> list[Any]:
    def render(recipient: Recipient) -> LabObject:
        reduced = reduced_recipient_object(ctx.directory, recipient)
        props = dict(reduced.properties)
        props["UserPrincipalName"] = recipient.upn
        return LabObject(USER_TYPES, props, recipient.name)

    return _select(ctx, lambda r: r.kind in ("mailbox", "user"), render)


def get_distribution_group_member(ctx: Context) -> list[Any]:
    ctx.check_dc()
    group = ctx.resolve(ctx.bound.get("Identity"), lambda r: r.is_distribution_group)
    if group is None:
        return []
    return [reduced_recipient_object(ctx.directory, member) for member in ctx.limit(group.members)]
