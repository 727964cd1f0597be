"""Exchange Online endpoints per cloud, and the overrides (tests and the lab point both at 127.0.0.1)."""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.inputs.config import ExoSettings


@dataclass(frozen=True)
class Cloud:
    login: str  # token authority host
    exo: str  # REST endpoint host (also the token's resource)
    environment: str  # Connect-ExchangeOnline -ExchangeEnvironmentName


CLOUDS: dict[str, Cloud] = {
    "worldwide": Cloud("https://login.microsoftonline.com", "https://outlook.office365.com", "O365Default"),
    "gcchigh": Cloud("https://login.microsoftonline.us", "https://outlook.office365.us", "O365USGovGCCHigh"),
    "dod": Cloud("https://login.microsoftonline.us", "https://outlook-dod.office365.us", "O365USGovDoD"),
}


@dataclass(frozen=True)
class Endpoints:
    login: str
    exo: str
    resource: str  # the token audience: always the cloud's own EXO resource, also behind a host override
    environment: str
    overridden: bool  # a login host override: msal's instance discovery is off (it knows only Microsoft's hosts)

    @property
    def scope(self) -> str:
        return f"{self.resource}/.default"

    def authority(self, tenant: str) -> str:
        return f"{self.login}/{tenant}"

    def invoke_url(self, tenant_id: str) -> str:
        return f"{self.exo}/adminapi/beta/{tenant_id}/InvokeCommand"

    def batch_url(self, tenant_id: str) -> str:
        return f"{self.exo}/adminapi/beta/{tenant_id}/$batch"


def endpoints(settings: ExoSettings) -> Endpoints:
    cloud = CLOUDS[settings.cloud]
    login = (settings.login_host or cloud.login).rstrip("/")
    exo = (settings.host or cloud.exo).rstrip("/")
    return Endpoints(login, exo, cloud.exo, cloud.environment, overridden=settings.login_host is not None)
