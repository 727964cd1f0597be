"""Server profiles: which Exchange (and which PowerShell under it) the lab endpoint pretends to be.

A profile decides what the protocol layer announces (the PSRP protocol version in SESSION_CAPABILITY, the
``PSVersionTable`` in APPLICATION_PRIVATE_DATA), whether a pipeline's extra statements are read (PSRP
``ExtraCmds`` exists from PowerShell 3.0 / protocol 2.2 on), which common parameters the binder knows, and which
cmdlet parameters exist (the ``products`` of each parameter in ``exchange-cmdlets.json`` plus the explicit
removals below).

Sources (labels as in ``exchange-facts.md``): the protocol versions per PowerShell release (2.1 = PowerShell 2.0,
2.2 = 3.0, 2.3 = 5.x) and PowerShell's ``SESSION_CAPABILITY`` always announcing ``PSVersion`` 2.0 (PowerShell's
``RemoteSessionCapability``: "For negotiation to succeed with old client/servers we have to use 2") are
PowerShell's own; ``-AutoMapping`` arriving in Exchange 2010 SP2 is [doc] (TechNet hh529943); the common
parameters per PowerShell version (``PipelineVariable`` 4.0, ``Information*`` 5.0) are PowerShell's. The
``PSVersionTable`` build numbers and the Exchange build strings are realistic values for those releases as
recalled (UNCONFIRMED against a live server: nothing should depend on the exact numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

#: What every PowerShell since 2.0 puts into SESSION_CAPABILITY's ``PSVersion`` (the real version is only in
#: ``PSVersionTable``): PowerShell's RemoteSessionCapability hard-codes 2.0 for compatibility.
SESSION_PS_VERSION = "2.0"

_COMMON_V2 = ("Verbose", "Debug", "ErrorAction", "WarningAction", "ErrorVariable", "WarningVariable",
              "OutVariable", "OutBuffer")
_COMMON_V4 = (*_COMMON_V2, "PipelineVariable")
_COMMON_V5 = (*_COMMON_V4, "InformationAction", "InformationVariable")


@dataclass(frozen=True)
class ServerProfile:
    """One Exchange server release and the Windows PowerShell it runs on.

    ``product`` is the key of ``exchange-cmdlets.json``'s per-parameter ``products`` table whose parameters
    exist on this release; ``removed_parameters`` takes away ``(cmdlet, parameter)`` pairs that the (latest
    service pack's) docs list but this release lacks. ``common_parameters`` are the PowerShell common
    parameters of ``ps_version``. The ``PSVersionTable`` fields are what ``$PSVersionTable`` shows on the server;
    ``snapin`` is the Exchange snap-in, the ``Namespace`` of the cmdlets in command metadata.
    """

    name: str
    description: str
    exchange_version: str  #: e.g. "Version 14.3 (Build 123.4)"
    exchange_build: str  #: e.g. "14.3.123.4"
    product: str
    snapin: str
    protocol_version: str  #: PSRemotingProtocolVersion, announced in SESSION_CAPABILITY
    ps_version: str  #: PSVersionTable.PSVersion
    build_version: str
    clr_version: str
    wsman_stack_version: str
    compatible_versions: tuple[str, ...]
    serialization_version: str = "1.1.0.1"
    ps_edition: str | None = None  #: PSVersionTable.PSEdition (5.1 and later only)
    common_parameters: tuple[str, ...] = _COMMON_V5
    removed_parameters: tuple[tuple[str, str], ...] = ()

    @property
    def session_ps_version(self) -> str:
        """The ``PSVersion`` of SESSION_CAPABILITY: 2.0 whatever the real version (see module docstring)."""
        return SESSION_PS_VERSION

    @property
    def reads_extra_cmds(self) -> bool:
        """Whether CREATE_PIPELINE's ``ExtraCmds`` (statements after the first) are read: PowerShell 3.0 on."""
        return _version(self.protocol_version) >= (2, 2)

    def psversion_table(self) -> dict[str, Any]:
        """``$PSVersionTable`` as plain values (version strings), in PowerShell's display order."""
        table: dict[str, Any] = {"PSVersion": self.ps_version}
        if self.ps_edition is not None:
            table["PSEdition"] = self.ps_edition
        table.update({
            "PSCompatibleVersions": list(self.compatible_versions),
            "BuildVersion": self.build_version,
            "CLRVersion": self.clr_version,
            "WSManStackVersion": self.wsman_stack_version,
            "PSRemotingProtocolVersion": self.protocol_version,
            "SerializationVersion": self.serialization_version,
        })
        return table


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


EXCHANGE2010 = ServerProfile(
    name="exchange2010",
    description="Exchange Server 2010 SP3 on Windows Server 2008 R2 SP1 (Windows PowerShell 2.0)",
    exchange_version="Version 14.3 (Build 123.4)",
    exchange_build="14.3.123.4",
    product="exchange_2010",
    snapin="Microsoft.Exchange.Management.PowerShell.E2010",
    protocol_version="2.1",
    ps_version="2.0",
    build_version="6.1.7601.17514",
    clr_version="2.0.50727.5485",
    wsman_stack_version="2.0",
    compatible_versions=("1.0", "2.0"),
    common_parameters=_COMMON_V2,
)
EXCHANGE2010SP1 = replace(
    EXCHANGE2010,
    name="exchange2010sp1",
    description="Exchange Server 2010 SP1 on Windows Server 2008 R2 SP1 (Windows PowerShell 2.0)",
    exchange_version="Version 14.1 (Build 218.15)",
    exchange_build="14.1.218.15",
    removed_parameters=(("Add-MailboxPermission", "AutoMapping"),),  # [doc] -AutoMapping arrived in 2010 SP2
)
EXCHANGE2013 = ServerProfile(
    name="exchange2013",
    description="Exchange Server 2013 CU23 on Windows Server 2012 (Windows PowerShell 3.0)",
    exchange_version="Version 15.0 (Build 1497.2)",
    exchange_build="15.0.1497.2",
    product="exchange_2013",
    snapin="Microsoft.Exchange.Management.PowerShell.SnapIn",
    protocol_version="2.2",
    ps_version="3.0",
    build_version="6.2.9200.16398",
    clr_version="4.0.30319.42000",
    wsman_stack_version="3.0",
    compatible_versions=("1.0", "2.0", "3.0"),
    common_parameters=_COMMON_V2,
)
EXCHANGE2019 = ServerProfile(
    name="exchange2019",
    description="Exchange Server 2019 CU14 on Windows Server 2019 (Windows PowerShell 5.1)",
    exchange_version="Version 15.2 (Build 1544.4)",
    exchange_build="15.2.1544.4",
    product="exchange_2019",
    snapin="Microsoft.Exchange.Management.PowerShell.SnapIn",
    protocol_version="2.3",
    ps_version="5.1.17763.1",
    ps_edition="Desktop",
    build_version="10.0.17763.1",
    clr_version="4.0.30319.42000",
    wsman_stack_version="3.0",
    compatible_versions=("1.0", "2.0", "3.0", "4.0", "5.0", "5.1.17763.1"),
    common_parameters=_COMMON_V5,
)

PROFILES: dict[str, ServerProfile] = {
    profile.name: profile for profile in (EXCHANGE2010, EXCHANGE2010SP1, EXCHANGE2013, EXCHANGE2019)
}
DEFAULT_PROFILE = EXCHANGE2019


def get_profile(profile: str | ServerProfile | None = None) -> ServerProfile:
    """A profile by name (case-insensitive), the object itself, or the default (exchange2019) for None."""
    if profile is None:
        return DEFAULT_PROFILE
    if isinstance(profile, ServerProfile):
        return profile
    found = PROFILES.get(profile.strip().lower())
    if found is None:
        raise ValueError(f"unknown server profile {profile!r}; known: {', '.join(PROFILES)}")
    return found


__all__ = ["DEFAULT_PROFILE", "PROFILES", "SESSION_PS_VERSION", "ServerProfile", "get_profile"]
