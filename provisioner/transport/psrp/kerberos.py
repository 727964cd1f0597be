"""Kerberos from Linux: the client settings for a keytab, and one clear sentence for each common failure.

pypsrp authenticates with pyspnego, which on Linux uses MIT Kerberos through python-gssapi (and pykrb5 to get a
ticket from a password). Their failures reach us as ``spnego`` exceptions wrapping a ``gssapi`` ``GSSError``
(a GSS major status and a krb5 minor code), as ``krb5.Krb5Error`` (a krb5 error code), or as an ImportError
when Kerberos support is not installed. :func:`diagnose` decides by those codes and exception types, never by
the English text (which differs between MIT versions, Heimdal and locales), and returns a
:class:`~provisioner.errors.ConnectionFailure` (exit 4) naming the problem and its fix.

Unattended runs use a client keytab: :func:`apply_client_environment` points MIT's ``KRB5_CLIENT_KTNAME`` at it
and gives the process a private in-memory ticket cache, so every run gets a fresh ticket from the keytab (no
``kinit``, no password, no ticket that expires between runs) and the invoking user's own cache is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from provisioner.errors import ConnectionFailure
from provisioner.inputs.config import Connection

# MIT krb5 error codes (com_err table "krb5", base -1765328384), as krb5.Krb5Error.err_code has them; GSSAPI
# reports the same codes as an unsigned 32-bit minor status.
KDC_ERR_NAME_EXP = -1765328383  # the client's account has expired
KDC_ERR_C_PRINCIPAL_UNKNOWN = -1765328378
KDC_ERR_S_PRINCIPAL_UNKNOWN = -1765328377  # "Server not found in Kerberos database"
KDC_ERR_CLIENT_REVOKED = -1765328366  # disabled or locked out
KDC_ERR_KEY_EXP = -1765328361  # password expired
KDC_ERR_PREAUTH_FAILED = -1765328360  # wrong password (or a keytab older than the password)
AP_ERR_BAD_INTEGRITY = -1765328353  # wrong password when the KDC does not require pre-authentication
AP_ERR_TKT_EXPIRED = -1765328352
AP_ERR_TKT_NYV = -1765328351  # ticket not yet valid
AP_ERR_SKEW = -1765328347
CC_NOTFOUND = -1765328243  # no (matching) credentials in the cache
KDCREP_SKEW = -1765328236
REALM_UNKNOWN = -1765328230  # "Cannot find KDC for realm"
KDC_UNREACH = -1765328228  # "Cannot contact any KDC for realm"
KT_NOTFOUND = -1765328203  # no key for the principal in the keytab
FCC_NOFILE = -1765328189  # no ticket cache file
REALM_CANT_RESOLVE = -1765328164
CONFIG_NODEFREALM = -1765328160

# GSS major status: the routine error is bits 16-23.
GSS_S_NO_CRED = 7
GSS_S_CREDENTIALS_EXPIRED = 11
GSS_S_CONTEXT_EXPIRED = 12  # the service ticket ends with the TGT: an expired TGT the KDC still honoured (skew)

FIX_CLOCK = "Synchronise this machine's clock with the domain (chrony or timesyncd against a DC), then kinit again."


@dataclass(frozen=True)
class Codes:
    """What a Kerberos failure says, by code: krb5 error codes found anywhere in it, and the GSS major routine."""

    krb5: tuple[int, ...] = ()
    gss_major: int | None = None
    no_credentials: bool = False
    credentials_expired: bool = False
    not_installed: bool = False

    @property
    def found(self) -> bool:
        return bool(self.krb5) or self.gss_major is not None or self.no_credentials or self.credentials_expired


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: spnego's ``base_error``, ``__cause__`` and ``__context__`` (no cycles)."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (getattr(current, "base_error", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)


def codes_of(exc: BaseException) -> Codes:
    """The codes in a failure from pyspnego / python-gssapi / pykrb5 (duck-typed: none of them need be installed)."""
    from spnego.exceptions import ContextExpiredError, CredentialsExpiredError, NoCredentialError

    krb5: list[int] = []
    major: int | None = None
    no_credentials = expired = not_installed = False
    for item in _chain(exc):
        err_code = getattr(item, "err_code", None)  # krb5.Krb5Error
        if isinstance(err_code, int) and not isinstance(err_code, bool):
            krb5.append(_signed32(err_code))
        maj_code, min_code = getattr(item, "maj_code", None), getattr(item, "min_code", None)  # gssapi GSSError
        if isinstance(maj_code, int) and isinstance(min_code, int):
            major = (maj_code >> 16) & 0xFF
            if min_code:
                krb5.append(_signed32(min_code))
        no_credentials |= isinstance(item, NoCredentialError)
        expired |= isinstance(item, (CredentialsExpiredError, ContextExpiredError))
        not_installed |= isinstance(item, ImportError)
    return Codes(tuple(dict.fromkeys(krb5)), major, no_credentials, expired, not_installed)


def _identity(connection: Connection) -> str:
    return connection.principal or connection.username or "your principal"


def _realm_of(connection: Connection) -> str | None:
    name = connection.principal or connection.username or ""
    _, at, realm = name.rpartition("@")
    return realm if at and realm else None


def diagnose(exc: BaseException, connection: Connection) -> ConnectionFailure | None:
    """One sentence and the fix for a Kerberos failure, or None when ``exc`` is not one (or auth is not Kerberos)."""
    if connection.auth not in ("kerberos", "negotiate"):
        return None
    codes = codes_of(exc)
    if codes.not_installed and connection.auth == "kerberos" and not codes.found:
        return ConnectionFailure(
            "Kerberos support is not installed in this Python (python-gssapi and krb5 are missing).",
            hint="Install it: apt-get install libkrb5-dev, then pip install 'provisioner[kerberos]'.",
        )
    if not codes.found:
        return None
    for code in codes.krb5:
        failure = _by_code(code, connection)
        if failure is not None:
            return failure
    if codes.credentials_expired or codes.gss_major in (GSS_S_CREDENTIALS_EXPIRED, GSS_S_CONTEXT_EXPIRED):
        return _expired(connection)
    if codes.no_credentials or codes.gss_major == GSS_S_NO_CRED:
        return _no_credentials(connection)
    return None


def _by_code(code: int, connection: Connection) -> ConnectionFailure | None:
    who = _identity(connection)
    spn = f"{connection.spn_service}/{connection.spn_hostname or connection.server}"
    if code in (CC_NOTFOUND, FCC_NOFILE):
        return _no_credentials(connection)
    if code == AP_ERR_TKT_EXPIRED:
        return _expired(connection)
    if code == KDC_ERR_S_PRINCIPAL_UNKNOWN:
        return ConnectionFailure(
            f"the KDC knows no service principal {spn} (\"Server not found in Kerberos database\").",
            hint=(
                "Connect by the server's FQDN (not an IP address or a CNAME), or, behind a load-balanced name, "
                "set --spn-hostname (connection.spn_hostname) to the host whose SPN is registered "
                f"(setspn -Q {connection.spn_service}/<name> on a DC lists it); Exchange's service class is HTTP "
                "(--spn-service)."
            ),
        )
    if code in (AP_ERR_SKEW, KDCREP_SKEW):
        return ConnectionFailure(
            "this machine's clock differs from the KDC's or the server's by more than Kerberos allows "
            "(\"Clock skew too great\", 5 minutes by default).",
            hint=FIX_CLOCK,
        )
    if code == AP_ERR_TKT_NYV:
        return ConnectionFailure(
            "the Kerberos ticket is not valid yet (\"Ticket not yet valid\"): this machine's clock is behind the "
            "KDC's, or the ticket was requested for a later start time.",
            hint=FIX_CLOCK,
        )
    if code in (KDC_ERR_PREAUTH_FAILED, AP_ERR_BAD_INTEGRITY):
        if connection.keytab is not None:
            return ConnectionFailure(
                f"the KDC rejected the key for {who} in the keytab {connection.keytab}: the password changed after "
                "the keytab was made.",
                hint="Export a new keytab for the account (ktutil, or ktpass on Windows) and replace the old one.",
            )
        return ConnectionFailure(
            f"the KDC rejected the password for {who}.",
            hint="Check PROVISIONER_PASSWORD (or the password typed) and that the account is not locked out.",
        )
    if code == KDC_UNREACH:
        realm = _realm_of(connection)
        return ConnectionFailure(
            f"no KDC for {f'realm {realm}' if realm else 'the realm'} could be reached (\"Cannot contact any KDC\").",
            hint=(
                "Check the kdc entries of the realm in krb5.conf [realms] (or DNS SRV records _kerberos._tcp when "
                "dns_lookup_kdc is on), that port 88 is open to them, and KRB5_CONFIG if you set it."
            ),
        )
    if code in (REALM_UNKNOWN, REALM_CANT_RESOLVE, CONFIG_NODEFREALM):
        realm = _realm_of(connection)
        return ConnectionFailure(
            f"Kerberos does not know the realm {realm or 'to use'} (no KDC is configured for it).",
            hint=(
                "Add the realm to krb5.conf [realms] with its kdc, set default_realm in [libdefaults], and write "
                "principals as user@REALM with the realm in capitals (CONTOSO.COM)."
            ),
        )
    if code == KDC_ERR_C_PRINCIPAL_UNKNOWN:
        return ConnectionFailure(
            f"the KDC does not know the principal {who}.",
            hint="Check the spelling; Kerberos names are user@REALM (realm in capitals), not DOMAIN\\user.",
        )
    if code == KDC_ERR_CLIENT_REVOKED:
        return ConnectionFailure(f"the account {who} is disabled or locked out.", hint="Ask a domain admin.")
    if code in (KDC_ERR_KEY_EXP, KDC_ERR_NAME_EXP):
        what = "password" if code == KDC_ERR_KEY_EXP else "account"
        return ConnectionFailure(f"the {what} of {who} has expired.", hint="Renew it in Active Directory.")
    if code == KT_NOTFOUND:
        return ConnectionFailure(
            f"the keytab {connection.keytab or '(default)'} has no key for {who}.",
            hint="List it with klist -k -t <keytab> and set --principal to a principal it holds.",
        )
    return None


def _no_credentials(connection: Connection) -> ConnectionFailure:
    if connection.keytab is not None:
        who = connection.principal or "the principal"
        return ConnectionFailure(
            f"the keytab {connection.keytab} gave no Kerberos ticket for {who} (no key for that principal).",
            hint="List it with klist -k -t and set --principal (connection.principal) to a principal it holds.",
        )
    cache = os.environ.get("KRB5CCNAME", "the default ticket cache")
    whose = f" for {connection.principal or connection.username}" if connection.principal or connection.username else ""
    return ConnectionFailure(
        f"there is no Kerberos ticket{whose} in {cache} (no credentials).",
        hint=(
            "Run kinit user@REALM first (klist shows the cache), or for unattended runs use a keytab: "
            "--keytab FILE --principal user@REALM (connection.keytab, connection.principal)."
        ),
    )


def _expired(connection: Connection) -> ConnectionFailure:
    return ConnectionFailure(
        "the Kerberos ticket has expired (\"Ticket expired\").",
        hint=(
            "Get a new one with kinit (klist shows its end time); for a scheduled job use a keytab "
            "(--keytab, --principal): each run then gets a fresh ticket."
            if connection.keytab is None
            else "Check the clock and run again: a keytab gets a fresh ticket every run."
        ),
    )


def settings_problem(connection: Connection) -> str | None:
    """A reason the Kerberos settings cannot work, found before connecting (exit 2), or None."""
    if connection.keytab is None and connection.principal is None:
        return None
    if connection.auth != "kerberos":
        return "keytab and principal are Kerberos settings: use them with auth = \"kerberos\" (--auth kerberos)"
    if connection.username:
        return (
            "set either username (a password login, PROVISIONER_PASSWORD) or principal/keytab (a ticket cache or "
            "a keytab), not both"
        )
    if connection.keytab is not None:
        if not os.path.isfile(connection.keytab):
            return f"keytab {connection.keytab} not found"
        if not os.access(connection.keytab, os.R_OK):
            return f"keytab {connection.keytab} is not readable by this user"
    return None


def client_environment(connection: Connection) -> dict[str, str]:
    """The MIT Kerberos variables for this connection: a client keytab and a private in-memory ticket cache."""
    if connection.auth != "kerberos" or connection.keytab is None:
        return {}
    return {
        "KRB5_CLIENT_KTNAME": f"FILE:{os.path.abspath(connection.keytab)}",
        "KRB5CCNAME": f"MEMORY:provisioner-{os.getpid()}",
    }


def apply_client_environment(connection: Connection) -> None:
    """Set :func:`client_environment` for this process (MIT reads it whenever it needs credentials)."""
    os.environ.update(client_environment(connection))
