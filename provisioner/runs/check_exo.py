"""``provisioner check`` for Exchange Online: the token, the app's role, and each cmdlet. Nothing is changed.

- the token: msal gets one with the certificate (exit 4 when it cannot: the AADSTS code says why); its ``tid`` is
  the tenant GUID the REST URLs use, and its ``roles`` must hold ``Exchange.ManageAsApp`` (admin consent);
- each needed cmdlet is called once against an identity that cannot exist (a fresh GUID): "not found"
  (ManagementObjectNotFoundException) proves the app may run it; an empty 403 means its Exchange role does not
  include it. The changing cmdlets fail in the identity lookup, before anything could change.
- the parameters come from the fixed table of Exchange Online's cmdlets (no Get-Command over REST).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from provisioner.domain.model import Trustee
from provisioner.inputs.config import Connection
from provisioner.powershell.cmdlets import Probe, probes
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import Command, Parameter, StepOptions
from provisioner.runs.findings import Findings, check_trustees
from provisioner.transport.exo.auth import MANAGE_AS_APP, claims
from provisioner.transport.exo.runner import EXO_COMMANDS, EXO_NOTE, ExoRunner, call_of
from provisioner.transport.exo.session import open_client
from provisioner.transport.runner import Pipeline

PROBES = probes(exo=True)


def probe(runner: ExoRunner, cmdlet: str, how: Probe) -> tuple[bool, str]:
    fresh = f"provisioner-check-{uuid.uuid4()}"
    parameters = tuple(Parameter(Bare(name), value) for name, value in how.arguments(fresh))
    command = Command(Bare(cmdlet), parameters)
    raw = runner.run(Pipeline.of(command))
    error = raw.first_error
    if error is None:
        return True, "ran"
    if error.reason == "CmdletAccessDenied":
        return False, "not available to this app: its Exchange role is missing or does not include the cmdlet " \
                      "(HTTP 403 without a body)"
    if error.not_found:
        return True, "available (probe object not found, as expected)"
    return False, f"probe failed: {error} ({call_of(command).cmdlet})"


def run_exo_check(connection: Connection, trustees: Sequence[Trustee] = ()) -> Findings:
    findings = Findings()
    client = open_client(connection)
    try:
        endpoints = client.endpoints
        token = client.tokens.token()
        found = claims(token)
        authority = endpoints.authority(connection.exo.tenant or "")
        findings.add(True, f"token for app {connection.exo.app_id} from {authority}"
                           f" (certificate {client.tokens.certificate.sha1}, scope {endpoints.scope})")
        findings.add(None, f"tenant {connection.exo.tenant} is {client.tenant_id} (the token's tid); REST endpoint "
                           f"{endpoints.invoke_url(client.tenant_id)}")
        roles = found.get("roles") or []
        findings.add(MANAGE_AS_APP in roles,
                     f"token roles: {', '.join(map(str, roles)) or 'none'}" + ("" if MANAGE_AS_APP in roles else
                     f" (needs {MANAGE_AS_APP}: API permission Office 365 Exchange Online > {MANAGE_AS_APP}, "
                     "with admin consent)"))
        findings.add(None, EXO_NOTE)
        findings.add(None, "no PSRP protocol: one cmdlet call per (mailbox, trustee), "
                           + ("sent as $batch requests of up to 10" if connection.exo.batch else "one request each"))
        for cmdlet, parameters in EXO_COMMANDS.items():
            findings.add(None, f"{cmdlet}: parameters {', '.join('-' + name for name in sorted(parameters))}")
        runner = ExoRunner(client)
        for cmdlet, how in PROBES:
            ok, detail = probe(runner, cmdlet, how)
            findings.add(ok, f"{cmdlet}: {detail}")
        check_trustees(runner, trustees, StepOptions(), findings)
    finally:
        client.http.close()
    return findings
