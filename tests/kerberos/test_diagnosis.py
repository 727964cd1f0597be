"""The Kerberos diagnosis and settings without a KDC (these run everywhere, with or without python-gssapi).

The failures are built the way pyspnego builds them (a real ``spnego`` exception around an object with the
GSS major/minor status of python-gssapi's ``GSSError``, or one with the ``err_code`` of pykrb5's ``Krb5Error``),
with the status codes captured from the real MIT KDC runs of test_kerberos_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from spnego.exceptions import SpnegoError
from typer.testing import CliRunner

from provisioner.cli import app
from provisioner.errors import ConnectionFailure, ExitCode, InputError
from provisioner.inputs.config import Connection, load_config
from provisioner.transport.psrp import kerberos
from provisioner.transport.psrp.connect import (
    build_wsman,
    check_connection_settings,
    describe_failure,
    resolve_password,
)

GSS_FAILURE = 13 << 16  # "Unspecified GSS failure.  Minor code may provide more information"
GSS_NO_CRED = 7 << 16
GSS_CONTEXT_EXPIRED = 12 << 16
KERBEROS = Connection(server="127.0.0.1", auth="kerberos", spn_hostname="exch01.contoso.com")


class FakeGSSError(Exception):
    """Shaped like gssapi.raw.GSSError: the minor status is the krb5 code as an unsigned 32-bit number."""

    def __init__(self, maj_code: int, min_code: int) -> None:
        super().__init__(f"Major ({maj_code}), Minor ({min_code})")
        self.maj_code, self.min_code = maj_code, min_code


class FakeKrb5Error(Exception):
    """Shaped like krb5.Krb5Error (pykrb5), raised when pyspnego gets a ticket from a password."""

    def __init__(self, err_code: int) -> None:
        super().__init__(f"krb5 error {err_code}")
        self.err_code = err_code


def gss(major: int, minor: int) -> SpnegoError:
    return SpnegoError(base_error=FakeGSSError(major, minor), context_msg="Processing security token")


def unsigned(code: int) -> int:
    return code & 0xFFFFFFFF


CASES = [
    # (what happened, the exception, the connection, words the sentence must contain)
    ("no ticket cache", gss(GSS_NO_CRED, 2529639053), KERBEROS, "there is no Kerberos ticket in"),
    ("ticket expired", gss(GSS_FAILURE, 2529638944), KERBEROS, "the Kerberos ticket has expired"),
    ("service ticket ended", gss(GSS_CONTEXT_EXPIRED, 100001), KERBEROS, "the Kerberos ticket has expired"),
    ("SPN unknown", gss(GSS_FAILURE, 2529638919), KERBEROS, "no service principal HTTP/exch01.contoso.com"),
    ("clock skew", gss(GSS_FAILURE, 2529638949), KERBEROS, "Clock skew too great"),
    ("not yet valid", gss(GSS_FAILURE, 2529638945), KERBEROS, "the Kerberos ticket is not valid yet"),
    ("KDC unreachable", gss(GSS_FAILURE, 2529639068), KERBEROS, "no KDC for the realm could be reached"),
    ("wrong password", FakeKrb5Error(kerberos.KDC_ERR_PREAUTH_FAILED),
     Connection(auth="kerberos", username="alice@CONTOSO.COM"), "the KDC rejected the password for alice@CONTOSO.COM"),
    ("stale keytab", gss(GSS_NO_CRED, unsigned(kerberos.KDC_ERR_PREAUTH_FAILED)),
     Connection(auth="kerberos", keytab="/etc/svc.keytab"), "the password changed after the keytab was made"),
    ("KDC unreachable for a password", FakeKrb5Error(kerberos.KDC_UNREACH),
     Connection(auth="kerberos", username="alice@CONTOSO.COM"), "no KDC for realm CONTOSO.COM could be reached"),
    ("realm unknown", FakeKrb5Error(kerberos.REALM_UNKNOWN),
     Connection(auth="kerberos", username="alice@NOWHERE.TEST"), "does not know the realm NOWHERE.TEST"),
    ("no default realm", FakeKrb5Error(kerberos.CONFIG_NODEFREALM), KERBEROS, "does not know the realm to use"),
    ("unknown user", FakeKrb5Error(kerberos.KDC_ERR_C_PRINCIPAL_UNKNOWN),
     Connection(auth="kerberos", username="CONTOSO\\alice"), "does not know the principal CONTOSO\\alice"),
    ("locked out", FakeKrb5Error(kerberos.KDC_ERR_CLIENT_REVOKED), KERBEROS, "disabled or locked out"),
    ("password expired", FakeKrb5Error(kerberos.KDC_ERR_KEY_EXP), KERBEROS, "the password of"),
    ("not in keytab", gss(GSS_NO_CRED, 2529639053),
     Connection(auth="kerberos", keytab="/k", principal="svc@C.COM"), "gave no Kerberos ticket for svc@C.COM"),
]


@pytest.mark.parametrize(("exc", "connection", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_failure_has_its_sentence(exc: BaseException, connection: Connection, words: str) -> None:
    failure = describe_failure(exc, connection)
    assert isinstance(failure, ConnectionFailure) and failure.exit_code == ExitCode.CONNECTION
    assert words in str(failure)
    assert failure.hint  # and the fix
    assert "Major (" not in str(failure)  # no raw GSS status text


def test_decided_by_code_not_by_text() -> None:
    # the same code with a misleading (e.g. translated) text still gives the SPN diagnosis, and the text alone none
    assert "no service principal" in str(describe_failure(gss(GSS_FAILURE, 2529638919), KERBEROS))
    fake = RuntimeError("Server HTTP/x@R not found in Kerberos database")
    assert "no service principal" not in str(describe_failure(fake, KERBEROS))


def test_wrapped_anywhere_in_the_chain() -> None:
    try:
        try:
            raise gss(GSS_FAILURE, 2529638949)
        except SpnegoError as inner:
            raise ValueError("requests hook failed") from inner
    except ValueError as outer:
        assert "Clock skew too great" in str(describe_failure(outer, KERBEROS))


def test_not_kerberos_is_left_alone() -> None:
    assert kerberos.diagnose(gss(GSS_FAILURE, 2529638919), Connection(auth="ntlm")) is None
    assert kerberos.diagnose(RuntimeError("boom"), KERBEROS) is None
    assert kerberos.diagnose(gss(GSS_FAILURE, 12345), KERBEROS) is None  # an unknown minor: the generic message


def test_kerberos_support_not_installed() -> None:
    failure = describe_failure(ImportError("GSSAPIProxy requires the Python gssapi library"), KERBEROS)
    assert "Kerberos support is not installed" in str(failure) and "provisioner[kerberos]" in str(failure)


# --- settings ------------------------------------------------------------------------------------------------------


def test_config_keys_and_relative_keytab(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[connection]\nkeytab = "svc.keytab"\nprincipal = "svc@CONTOSO.COM"\nspn_hostname = "ex.c.com"\n')
    connection = load_config(path).connection
    assert connection.keytab == str(tmp_path / "svc.keytab") and connection.principal == "svc@CONTOSO.COM"
    assert connection.auth == "kerberos" and connection.spn_service == "HTTP"
    path.write_text('[connection]\nkeytab = ""\n')
    with pytest.raises(InputError, match=r"connection\.keytab: must not be empty"):
        load_config(path)
    path.write_text("[connection]\nprincipal = 3\n")
    with pytest.raises(InputError, match=r"connection\.principal: expected str"):
        load_config(path)


def test_settings_refused_before_connecting(tmp_path: Path) -> None:
    keytab = tmp_path / "k.keytab"
    keytab.write_bytes(b"\x05\x02")
    for connection, message in [
        (Connection(server="s", auth="ntlm", username="u", keytab=str(keytab)), "use them with auth"),
        (Connection(server="s", username="u", principal="p@R"), "not both"),
        (Connection(server="s", keytab=str(tmp_path / "missing.keytab")), "not found"),
    ]:
        with pytest.raises(InputError, match=message):
            check_connection_settings(connection)
    check_connection_settings(Connection(server="s", keytab=str(keytab), principal="svc@R"))


def test_keytab_means_no_password_and_a_private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIONER_PASSWORD", "never-used")
    connection = Connection(server="s", keytab=str(tmp_path / "k"), principal="svc@R")

    def no_prompt(_: str) -> str:
        raise AssertionError("prompted")

    assert resolve_password(connection, prompt=no_prompt) is None
    env = kerberos.client_environment(connection)
    assert env["KRB5_CLIENT_KTNAME"] == f"FILE:{tmp_path / 'k'}" and env["KRB5CCNAME"].startswith("MEMORY:")
    assert kerberos.client_environment(Connection(auth="kerberos")) == {}  # a ticket cache: the user's own


def test_principal_spn_and_no_delegation_reach_pypsrp() -> None:
    wsman = build_wsman(Connection(server="10.0.0.5", principal="svc@R", spn_hostname="ex.c.com"), None)
    transport = wsman.transport
    assert transport.username == "svc@R" and transport.password is None
    assert transport.negotiate_service == "HTTP" and transport.negotiate_hostname_override == "ex.c.com"
    assert transport.negotiate_delegate is False
    assert transport.wrap_required  # message encryption over http


def test_cli_refuses_a_keytab_with_ntlm() -> None:
    result = CliRunner().invoke(app, ["check", "--server", "s", "--auth", "ntlm", "--username", "u", "--keytab", "k"])
    assert result.exit_code == 2
    assert "use them with auth" in result.output
