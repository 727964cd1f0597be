"""Reading what pypsrp hands back: error records, warnings and MailboxAcePresentationObject entries.

Decisions are taken on structure (CategoryInfo.Reason, ErrorCategory, FullyQualifiedErrorId, object types and
properties), never on English message text. Exchange objects cross the wire as CLIXML property bags; pypsrp 0.9.1
gives them as ``GenericComplexObject`` with ``adapted_properties``. The exact shapes of ``Deny``, ``User`` and
``AccessRights`` after remoting are not confirmed from a live server, so every reader here accepts the plausible
forms (bool or "True"/"False" or a switch object with IsPresent; a list or a single value; enum objects whose
text is the comma-joined flag names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from provisioner.domain.model import ErrorInfo, PermissionEntry

ERROR_CATEGORIES = (
    "NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected", "InvalidArgument", "InvalidData",
    "InvalidOperation", "InvalidResult", "InvalidType", "MetadataError", "NotImplemented", "NotInstalled",
    "ObjectNotFound", "OperationStopped", "OperationTimeout", "SyntaxError", "ParserError", "PermissionDenied",
    "ResourceBusy", "ResourceExists", "ResourceUnavailable", "ReadError", "WriteError", "FromStdErr",
    "SecurityError", "ProtocolError", "ConnectionError", "AuthenticationError", "LimitsExceeded", "QuotaExceeded",
    "NotEnabled",
)  # System.Management.Automation.ErrorCategory, in value order

ACE_TYPE_SUFFIX = "MailboxAcePresentationObject"


def properties(obj: Any) -> Mapping[str, Any]:
    """The properties of a deserialised object: adapted first, extended (note) properties as a fallback."""
    if isinstance(obj, Mapping):
        return obj
    merged: dict[str, Any] = {}
    merged.update(getattr(obj, "extended_properties", None) or {})
    merged.update(getattr(obj, "adapted_properties", None) or {})
    return merged


def type_names(obj: Any) -> list[str]:
    return [str(name) for name in (getattr(obj, "types", None) or [])]


def text(value: Any) -> str:
    return "" if value is None else str(value)


def as_bool(value: Any) -> bool | None:
    """bool, "True"/"False", or a SwitchParameter-like object with IsPresent. None when it is none of those."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        return True if lowered == "true" else False if lowered == "false" else None
    props = properties(value)
    if "IsPresent" in props:
        return as_bool(props["IsPresent"])
    rendered = getattr(value, "to_string", None)
    return as_bool(rendered) if isinstance(rendered, str) else None


def rights(value: Any) -> frozenset[str]:
    """AccessRights as lower-case flag names. Exchange wraps the whole mask in a one-element array whose text is
    e.g. ``FullAccess, ReadPermission``: split every element on commas."""
    elements: Iterable[Any] = value if isinstance(value, list | tuple) else [value]
    names: set[str] = set()
    for element in elements:
        for part in text(element).split(","):
            if part.strip():
                names.add(part.strip().casefold())
    return frozenset(names)


def permission_entry(obj: Any) -> PermissionEntry | None:
    """An ACE object as a PermissionEntry; None for an object that is not an ACE or lacks the needed fields."""
    names = type_names(obj)
    if names and not any(name.endswith(ACE_TYPE_SUFFIX) for name in names):
        return None
    props = properties(obj)
    if "AccessRights" not in props:
        return None
    deny = as_bool(props.get("Deny"))
    inherited = as_bool(props.get("IsInherited"))
    if deny is None or inherited is None:
        return None
    return PermissionEntry(rights(props["AccessRights"]), deny=deny, inherited=inherited)


def _exception_message(record: Any) -> str:
    exception = getattr(record, "exception", None)
    if exception is not None:
        message = properties(exception).get("Message")
        if message:
            return text(message)
    for attribute in ("details_message", "message"):
        value = getattr(record, attribute, None)
        if value:
            return text(value)
    return text(record) or "error record without a message"


def error_info(record: Any) -> ErrorInfo:
    """A pypsrp ErrorRecord as ErrorInfo (category by name, reason, FQEID, human message)."""
    category_value = getattr(record, "category", None)
    category = ""
    if isinstance(category_value, int) and 0 <= category_value < len(ERROR_CATEGORIES):
        category = ERROR_CATEGORIES[category_value]
    elif category_value is not None:
        category = text(category_value)
    return ErrorInfo(
        message=" ".join(_exception_message(record).split()),
        reason=text(getattr(record, "reason", None)),
        category=category,
        fq_error_id=text(getattr(record, "fq_error", None)),
        target=text(getattr(record, "target_object", None)),
    )


def warning_text(record: Any) -> str:
    for attribute in ("message", "Message"):
        value = getattr(record, attribute, None)
        if value:
            return " ".join(text(value).split())
    return " ".join(text(record).split())
