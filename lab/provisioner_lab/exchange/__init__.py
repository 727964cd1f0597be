"""The lab's Exchange engine: an in-memory Exchange organisation behind the ``Microsoft.Exchange`` endpoint.

Usage::

    from provisioner_lab.exchange import EngineOptions, ExchangeEngine, generate
    engine = ExchangeEngine.from_seed()                      # lab/provisioner_lab/seeds/demo.toml
    engine = ExchangeEngine(generate(100_000), EngineOptions(replication_delay_seconds=5))
    result = engine.run([Statement((Invocation("Get-Mailbox", (Argument("Identity", "alice.wong"),)),))],
                        [], user="CONTOSO\\sync.admin")
    engine.directory.permissions_of("alice.wong"); engine.counters.snapshot()

Modules: ``directory`` (the org, identity resolution, ACL storage and inspection helpers), ``binding``
(parameters from ``lab/provisioner_lab/data/exchange-cmdlets.json``), ``cmdlets`` (permission cmdlets),
``recipients`` (Get-Mailbox/-Recipient/-User/-DistributionGroupMember), ``filters`` (OPATH subset),
``objects`` (output shapes), ``context`` (per-call streams and resolution), ``engine`` (pipelines, options,
throttling, counters), ``script`` (full-language subset), ``seed`` (TOML seeds and ``generate``).

This is a lab, not Exchange. What it reproduces, and on what evidence (labels as in
``exchange-facts.md``):

Verified from sources
  * cmdlet names, parameter names/types/parameter sets and pipeline binding modes: the JSON copied from
    the official cmdlet docs [doc] with ByValue/ByPropertyName from the decompiled 2013 CU23 attributes [code];
  * Add-MailboxPermission: ``AutoMapping`` defaults to $true [doc]; delegation only for UserMailbox trustees
    [code]; the object is output also when the ACE already existed, with a warning [code]; SendAs refused
    [code]; ``InheritanceType`` default All [doc];
  * Remove-MailboxPermission: ConfirmImpact High (so it prompts without ``-Confirm:$false``) and no output
    [code]; removing FullAccess clears the delegate link [code]; the "ACE doesn't exist" warning text [doc];
  * Get-MailboxPermission: one object per explicit and inherited ACE, ``-User`` compared by SID [code]; the
    default entries (SELF explicit; inherited Deny FullAccess for Administrator/Domain Admins/Enterprise
    Admins/Organization Management; inherited allows for SYSTEM, Exchange Servers, Exchange Trusted
    Subsystem ...) [doc]; ResultSize default 1000 [doc];
  * MailboxAcePresentationObject properties and the one-element flags ``AccessRights`` array, MailboxRights
    values, SID-or-DOMAIN\\account ``User`` [code];
  * error texts: unknown object "couldn't be found on '<DC>'" [3p transcript], ambiguous trustee [3p+code],
    NoLanguage refusal [3p pypsrp #103], throttling (PowerShellMaxCmdlets) [3p], inherited-ACE warning [3p],
    Outlook 32-entries warning [3p+code];
  * PowerShell engine messages (binding errors, CommandNotFound, InputObjectNotBound) are PowerShell's own.

Approximations (UNCONFIRMED or invented for the lab)
  * the English texts of: ACE already present, unknown trustee, ambiguous *mailbox* identity, SendAs refused,
    AutoMapping on non-FullAccess, unknown -DomainController, ResultSize truncation warnings, filter errors;
  * error categories on Get-* cmdlets (NotSpecified) and the FQEID's hex code/RequestId;
  * the non-interactive prompt failure (HostException, "PowerShell is in NonInteractive mode ...");
  * throttling surfaces as a pipeline failure (PSRemotingTransportException, OperationStopped, FQEID
    JobFailure); a real server answers with a WS-Management fault;
  * exact rights of the inherited default entries; ``IsValid``/``ObjectState`` on ACE objects; the property
    lists of Mailbox/ReducedRecipient objects (a subset); nested groups not expanded by
    Get-DistributionGroupMember;
  * replication: only mailbox ACLs lag (delegate lists, recipients are immediate); a write is visible early
    only to reads naming the same ``-DomainController``; ``-ReadFromDomainController`` does not help;
  * the Instance set of Add-/Remove-MailboxPermission (a piped ACE object, e.g. ``Get-MailboxPermission |
    Remove-MailboxPermission -Confirm:$false``) takes Identity/User/AccessRights/Deny/InheritanceType from the
    object, explicit parameters winning; a $null/empty optional ``-Identity`` on Get-Mailbox/Get-Recipient
    returns everything (the docs' caution), a mandatory one is a binding error (PowerShell's rule);
  * wildcards (``*``) in Get-Mailbox/Get-Recipient/Get-User ``-Identity`` and ``-Anr`` are prefix/glob matches
    over name, alias, display name and SMTP address;
  * not implemented: the Owner/ClearAutoMapping/ResetDefault parameter sets, Get-Mailbox
    Database/Server/MailboxPlan sets, SID history, RBAC scopes, the 500-ACE limit, ``-IgnoreDefaultScope``
    semantics (only its clash with ``-DomainController``), Set-ADServerSettings and runspace state,
    deny-overrides-allow evaluation (entries are stored and shown, not evaluated), core cmdlets such as
    Select-Object (CommandNotFoundException, as their availability on the real endpoint is UNCONFIRMED).
"""

from provisioner_lab.exchange.cost import CostModel
from provisioner_lab.exchange.directory import Directory, PermissionEntry, Recipient
from provisioner_lab.exchange.engine import Counters, EngineOptions, ExchangeEngine
from provisioner_lab.exchange.rbac import RoleTrim
from provisioner_lab.exchange.seed import build, generate, load_seed


def demo_engine(options: EngineOptions | None = None) -> ExchangeEngine:
    """An engine over the shipped demo organisation (``lab/provisioner_lab/seeds/demo.toml``)."""
    return ExchangeEngine(load_seed(), options)


__all__ = [
    "CostModel",
    "Counters",
    "Directory",
    "EngineOptions",
    "ExchangeEngine",
    "PermissionEntry",
    "Recipient",
    "RoleTrim",
    "build",
    "demo_engine",
    "generate",
    "load_seed",
]
