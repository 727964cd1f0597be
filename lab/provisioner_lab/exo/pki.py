"""Throwaway certificates: a CA and a TLS server certificate for 127.0.0.1, and app certificates (RSA, as Entra
app registrations take). Made in memory at lab start with ``cryptography``; nothing is reused between labs."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

_PEM = serialization.Encoding.PEM


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=2))


def _key_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA bundle a client trusts
    cert: Path  # the server's chain
    key: Path


def make_tls(folder: Path, host: str = "127.0.0.1") -> TlsFiles:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _validity(x509.CertificateBuilder().subject_name(_name("provisioner lab CA")).issuer_name(
        _name("provisioner lab CA")).public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
    ).add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
        x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                      key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                      decipher_only=False), critical=True,
    ).add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False,
                    ).sign(ca_key, hashes.SHA256())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _validity(x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca_cert.subject).public_key(
        key.public_key()).serial_number(x509.random_serial_number())
    ).add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                 x509.DNSName("localhost")]), critical=False,
    ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True).add_extension(
        x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False,
    ).add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False,
                    ).sign(ca_key, hashes.SHA256())
    files = TlsFiles(folder / "lab-ca.pem", folder / "lab-tls.pem", folder / "lab-tls.key")
    files.ca.write_bytes(ca_cert.public_bytes(_PEM))
    files.cert.write_bytes(cert.public_bytes(_PEM))
    files.key.write_text(_key_pem(key), encoding="ascii")
    files.key.chmod(0o600)
    return files


@dataclass(frozen=True)
class AppCertificate:
    """An app's certificate: the PEM the product is configured with (key and certificate), and what the app
    registration keeps (the certificate only)."""

    pem: str  # private key + certificate
    cert: x509.Certificate

    @property
    def sha1(self) -> str:
        return self.cert.fingerprint(hashes.SHA1()).hex().upper()

    @property
    def sha256(self) -> bytes:
        return self.cert.fingerprint(hashes.SHA256())


def make_app_certificate(subject: str = "provisioner lab app") -> AppCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _validity(x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(subject)).public_key(
        key.public_key()).serial_number(x509.random_serial_number())).sign(key, hashes.SHA256())
    return AppCertificate(_key_pem(key) + cert.public_bytes(_PEM).decode(), cert)
