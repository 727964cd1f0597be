"""A fake Microsoft Entra token issuer for app-only (client credentials) with a certificate.

It serves what msal's ConfidentialClientApplication reads: the OIDC discovery document at
``/<tenant>/v2.0/.well-known/openid-configuration`` and the token endpoint ``/<tenant>/oauth2/v2.0/token``. The
client assertion (a JWT the client signs with its certificate's key) is checked as Entra does: signature against
the certificate registered for ``client_id`` (found by the ``x5t#S256`` or ``x5t`` thumbprint in the header),
``aud`` the token endpoint, ``iss`` = ``sub`` = ``client_id``, ``exp``/``nbf``. The access token is a JWT (HS256 with a
lab secret: only this lab verifies it) with ``aud`` the EXO resource, ``tid``, ``appid`` and ``roles``. Errors are
``{"error", "error_description": "AADSTS...", "error_codes"}`` with the AADSTS codes Entra uses for them.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from provisioner_lab.exo.pki import AppCertificate

MANAGE_AS_APP = "Exchange.ManageAsApp"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class AppRegistration:
    app_id: str
    certificate: AppCertificate
    consented: bool = True  # admin consent for Office 365 Exchange Online > Exchange.ManageAsApp
    exchange_role: bool = True  # an Exchange role is assigned to the app's service principal
    cmdlets: frozenset[str] | None = None  # the role's cmdlets (None: every cmdlet the lab has)


class TokenError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": f"AADSTS{self.code}: {self.description}",
                "error_codes": [self.code], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}


@dataclass
class Issuer:
    base_url: str
    tenant_id: str
    tenant_domain: str
    resource: str = "https://outlook.office365.com"
    lifetime: int = 3599
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    #: tokens issued before this generation are refused by the REST endpoint (``expire_tokens``: a forced 401)
    generation: int = 0
    issued: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tenant_of(self, name: str) -> bool:
        return name.casefold() in (self.tenant_id.casefold(), self.tenant_domain.casefold())

    def token_endpoint(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/token"

    def discovery(self, tenant: str) -> dict[str, Any]:
        return {
            "token_endpoint": self.token_endpoint(tenant),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{self.base_url}/{self.tenant_id}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "issuer": f"{self.base_url}/{self.tenant_id}/v2.0",
            "authorization_endpoint": f"{self.base_url}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{self.base_url}/{tenant}/oauth2/v2.0/devicecode",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def expire_tokens(self) -> None:
        with self._lock:
            self.generation += 1

    def token(self, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise TokenError(400, "unauthorized_client", 700016,
                             f"Application with identifier '{form.get('client_id', '')}' was not found in the "
                             f"directory '{tenant}'.")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise TokenError(401, "invalid_client", 7000218,
                             "The request body must contain the following parameter: 'client_assertion' or "
                             "'client_secret'.")
        self._check_assertion(app, tenant, form["client_assertion"])
        if form.get("scope") != f"{self.resource}/.default":
            raise TokenError(400, "invalid_scope", 1002012,
                             f"The provided value for scope {form.get('scope')} is not valid for client credentials.")
        now = int(time.time())
        with self._lock:
            self.issued += 1
            generation = self.generation
        claims = {"aud": self.resource, "iss": f"https://sts.windows.net/{self.tenant_id}/", "iat": now, "nbf": now,
                  "exp": now + self.lifetime, "appid": app.app_id, "tid": self.tenant_id, "oid": str(uuid.uuid4()),
                  "roles": [MANAGE_AS_APP] if app.consented else [], "ver": "1.0", "gen": generation}
        token = jwt.encode(claims, self.secret, algorithm="HS256", headers={"kid": "provisioner-lab"})
        return {"token_type": "Bearer", "expires_in": self.lifetime, "ext_expires_in": self.lifetime,
                "access_token": token}

    def _check_assertion(self, app: AppRegistration, tenant: str, assertion: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise TokenError(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        cert = app.certificate
        s256 = header.get("x5t#S256")
        sha1 = header.get("x5t")
        known = (isinstance(s256, str) and _b64(s256) == cert.sha256) or \
            (isinstance(sha1, str) and _b64(sha1).hex().upper() == cert.sha1)
        if not known:
            raise TokenError(401, "invalid_client", 700027,
                             "The certificate with identifier used to sign the client assertion is not registered "
                             "on application.")
        public_key = cert.cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise TokenError(401, "invalid_client", 700027, "Only RSA app certificates are registered in the lab.")
        try:
            jwt.decode(assertion, public_key, algorithms=["PS256", "RS256"],
                       audience=[self.token_endpoint(tenant)], issuer=app.app_id,
                       options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.InvalidAudienceError:
            raise TokenError(401, "invalid_client", 700212,
                             "No matching federated identity record found for presented assertion audience.") from None
        except jwt.PyJWTError as exc:
            raise TokenError(401, "invalid_client", 700027,
                             f"Client assertion failed signature validation ({type(exc).__name__}).") from None
        if jwt.decode(assertion, options={"verify_signature": False}).get("sub") != app.app_id:
            raise TokenError(401, "invalid_client", 700023, "The client assertion's subject is not the client id.")

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of an access token this issuer made and still honours; None otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(token, self.secret, algorithms=["HS256"], audience=self.resource)
        except jwt.PyJWTError:
            return None
        with self._lock:
            if int(claims.get("gen", -1)) < self.generation:
                return None
        return claims


def _b64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return b""
