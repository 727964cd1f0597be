"""Exchange Online's REST errors as the engine's :class:`~provisioner.domain.model.ErrorInfo`: decided by the
exception type the service names (never by its English text), transient or definitive."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from provisioner.domain.model import ErrorInfo

#: Exception types the service reports for a passing condition (the V3 module retries these).
TRANSIENT_TYPES = ("TransientException", "ServerBusyException", "ADServerSettingsChangedException")
CATEGORIES = {
    "ManagementObjectNotFoundException": "ObjectNotFound",
    "ManagementObjectAmbiguousException": "InvalidArgument",
    "ParameterBindingException": "InvalidArgument",
    "ParameterBindingValidationException": "InvalidData",
    "ParameterBindingArgumentTransformationException": "InvalidData",
    "CommandNotFoundException": "ObjectNotFound",
}


# ---------------------------------------------------------------------------------------------- errors
def is_transient_type(exception_type: str) -> bool:
    short = exception_type.rsplit(".", 1)[-1]
    return any(short.endswith(name) for name in TRANSIENT_TYPES)


def _category(short: str, status: int) -> str:
    if short in CATEGORIES:
        return CATEGORIES[short]
    if is_transient_type(short):
        return "ResourceUnavailable"
    if "AccessDenied" in short or short == "UnauthorizedAccessException":
        return "PermissionDenied"
    return "PermissionDenied" if status == 403 else "NotSpecified"


def _detail_parts(message: Any) -> tuple[str, str, str] | None:
    """(code, exception type, text) of one ``details[].message``: ``code|Type|text`` or a JSON string of it."""
    if not isinstance(message, str):
        return None
    text = message.strip()
    if text.startswith(("{", '"')):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, str):
            return _detail_parts(decoded)
        if isinstance(decoded, dict):
            kind = next((str(decoded[k]) for k in ("ExceptionType", "exceptionType", "Type", "type", "ClassName")
                         if decoded.get(k)), "")
            words = next((str(decoded[k]) for k in ("Message", "message", "ErrorMessage") if decoded.get(k)), "")
            code = next((str(decoded[k]) for k in ("ErrorCode", "code", "Code") if decoded.get(k)), "")
            if kind or words:
                nested = _detail_parts(words) if "|" in words else None
                return nested or (code, kind, words)
    pieces = text.split("|", 2)
    if len(pieces) == 3 and "." in pieces[1] and " " not in pieces[1].strip():
        return pieces[0].strip(), pieces[1].strip(), pieces[2].strip()
    return None


def map_error(status: int, body: Any, cmdlet: str) -> ErrorInfo:
    """An error reply as ErrorInfo: reason and category from the exception type, the text for humans only."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        if status == 403:
            return ErrorInfo(
                f"Exchange Online has no {cmdlet} for this app (HTTP 403 without a body): the app's Exchange role is "
                "missing or does not include the cmdlet", reason="CmdletAccessDenied", category="PermissionDenied",
                fq_error_id=f"HTTP403,{cmdlet}")
        return ErrorInfo(f"HTTP {status} from Exchange Online for {cmdlet} without an error body",
                         reason=f"HTTP{status}", category="ResourceUnavailable" if status >= 500 else "NotSpecified",
                         fq_error_id=f"HTTP{status},{cmdlet}")
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, Mapping):
            continue
        parts = _detail_parts(detail.get("message"))
        if parts is None:
            continue
        code, kind, text = parts
        short = kind.rsplit(".", 1)[-1]
        target = detail.get("target")
        return ErrorInfo(" ".join(text.split()) or str(error.get("message", "")), reason=short,
                         category=_category(short, status), fq_error_id=f"{code},{kind}" if code else kind,
                         target=str(target) if target else "")
    inner = error.get("innererror")
    inner_type = str(inner.get("type", "")) if isinstance(inner, Mapping) else ""
    code = str(error.get("code", "")) or f"HTTP{status}"
    message = " ".join(str(error.get("message", "") or f"HTTP {status}").split())
    short = inner_type.rsplit(".", 1)[-1] if is_transient_type(inner_type) else code
    category = "ResourceUnavailable" if status >= 500 or is_transient_type(inner_type) else _category(short, status)
    return ErrorInfo(message, reason=short, category=category, fq_error_id=f"{code},{inner_type or cmdlet}")


def throttled(cmdlet: str, detail: str) -> ErrorInfo:
    """Still throttled or unavailable after the bounded retries: transient (the engine retries later)."""
    return ErrorInfo(f"Exchange Online kept refusing {cmdlet}: {detail}", reason="ServerBusy",
                     category="LimitsExceeded", fq_error_id=f"Throttled,{cmdlet}")


def invalid_result(cmdlet: str, status: int) -> ErrorInfo:
    """A read answered with success but without a result list: transient (retried), so it ends unknown, never
    absent."""
    return ErrorInfo(f"Exchange Online answered {cmdlet} with HTTP {status} but no result list", reason="InvalidResult",
                     category="ResourceUnavailable", fq_error_id=f"InvalidResult,{cmdlet}")
