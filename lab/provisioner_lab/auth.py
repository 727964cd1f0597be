"""HTTP authentication for the lab endpoint: Basic, and NTLM/Negotiate with WinRM message encryption.

Lab users are a ``username -> password`` dict. NTLM is accepted with pyspnego's pure-Python acceptor, which reads
its credential store from the file named by the ``NTLM_USER_FILE`` environment variable; each :class:`LabUsers`
writes its own store (smbpasswd format with NT hashes, so any password character works) into a private temporary
directory, and every acceptor call runs with the variable pointing at that file under a process-wide lock, so
several lab servers with different users can live in one process.

Negotiate (SPNEGO) without Kerberos falls back to NTLM inside SPNEGO; a raw NTLM token sent with either the
``Negotiate`` or ``NTLM`` scheme is accepted as well (that is what pypsrp's ``auth="ntlm"`` does).

Kerberos (inside SPNEGO, or a raw Kerberos token under the ``Negotiate`` scheme as pypsrp's ``auth="kerberos"``
sends) is accepted when the lab has a :class:`KerberosAcceptor`: a service keytab (e.g. for
``HTTP/exch01.example.test``) and optionally a krb5.conf. The acceptor needs python-gssapi (``pyspnego[kerberos]``);
like the NTLM store, the ``KRB5_KTNAME``/``KRB5_CONFIG``/``KRB5RCACHEDIR`` variables are set only for the duration
of an acceptor call, under the same lock, so the replay cache stays in the keytab's folder.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import spnego

from provisioner_lab.ntlmhash import nt_hash

ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
_BOUNDARY = "Encrypted Boundary"
_ENV_LOCK = threading.Lock()
_SCHEME = re.compile(r"^\s*(Negotiate|NTLM|Kerberos|Basic)\s+(\S+)\s*$", re.I)


class AuthFailed(Exception):
    """Credentials were wrong or the token was invalid (answer 401, with ``token`` if the acceptor made one).

    A Kerberos acceptor answers some failures (clock skew, for one) with a KRB-ERROR token; sent back in the 401's
    ``WWW-Authenticate: Negotiate`` header, it lets the client report the real reason, as Windows servers do.
    """

    def __init__(self, message: str, token: bytes | None = None) -> None:
        super().__init__(message)
        self.token = token


@dataclass(frozen=True)
class KerberosAcceptor:
    """What the lab needs to accept Kerberos: the service keytab, and optionally a krb5.conf (realm, clockskew)."""

    keytab: str
    config: str | None = None
    rcache_dir: str | None = None  #: default: the keytab's folder

    def environment(self) -> dict[str, str]:
        env = {
            "KRB5_KTNAME": f"FILE:{os.path.abspath(self.keytab)}",
            "KRB5RCACHEDIR": self.rcache_dir or os.path.dirname(os.path.abspath(self.keytab)),
        }
        if self.config:
            env["KRB5_CONFIG"] = self.config
        return env


class LabUsers:
    """The lab's user store: Basic checks, the NTLM credential file, and the Kerberos acceptor settings if any."""

    def __init__(self, users: dict[str, str], kerberos: KerberosAcceptor | None = None) -> None:
        self.kerberos = kerberos
        self._users = dict(users)
        self._by_lower = {name.lower(): name for name in self._users}
        self._dir: str | None = None
        self.ntlm_file = ""
        self.ensure_store()

    def ensure_store(self) -> None:
        """(Re)write the NTLM credential store into a private temporary directory if it is not there."""
        if self._dir is not None and os.path.isfile(self.ntlm_file):
            return
        self._dir = tempfile.mkdtemp(prefix="provisioner-lab-ntlm-")
        self.ntlm_file = os.path.join(self._dir, "ntlm_users")
        lines = []
        for name, password in self._users.items():
            lm = "0" * 32  # no LM hash: the clients use NTLMv2, which needs only the NT hash
            nt = binascii.hexlify(nt_hash(password)).decode().upper()
            lines.append(f"{name}:1000:{lm}:{nt}:[U]:LCT-00000000")
        fd = os.open(self.ntlm_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    def canonical(self, name: str) -> str | None:
        """The configured spelling of ``name`` (usernames are case-insensitive, as on Windows)."""
        return self._by_lower.get(name.lower())

    def check_basic(self, header_value: str) -> str:
        """Validate a Basic credential (the base64 part); return the canonical username.

        Clients differ in how they encode non-ASCII (requests uses Latin-1, others UTF-8): both are tried.
        """
        try:
            raw = base64.b64decode(header_value, validate=True)
        except binascii.Error as exc:
            raise AuthFailed("malformed Basic credential") from exc
        for encoding in ("utf-8", "latin-1"):
            try:
                decoded = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            name, sep, password = decoded.partition(":")
            canonical = self.canonical(name)
            if sep and canonical is not None and self._users[canonical] == password:
                return canonical
        raise AuthFailed("wrong username or password")

    def principal_to_user(self, principal: str | None) -> str | None:
        if not principal:
            return None
        found = self.canonical(principal)
        if found is None and "\\" in principal:
            found = self.canonical(principal.split("\\", 1)[1])
        return found or principal

    @contextlib.contextmanager
    def ntlm_store(self) -> Iterator[None]:
        """Point ``NTLM_USER_FILE`` (and the ``KRB5_*`` acceptor variables) at this store for an acceptor call."""
        wanted = {"NTLM_USER_FILE": self.ntlm_file, **(self.kerberos.environment() if self.kerberos else {})}
        with _ENV_LOCK:
            previous = {name: os.environ.get(name) for name in wanted}
            os.environ.update(wanted)
            try:
                yield
            finally:
                for name, value in previous.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def close(self) -> None:
        """Remove the credential store (``ensure_store`` writes it again if the server restarts)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


_SPNEGO_OID = b"\x06\x06\x2b\x06\x01\x05\x05\x02"  # 1.3.6.1.5.5.2, right after the initial token's header


def _kerberos_error_token(exc: BaseException, request: bytes) -> bytes | None:
    """The KRB-ERROR token of a failed Kerberos acceptor step, framed as the client's request was, or None.

    MIT's acceptor answers a clock skew with GSS_S_CONTINUE_NEEDED, a KRB-ERROR token and no context; pyspnego 0.12
    then fails reading the context's flags and the token is left in ``GSSAPIProxy.step``'s ``out_token``, where it
    is picked up from the traceback. Other failures carry it as python-gssapi's ``GSSError.token``.
    """
    token = getattr(getattr(exc, "base_error", None), "token", None)
    tb = exc.__traceback__
    while not token and tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "step" and frame.f_code.co_filename.endswith(os.path.join("spnego", "_gss.py")):
            token = frame.f_locals.get("out_token")
        tb = tb.tb_next
    if not isinstance(token, bytes) or not token:
        return None
    if _SPNEGO_OID in request[:16] or request[:1] == b"\xa1":  # SPNEGO: reject, with the error as the mech token
        token = spnego_reject(token)
    return token


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def spnego_reject(token: bytes) -> bytes:
    """SPNEGO NegTokenResp (RFC 4178 4.2.2) with negState reject and ``token`` as the responseToken, in DER."""
    neg_state = _der(0xA0, _der(0x0A, b"\x02"))  # [0] ENUMERATED reject(2)
    response = _der(0xA2, _der(0x04, token))  # [2] OCTET STRING
    return _der(0xA1, _der(0x30, neg_state + response))


def parse_authorization(value: str) -> tuple[str, str] | None:
    """Split an Authorization header into (scheme lower-cased, credential)."""
    match = _SCHEME.match(value)
    if not match:
        return None
    return match.group(1).lower(), match.group(2)


class SecurityContext:
    """One connection's NTLM/SPNEGO acceptor; after completion it seals and unseals WinRM messages."""

    def __init__(self, users: LabUsers, scheme: str) -> None:
        self._users = users
        self.scheme = scheme  # the scheme name the client used ("Negotiate" or "NTLM"), echoed back
        with users.ntlm_store():
            self._context: Any = spnego.server(protocol="negotiate" if scheme.lower() == "negotiate" else "ntlm")
        self.user: str | None = None
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        return bool(self._context.complete)

    def step(self, token_b64: str) -> bytes | None:
        """Process one client token; returns the token to send back. Raises AuthFailed."""
        try:
            token = base64.b64decode(token_b64)
        except binascii.Error as exc:
            raise AuthFailed("malformed token") from exc
        try:
            with self._users.ntlm_store():
                out: bytes | None = self._context.step(token)
        except Exception as exc:  # spnego raises many types (SpnegoError, InvalidTokenError, ...)
            raise AuthFailed(str(exc), _kerberos_error_token(exc, token)) from exc
        if self._context.complete:
            self.user = self._users.principal_to_user(self._context.client_principal)
        return out

    def unwrap(self, body: bytes, content_type: str) -> bytes:
        """Decrypt a ``multipart/encrypted`` WinRM body."""
        match = re.search(r'boundary="?([^";]+)"?', content_type)
        boundary = match.group(1) if match else _BOUNDARY
        parts = [p for p in re.split(rb"--\s*" + re.escape(boundary.encode()) + rb"(?:--)?\r\n", body) if p]
        message = b""
        with self._lock:
            for index in range(0, len(parts) - 1, 2):
                header_part, payload = parts[index], parts[index + 1]
                length_match = re.search(rb"Length=(\d+)", header_part)
                payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
                try:
                    header_len = struct.unpack("<i", payload[:4])[0]
                    sig = payload[4 : 4 + header_len]
                    data = payload[4 + header_len :]
                    plain: bytes = self._context.unwrap_winrm(sig, data)
                except Exception as exc:  # malformed part (struct.error) or failed signature check (SpnegoError)
                    raise AuthFailed(f"cannot decrypt message: {exc}") from exc
                if length_match and int(length_match.group(1)) != len(plain):
                    raise AuthFailed("decrypted length does not match")
                message += plain
        return message

    def wrap(self, message: bytes) -> tuple[str, bytes]:
        """Encrypt a response; returns (Content-Type, body)."""
        with self._lock:
            result = self._context.wrap_winrm(message)
        header, data, padding = result
        head = (
            f"--{_BOUNDARY}\r\n\tContent-Type: {ENCRYPTED_PROTOCOL}\r\n"
            f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message) + padding}\r\n"
            f"--{_BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n"
        ).encode()
        body = head + struct.pack("<i", len(header)) + header + data + f"--{_BOUNDARY}--\r\n".encode()
        content_type = f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";boundary="{_BOUNDARY}"'
        return content_type, body
