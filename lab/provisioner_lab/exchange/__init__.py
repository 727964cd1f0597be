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
``objects`` (output shapes), ``core`` (Select-Object, Measure-Object), ``context`` (per-call streams and
resolution), ``engine`` (pipelines, options, throttling, counters), ``script`` (full-language subset), ``seed``
(TOML seeds and ``generate``), ``specs`` (the cmdlet specs and each session's view of them), ``rbac``
(per-account trims), ``discovery`` (command metadata), ``cost`` (the server cost model). Server releases are
in :mod:`provisioner_lab.profiles`.

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
  * PowerShell engine messages (binding errors, CommandNotFound, InputObjectNotBound) are PowerShell's own;
  * pipeline input: with input records, Add-/Remove-MailboxPermission change the delegate list
    (msExchDelegateListLink) once, in EndProcessing, for the last record's mailbox and trustee [code:
    SetMailboxPermissionTaskBase.InternalEndProcessing]; Get-Mailbox's Identity binds ByValue and
    ByPropertyName, the permission cmdlets' ByPropertyName only [code];
  * server profiles (:mod:`provisioner_lab.profiles`): protocol 2.1 for Windows PowerShell 2.0 (Exchange
    2010), 2.2 for 3.0 (Exchange 2013 on Windows Server 2012), 2.3 for 5.1 (Exchange 2019), and PSVersion 2.0 in
    every SESSION_CAPABILITY [PowerShell's RemoteSessionCapability]; ``-AutoMapping`` only from 2010 SP2 [doc];
    the parameters of each release from the JSON's per-parameter ``products`` [doc]; the common parameters per
    PowerShell version (PipelineVariable 4.0, Information* 5.0) [PowerShell];
  * GET_COMMAND_METADATA: answered as PowerShell's server does (a count object from ``Get-Command | Measure-Object
    | Select-Object Count``, then ``Get-Command | Select-Object Name, Namespace, HelpUri, CommandType,
    ResolvedCommandName, OutputType, Parameters``), shapes per MS-PSRP 2.2.3.21-23 [PowerShell
    ServerRunspacePoolDriver; MS-PSRP]; only the commands and parameters RBAC grants exist in a session [doc].

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
  * below protocol 2.2 a pipeline runs only its first statement (``Cmds``) and the others (``ExtraCmds``, which
    pypsrp sends whatever the protocol) are ignored without an error: inferred from PowerShell 3.0 adding
    ExtraCmds (psrpcore: "ExtraCmds may not work with protocol <=2.1"), not observed on a 2.0 server;
  * the profiles' PSVersionTable build numbers and Exchange build strings are realistic values as recalled; the
    Exchange snap-in name as the cmdlets' metadata ``Namespace``; HelpUri null; only the lab's Exchange cmdlets
    in command metadata (not the core cmdlets a restricted session also has); RBAC as per-account trims (no
    roles, scopes or assignments); a parameter set that loses a mandatory parameter to RBAC or a release
    disappears with it; a non-wildcard unknown name in GET_COMMAND_METADATA gives Get-Command's error record;
  * the cost model's defaults (3 ms a pipeline, 4 ms an invocation, 0.15 ms a record, 1 ms a write) are
    estimates from an Exchange emulator's timings, not from a live server (see ``cost.CostModel``); metadata
    requests are charged as two pipelines, five invocations and their records;
  * the delegate change of a piped Add/Remove whose last record fails (unknown mailbox) is the last successful
    record's (Exchange's DataObject then is UNCONFIRMED); ACL writes still happen per record, not in
    EndProcessing; ``-ErrorAction`` accepts every ActionPreference name whatever the PowerShell version;
  * not implemented: the Owner/ClearAutoMapping/ResetDefault parameter sets, Get-Mailbox
    Database/Server/MailboxPlan sets, SID history, RBAC scopes, the 500-ACE limit, ``-IgnoreDefaultScope``
    semantics (only its clash with ``-DomainController``), Set-ADServerSettings and runspace state,
    deny-overrides-allow evaluation (entries are stored and shown, not evaluated), core cmdlets other than
    Select-Object and Measure-Object.

The core cmdlets Exchange's session keeps public (``alwaysPublicCommands``: Select-Object, Measure-Object [code:
decompiled 2013 CU23 InitialSessionStateBuilder; KB 2922668]) are PowerShell's own: Select-Object makes property
bags (``Selected.<type>``, note properties, no ToString on the wire), Measure-Object a GenericMeasureInfo; an RBAC
trim can take them away from an account (:mod:`core`). For Exchange 2010 their availability is inferred (no v14
code seen).
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
