"""App-only tokens for Exchange Online: msal's ConfidentialClientApplication with a certificate.

The app proves itself with a client assertion (a JWT signed with the certificate's private key; msal builds it
with the certificate's SHA-256 thumbprint, ``x5t#S256``, and PS256). The scope is ``<EXO resource>/.default``;
the app needs the ``Exchange.ManageAsApp`` application permission and an Exchange role. The tenant GUID the REST
URLs need is the token's ``tid`` claim. msal caches the token (and answers from the cache until it is close to
expiry); :meth:`TokenProvider.refresh` drops it, for the one retry after a 401.

Nothing secret leaves this module: errors carry msal's error code and the service's description (AADSTS codes),
never the key, the assertion or a token.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from provisioner.errors import ConnectionFailure, InputError
from provisioner.inputs.config import ExoSettings
from provisioner.transport.exo.cloud import Endpoints, endpoints

PASSPHRASE_ENV = "PROVISIONER_CERTIFICATE_PASSWORD"
MANAGE_AS_APP = "Exchange.ManageAsApp"


@dataclass(frozen=True)
class Certificate:
    """The app's certificate: the PEM of the key (kept for msal only) and of the certificate, and thumbprints."""

    key_pem: str
    cert_pem: str
    sha1: str  # upper-case hex, as the Entra portal and Connect-ExchangeOnline show it

    def __repr__(self) -> str:  # never the key
        return f"Certificate(sha1={self.sha1})"


@functools.cache
def load_certificate(path: str) -> Certificate:
    """A PEM file holding the private key and the certificate (``openssl pkcs12 -in app.pfx -nodes`` gives one).
    Read and parsed once per run: the settings check, the review script's thumbprint and the token provider share
    it (a refusal is not cached: it raises)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except OSError as exc:
        raise InputError(f"cannot read the certificate file: {exc.strerror or type(exc).__name__}", where=path) \
            from None
    except UnicodeDecodeError:
        raise InputError("the certificate file is not PEM text (a .pfx? convert it with openssl pkcs12 -nodes)",
                         where=path) from None
    key_blocks = [block for block in _pem_blocks(text) if "PRIVATE KEY" in block.splitlines()[0]]
    cert_blocks = [block for block in _pem_blocks(text) if block.startswith("-----BEGIN CERTIFICATE-----")]
    if not key_blocks or not cert_blocks:
        raise InputError("the certificate file needs the private key and the certificate, both in PEM", where=path)
    passphrase = os.environ.get(PASSPHRASE_ENV)
    try:
        serialization.load_pem_private_key(key_blocks[0].encode(), passphrase.encode() if passphrase else None)
        cert = x509.load_pem_x509_certificate(cert_blocks[0].encode())
    except (ValueError, TypeError):
        # only the type of problem: the message of a key parser is not shown
        hint = f" (set {PASSPHRASE_ENV} for an encrypted key)" if passphrase is None else ""
        raise InputError(f"the private key or certificate in the file cannot be read{hint}", where=path) from None
    sha1 = cert.fingerprint(hashes.SHA1()).hex().upper()  # the thumbprint, not a signature
    return Certificate(key_blocks[0], cert_blocks[0], sha1)


def _pem_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("-----BEGIN "):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith("-----END "):
                blocks.append("\n".join(current) + "\n")
                current = []
    return blocks


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the service verifies it; the client only reads ``tid`` and ``roles``)."""
    try:
        payload = token.split(".")[1]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        value = json.loads(decoded)
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def http_session(settings: ExoSettings) -> requests.Session:
    """The requests Session for msal and the REST client: a CA bundle when one is set, never the environment's
    proxies for the lab's loopback."""
    session = requests.Session()
    session.verify = settings.ca_bundle or True
    session.trust_env = settings.host is None and settings.login_host is None
    return session


class TokenProvider:
    """Tokens for the Exchange Online resource, cached by msal; thread-safe."""

    def __init__(self, settings: ExoSettings, http: requests.Session | None = None,
                 certificate: Certificate | None = None) -> None:
        if not (settings.tenant and settings.app_id and (settings.certificate or certificate)):
            raise InputError("the exo backend needs [exo] tenant, app_id and certificate")
        self.settings = settings
        self.endpoints: Endpoints = endpoints(settings)
        self.certificate = certificate or load_certificate(settings.certificate or "")
        self.http = http or http_session(settings)
        self._lock = threading.Lock()
        passphrase = os.environ.get(PASSPHRASE_ENV)
        credential: dict[str, Any] = {"private_key": self.certificate.key_pem,
                                      "public_certificate": self.certificate.cert_pem}
        if passphrase:
            credential["passphrase"] = passphrase
        try:
            self.app = msal.ConfidentialClientApplication(
                settings.app_id,
                client_credential=credential,
                authority=self.endpoints.authority(settings.tenant),
                token_cache=msal.TokenCache(),
                http_client=self.http,
                # a login host override (the lab) is not one of the hosts msal's instance discovery knows
                instance_discovery=False if self.endpoints.overridden else None,
                timeout=settings.timeout,
            )
        except ValueError as exc:  # msal: the authority's OIDC discovery failed (unknown tenant, host down)
            raise ConnectionFailure(f"the token authority {self.endpoints.authority(settings.tenant)} could not be "
                                    f"used: {_first_line(str(exc))}",
                                    hint="Check [exo] tenant (GUID or initial domain) and cloud.") from None
        except requests.exceptions.RequestException as exc:
            raise ConnectionFailure(f"cannot reach the token authority {self.endpoints.login}: "
                                    f"{type(exc).__name__}") from None

    def token(self) -> str:
        with self._lock:
            try:
                result = self.app.acquire_token_for_client(scopes=[self.endpoints.scope])
            except requests.exceptions.RequestException as exc:
                raise ConnectionFailure(f"cannot reach the token endpoint of {self.endpoints.login}: "
                                        f"{type(exc).__name__}") from None
        if not isinstance(result, dict) or "access_token" not in result:
            error = result.get("error", "no token") if isinstance(result, dict) else "no token"
            description = _first_line(str(result.get("error_description", ""))) if isinstance(result, dict) else ""
            raise ConnectionFailure(
                f"no token for app {self.settings.app_id} in tenant {self.settings.tenant}: {error}"
                + (f" ({description})" if description else ""),
                hint="Check [exo] app_id and tenant, that the certificate is uploaded to the app registration, and "
                     "that admin consent was given for Office 365 Exchange Online > Exchange.ManageAsApp.",
            )
        return str(result["access_token"])

    def refresh(self) -> str:
        """Drop the cached token and get a new one (after a 401: expired or revoked)."""
        with self._lock:
            self.app.remove_tokens_for_client()
        return self.token()

    def tenant_id(self) -> str:
        """The tenant GUID (the token's ``tid``), for the REST URLs and the anchor mailbox."""
        tid = claims(self.token()).get("tid")
        if not isinstance(tid, str) or not tid:
            raise ConnectionFailure("the token has no tenant id (tid claim)")
        return tid


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""
