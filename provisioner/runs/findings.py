"""What ``provisioner check`` found, line by line, and the trustee lookups both backends' checks share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from provisioner.domain.model import Trustee
from provisioner.errors import ExitCode
from provisioner.powershell import steps as step_builders
from provisioner.powershell.cmdlets import GET_RECIPIENT, GET_USER
from provisioner.powershell.steps import StepOptions
from provisioner.transport import records
from provisioner.transport.runner import Pipeline, Runner


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK
    entries: list[tuple[str, str]] = field(default_factory=list)  # (status: info, ok or FAIL; text), as lines

    def add(self, ok: bool | None, text: str) -> None:
        """ok True: ok, False: FAIL (exit 1), None: information."""
        status = "info" if ok is None else "ok" if ok else "FAIL"
        self.entries.append((status, text))
        self.lines.append(f"{status:<4} {text}")
        if ok is False:
            self.exit_code = ExitCode.ITEMS_FAILED


def check_trustees(runner: Runner, trustees: Sequence[Trustee], options: StepOptions, findings: Findings) -> None:
    """Each trustee looked up as people type it (UPN, DOMAIN\\sam, SMTP address, alias): Get-User finds users with
    or without a mailbox, Get-Recipient mail-enabled groups; exactly one match is ok, none or several FAIL."""
    for trustee in trustees:
        found: list[dict[str, object]] = []
        unreadable: list[str] = []
        for cmdlet in (GET_USER.name, GET_RECIPIENT.name):
            raw = runner.run(Pipeline.of(step_builders.command(cmdlet, ("Identity", trustee.identity.value),
                                                               options=options)))
            error = raw.first_error
            if error is not None and not error.not_found:
                unreadable.append(f"{cmdlet}: {error}")  # e.g. a role without the cmdlet: cannot tell from here
                continue
            found = [dict(records.properties(obj)) for obj in raw.output]
            if found:
                break
        name = f"trustee {trustee.identity} ({trustee.role})"
        if len(found) == 1:
            props = found[0]
            kind = records.text(props.get("RecipientTypeDetails")) or "user"
            shown = records.text(props.get("UserPrincipalName")) or records.text(props.get("PrimarySmtpAddress"))
            findings.add(True, f"{name}: {kind} {shown or records.text(props.get('DistinguishedName'))}")
        elif found:
            dns = "; ".join(records.text(props.get("DistinguishedName")) for props in found)
            findings.add(False, f"{name}: matches {len(found)} objects ({dns}): give its UPN or DOMAIN\\sam")
        elif len(unreadable) == 2:
            findings.add(None, f"{name}: not checked here ({'; '.join(unreadable)}); every run checks it first")
        else:
            findings.add(False, f"{name}: not found as a user or mail-enabled recipient (a security group that is "
                                "not mail-enabled is checked by the first run instead)")
