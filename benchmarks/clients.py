"""The two reference clients, through pypsrp's public API only; run as a child process by the benchmark.

    python benchmarks/clients.py naive grant --port P --users-file F
    python benchmarks/clients.py expert grant|read --port P --users-file F [--no-automapping]
    python benchmarks/clients.py expert-client grant|read --port P --users-file F [--no-automapping]

* ``naive``: one pipeline per (mailbox, trustee): ``Get-MailboxPermission -Identity M -User T``, then
  ``Add-MailboxPermission -Identity M -User T -AccessRights FullAccess -InheritanceType All -AutoMapping:$false``
  when the read found no Full Access (the usual script; the same script re-applies). Per-item outcomes.
* ``expert``: one pipeline per trustee with the identities as pipeline input, what an expert admin types:
  ``ids | Get-Mailbox | Add-MailboxPermission -User T ...`` (grant: no read first) or
  ``ids | Get-Mailbox | Get-MailboxPermission -User T`` (read: the no-op). No per-item outcomes: only how many
  records and errors came back.
* ``expert-client``: the same one-liner through the tool's own client (:mod:`provisioner.transport.psrp.client`:
psrpcore for
  the protocol, pypsrp's WSMan for the transport, the tool's CLIXML reader for the output).

It prints one JSON object: ``work_seconds`` and ``work_cpu_seconds`` (from opening the runspace pool to closing
it; the parent measures the whole process), and ``items`` (naive) or ``records``/``errors`` (expert).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner_lab.run import LAB_PASSWORD, LAB_USER
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

TRUSTEES = ("svc-codetwo@contoso.com", "sync.admin@contoso.com")
CONFIGURATION = "Microsoft.Exchange"


def open_pool(port: int) -> RunspacePool:
    wsman = WSMan("127.0.0.1", port=port, path="PowerShell", ssl=False, auth="ntlm", username=LAB_USER,
                  password=LAB_PASSWORD, encryption="auto", no_proxy=True)
    return RunspacePool(wsman, configuration_name=CONFIGURATION)


def grant_parameters(ps: PowerShell, trustee: str, automapping: bool) -> PowerShell:
    ps.add_parameter("User", trustee).add_parameter("AccessRights", ["FullAccess"])
    ps.add_parameter("InheritanceType", "All")
    if automapping:  # the parameter exists from Exchange 2010 SP2 on
        ps.add_parameter("AutoMapping", False)
    return ps


def grants_full_access(entry: Any) -> bool:
    properties = getattr(entry, "adapted_properties", None) or {}
    rights = properties.get("AccessRights") or []
    return not properties.get("Deny") and any("FullAccess" in str(right) for right in rights)


def failure(ps: PowerShell) -> str | None:
    """The reason of the pipeline's first error (e.g. ManagementObjectNotFoundException), None without errors."""
    if not (ps.had_errors or ps.streams.error):
        return None
    first = ps.streams.error[0] if ps.streams.error else None
    return str(getattr(first, "reason", None) or first or "failed")


def naive_pair(pool: RunspacePool, mailbox: str, trustee: str, automapping: bool) -> list[str]:
    """[mailbox, trustee, result, error reason] of one pair: a read, then a grant if the read found none."""
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-MailboxPermission").add_parameter("Identity", mailbox).add_parameter("User", trustee)
    output = ps.invoke()
    if (reason := failure(ps)) is not None:
        return [mailbox, trustee, "failed", reason]
    if any(grants_full_access(entry) for entry in output):
        return [mailbox, trustee, "already-present", ""]
    ps = PowerShell(pool)
    grant_parameters(ps.add_cmdlet("Add-MailboxPermission").add_parameter("Identity", mailbox), trustee, automapping)
    ps.invoke()
    reason = failure(ps)
    return [mailbox, trustee, "granted" if reason is None else "failed", reason or ""]


def naive(pool: RunspacePool, mailboxes: list[str], automapping: bool) -> dict[str, Any]:
    return {"items": [naive_pair(pool, mailbox, trustee, automapping) for mailbox in mailboxes for trustee in TRUSTEES]}


def expert(pool: RunspacePool, mailboxes: list[str], grant: bool, automapping: bool) -> dict[str, Any]:
    records = errors = 0
    for trustee in TRUSTEES:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Mailbox")
        if grant:
            grant_parameters(ps.add_cmdlet("Add-MailboxPermission"), trustee, automapping)
        else:
            ps.add_cmdlet("Get-MailboxPermission").add_parameter("User", trustee)
        # a list is sent as one batch of input (pypsrp's hint says Iterator, but only a generator is iterated)
        records += len(ps.invoke(input=mailboxes))  # type: ignore[arg-type]
        errors += len(ps.streams.error)
    return {"records": records, "errors": errors}


def expert_client(port: int, mailboxes: list[str], grant: bool, automapping: bool) -> dict[str, Any]:
    from provisioner.transport.psrp.client import Client

    client = Client(WSMan("127.0.0.1", port=port, path="PowerShell", ssl=False, auth="ntlm", username=LAB_USER,
                          password=LAB_PASSWORD, encryption="auto", no_proxy=True), CONFIGURATION)
    client.open()
    records = errors = 0
    try:
        for trustee in TRUSTEES:
            ps = client.powershell(has_input=True).add_command("Get-Mailbox")
            if grant:
                ps.add_command("Add-MailboxPermission").add_parameter("User", trustee)
                ps.add_parameter("AccessRights", ["FullAccess"]).add_parameter("InheritanceType", "All")
                if automapping:
                    ps.add_parameter("AutoMapping", False)
            else:
                ps.add_command("Get-MailboxPermission").add_parameter("User", trustee)
            outcome = client.invoke(ps, mailboxes)
            records += len(outcome.output)
            errors += len(outcome.errors)
    finally:
        client.close()
    return {"records": records, "errors": errors}


def measured(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    result = work()
    return {**result, "work_seconds": time.perf_counter() - started, "work_cpu_seconds": time.process_time() - cpu}


def with_pool(port: int, work: Callable[[RunspacePool], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        with open_pool(port) as pool:
            return work(pool)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("method", choices=("naive", "expert", "expert-client"))
    parser.add_argument("run", choices=("grant", "read"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users-file", type=Path, required=True)
    parser.add_argument("--no-automapping", dest="automapping", action="store_false",
                        help="leave out -AutoMapping (servers before Exchange 2010 SP2 do not have it)")
    args = parser.parse_args()
    mailboxes = args.users_file.read_text(encoding="utf-8").split()
    grant = args.run == "grant"
    if args.method == "naive":
        result = measured(with_pool(args.port, lambda pool: naive(pool, mailboxes, args.automapping)))
    elif args.method == "expert":
        result = measured(with_pool(args.port, lambda pool: expert(pool, mailboxes, grant, args.automapping)))
    else:
        result = measured(lambda: expert_client(args.port, mailboxes, grant, args.automapping))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
