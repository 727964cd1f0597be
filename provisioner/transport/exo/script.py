"""The reviewed script for Exchange Online: the V3 module's ``Connect-ExchangeOnline`` app-only line, then the
same cmdlets the backend sends (the V3 module runs them over the same REST endpoint)."""

from __future__ import annotations

from provisioner.inputs.config import Connection
from provisioner.powershell.literals import quote
from provisioner.transport.exo.cloud import endpoints


def thumbprint(connection: Connection) -> str | None:
    from provisioner.errors import InputError
    from provisioner.transport.exo.auth import load_certificate

    if not connection.exo.certificate:
        return None
    try:
        return load_certificate(connection.exo.certificate).sha1
    except InputError:
        return None


def connect_line(connection: Connection) -> str:
    settings = connection.exo
    organization = settings.organization or settings.tenant or "<tenant>.onmicrosoft.com"
    parts = ["Connect-ExchangeOnline", "-AppId", quote(settings.app_id or "<app id>")]
    if settings.certificate_pfx:
        parts += ["-CertificateFilePath", quote(settings.certificate_pfx),
                  "-CertificatePassword", "(Read-Host -AsSecureString -Prompt 'PFX password')"]
    else:
        parts += ["-CertificateThumbprint", quote(thumbprint(connection) or "<certificate thumbprint>")]
    parts += ["-Organization", quote(organization)]
    environment = endpoints(settings).environment
    if environment != "O365Default":
        parts += ["-ExchangeEnvironmentName", environment]
    parts.append("-ShowBanner:$false")
    return "\n".join([
        "Import-Module ExchangeOnlineManagement -MinimumVersion 3.0.0",
        " ".join(parts),
    ])


def target(connection: Connection) -> str:
    settings = connection.exo
    return f"{endpoints(settings).exo} (Exchange Online, tenant {settings.tenant or 'not configured'})"
