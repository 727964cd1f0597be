"""``provisioner check``: can this account, on this endpoint, do the job? Nothing is changed.

Probes, in order: the session opens (reachable, authenticated, configuration name accepted); the language mode
(a one-token script is sent: NoLanguage endpoints refuse it, which is the expected answer for
``Microsoft.Exchange``); and each needed cmdlet, invoked against a mailbox identity that cannot exist (a fresh
GUID) and, for the changing cmdlets, with ``-WhatIf``. A "not found" error proves the cmdlet exists in this
session and RBAC lets the account run it; CommandNotFoundException proves it does not.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pypsrp.powershell import PowerShell, RunspacePool

from provisioner.config import Connection
from provisioner.errors import ExitCode
from provisioner.executors import records
from provisioner.session import open_pool

PROBES: tuple[tuple[str, dict[str, object]], ...] = (
    ("Get-MailboxPermission", {}),
    ("Add-MailboxPermission", {"AccessRights": ["FullAccess"], "WhatIf": True}),
    ("Remove-MailboxPermission", {"AccessRights": ["FullAccess"], "WhatIf": True, "Confirm": False}),
)


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK


def language_mode(pool: RunspacePool) -> str:
    ps = PowerShell(pool)
    ps.add_script("$null")
    ps.invoke()
    if not ps.had_errors and not ps.streams.error:
        return "FullLanguage (script text accepted: script mode works here)"
    error = records.error_info(ps.streams.error[0]) if ps.streams.error else None
    reason = f" [{error.reason or error.fq_error_id}]" if error else ""
    return f"NoLanguage or restricted (script text refused{reason}): use command mode"


def probe_cmdlet(pool: RunspacePool, cmdlet: str, extra: dict[str, object]) -> tuple[bool, str]:
    ps = PowerShell(pool)
    probe = f"provisioner-check-{uuid.uuid4()}"
    ps.add_cmdlet(cmdlet).add_parameter("Identity", probe).add_parameter("User", probe)
    for name, value in extra.items():
        ps.add_parameter(name, value)
    ps.invoke()
    errors = [records.error_info(record) for record in ps.streams.error]
    if not errors:
        return True, "ran"
    first = errors[0]
    if "CommandNotFound" in first.reason or "CommandNotFound" in first.fq_error_id:
        return False, "not available to this account (RBAC) or not an Exchange endpoint"
    if first.not_found:
        return True, "available (probe object not found, as expected)"
    return False, f"probe failed: {first}"


def run_check(connection: Connection, password: str | None) -> Findings:
    findings = Findings()
    where = f"{connection.scheme}://{connection.server}:{connection.effective_port}/{connection.path}"
    with open_pool(connection, password) as pool:
        findings.lines.append(f"ok   endpoint {where} reachable, authenticated ({connection.auth})")
        findings.lines.append(f"ok   configuration {connection.configuration_name} opened")
        findings.lines.append(f"info language mode: {language_mode(pool)}")
        for cmdlet, extra in PROBES:
            ok, detail = probe_cmdlet(pool, cmdlet, extra)
            findings.lines.append(f"{'ok  ' if ok else 'FAIL'} {cmdlet}: {detail}")
            if not ok:
                findings.exit_code = ExitCode.ITEMS_FAILED
    return findings
