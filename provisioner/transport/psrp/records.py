"""psrpcore's error and warning records in the shape :mod:`provisioner.transport.records` and
:func:`provisioner.transport.runner.origin` read (the attribute names of pypsrp's records), so that the decisions taken
on
errors (category, reason, FullyQualifiedErrorId, target, bound -Identity/-User) live in one place for both clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StreamRecord:
    """The fields of an ErrorRecord or a WarningRecord the tool reads (None: not in the record)."""

    message: str | None = None
    category: int | None = None
    activity: str | None = None
    reason: str | None = None
    fq_error: str | None = None
    target_object: Any = None
    exception: Mapping[str, Any] | None = None
    details_message: str | None = None
    invocation_name: str | None = None
    command_name: str | None = None
    invocation_bound_parameters: Mapping[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _invocation(record: Any) -> dict[str, Any]:
    info = getattr(record, "InvocationInfo", None)
    if info is None:
        return {}
    command = getattr(info, "MyCommand", None)
    bound = getattr(info, "BoundParameters", None)
    return {
        "invocation_name": _text(getattr(info, "InvocationName", None)),
        "command_name": _text(getattr(command, "Name", None)) if command is not None else None,
        "invocation_bound_parameters": {str(name): value for name, value in (bound or {}).items()},
    }


def error_record(record: Any) -> StreamRecord:
    """A psrpcore ErrorRecord (from an ERROR_RECORD message or a failed PIPELINE_STATE)."""
    category = getattr(record, "CategoryInfo", None)
    details = getattr(record, "ErrorDetails", None)
    exception = getattr(record, "Exception", None)
    message = getattr(exception, "Message", None) if exception is not None else None
    category_value = getattr(category, "Category", None)
    return StreamRecord(
        message=_text(category.PSObject.to_string) if category is not None else None,  # ErrorCategory_Message
        category=None if category_value is None else int(category_value),
        activity=_text(getattr(category, "Activity", None)),
        reason=_text(getattr(category, "Reason", None)),
        fq_error=_text(getattr(record, "FullyQualifiedErrorId", None)),
        target_object=getattr(record, "TargetObject", None),
        exception=None if message is None else {"Message": str(message)},
        details_message=_text(getattr(details, "Message", None)) if details is not None else None,
        **_invocation(record),
    )


def warning_record(record: Any) -> StreamRecord:
    """A psrpcore WarningRecord."""
    return StreamRecord(message=_text(getattr(record, "Message", None)), **_invocation(record))
