"""``provisioner check``: can this account, on this endpoint, do the job? Nothing is changed.

It prints every server fact the engine uses and FAILs on each missing one:

- the session opens (reachable, authenticated, configuration name accepted);
- the negotiated PSRP protocol and the PSVersionTable (below 2.2 the server runs only the first statement of a
  pipeline: the engine then sends one statement per pipeline, and says so);
- the language mode (a one-token script is sent: NoLanguage endpoints refuse it, the expected answer for
  ``Microsoft.Exchange``);
- through GET_COMMAND_METADATA (the server's Get-Command, RBAC-trimmed), each needed cmdlet and each of its
  parameters (``-AutoMapping`` exists from Exchange 2010 SP2 on; an RBAC role may leave out any parameter);
- each needed cmdlet invoked against an identity that cannot exist (a fresh GUID) and, for the changing cmdlets,
  with ``-WhatIf``: "not found" proves the account may run it; CommandNotFoundException proves it may not.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from provisioner.domain.model import Identity, Trustee
from provisioner.inputs.config import Connection
from provisioner.powershell.cmdlets import Probe, When, metadata_cmdlets, probes
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import Command, Parameter, StepOptions
from provisioner.runs.check_exo import run_exo_check
from provisioner.runs.findings import Findings, check_trustees
from provisioner.transport.facts import ACCEPT_AUTOMAPPING, AUTOMAPPING_FACT, ServerFacts
from provisioner.transport.psrp.client import Client
from provisioner.transport.psrp.connect import open_pool
from provisioner.transport.psrp.runner import ClientRunner, ClientScriptRunner, read_facts
from provisioner.transport.runner import Pipeline

PROBES = probes()


def language_mode(pool: Client) -> str:
    raw = ClientScriptRunner(pool, ServerFacts(pool.protocol_version)).run_preamble("$null")
    error = raw.first_error
    if error is None:
        return "FullLanguage (script text accepted: script mode works here)"
    reason = f" [{error.reason or error.fq_error_id}]"
    return f"NoLanguage or restricted (script text refused{reason}): use command mode"


def probe_cmdlet(runner: ClientRunner, cmdlet: str, probe: Probe) -> tuple[bool, str]:
    fresh = Identity(f"provisioner-check-{uuid.uuid4()}").value
    parameters = tuple(Parameter(Bare(name), value) for name, value in probe.arguments(fresh))
    raw = runner.run(Pipeline.of(Command(Bare(cmdlet), parameters)))
    first = raw.first_error
    if first is None:
        return True, "ran"
    if "CommandNotFound" in first.reason or "CommandNotFound" in first.fq_error_id:
        return False, "not available to this account (RBAC) or not an Exchange endpoint"
    if first.not_found:
        return True, "available (probe object not found, as expected)"
    return False, f"probe failed: {first}"


def report_facts(facts: ServerFacts, findings: Findings) -> None:
    protocol = facts.protocol_version or "unknown"
    batching = "several statements per pipeline" if facts.runs_statements else \
        "one statement per pipeline (a PowerShell 2.0 server runs only the first; the engine never sends more)"
    findings.add(None, f"PSRP protocol {protocol}, PowerShell {facts.ps_version or 'unknown'}: {batching}")
    for name in ("BuildVersion", "SerializationVersion", "CLRVersion", "WSManStackVersion"):
        if facts.ps_version_table.get(name):
            findings.add(None, f"PSVersionTable.{name} {facts.ps_version_table[name]}")
    for note in facts.notes:
        findings.add(None, note)
    if facts.commands is None:
        return
    for cmdlet in metadata_cmdlets():
        if not facts.has_cmdlet(cmdlet.name):
            absent = f"{cmdlet.name}: not in this session (RBAC or not Exchange)"
            findings.add(None if cmdlet.optional else False, absent)
            continue
        have = [p.name for p in cmdlet.parameters if facts.has_parameter(cmdlet.name, p.name)]
        lacking = [p for p in cmdlet.parameters if not facts.has_parameter(cmdlet.name, p.name)]
        findings.add(True, f"{cmdlet.name}: parameters {', '.join('-' + name for name in have)}")
        for parameter in lacking:
            missing = f"{cmdlet.name} -{parameter.name} missing"
            if parameter.when is When.AUTOMAPPING:
                findings.add(False, f"{missing}: {AUTOMAPPING_FACT}; grants are refused here unless run with "
                                    f"{ACCEPT_AUTOMAPPING}")
            elif parameter.when.optional:
                findings.add(None, f"{missing}: runs that need it are refused")
            else:
                findings.add(False, f"{missing} (trimmed by RBAC?)")


def run_check(connection: Connection, password: str | None, trustees: Sequence[Trustee] = ()) -> Findings:
    if connection.backend == "exo":
        return run_exo_check(connection, trustees)
    findings = Findings()
    where = f"{connection.scheme}://{connection.server}:{connection.effective_port}/{connection.path}"
    with open_pool(connection, password) as pool:
        findings.add(True, f"endpoint {where} reachable, authenticated ({connection.auth})")
        findings.add(True, f"configuration {connection.configuration_name} opened")
        facts = read_facts(pool)
        report_facts(facts, findings)
        findings.add(None, f"language mode: {language_mode(pool)}")
        runner = ClientRunner(pool, facts)
        for cmdlet, probe in PROBES:
            ok, detail = probe_cmdlet(runner, cmdlet, probe)
            findings.add(ok, f"{cmdlet}: {detail}")
        check_trustees(runner, trustees, StepOptions(domain_controller=connection.domain_controller), findings)
    return findings
