"""X.509 building blocks shared by CardShield's two certification authorities: the payment CA
(cardshield.server.ca) and the issuer's card attestation CA (cardshield.attestation.ca).

Each CA keeps its own key and directory; only the mechanics live here: serial numbers,
owner-only key files, the self-signed root profile (RFC 5280 4.2.1.3/4.2.1.9) and the check
that an imported key and certificate form a usable CA.
"""
from __future__ import annotations

import os
import secrets
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import UserError

#: notBefore is set this far in the past so that a verifier whose clock lags still accepts
CLOCK_SKEW = timedelta(minutes=5)


class CaSetupError(UserError):
    """The CA files are missing, unsafe or inconsistent; the message says how to fix it."""


def generate_serial() -> int:
    """127 random bits, positive, 16 octets in DER: RFC 5280 4.1.2.2 (<= 20 octets) and
    the CA/B baseline's >= 64 bits of CSPRNG output."""
    while True:
        serial = secrets.randbits(127)
        if serial >> 64:
            return serial


def check_private_file(path: Path) -> None:
    """A private key file must be a regular file owned by us and unreadable by others."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise CaSetupError(f"{path} is not a regular file")
    if st.st_mode & 0o077:
        raise CaSetupError(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: a private key must not be "
            f"readable by group or others; run `chmod 600 {path}`")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CaSetupError(f"{path} is owned by uid {st.st_uid}, not by this user ({os.getuid()})")


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only (0600); never overwrite an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def pem_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def self_signed_root(name: x509.Name, key: rsa.RSAPrivateKey, validity_days: int,
                     now: datetime | None = None) -> x509.Certificate:
    """A root CA certificate that signs end-entity certificates only (pathLen 0) and CRLs."""
    now = now or datetime.now(timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(generate_serial())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=validity_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256()))


def parse_ca_pair(key_pem: bytes, certificate_pem: bytes, origin: str = "the import"):
    """The (key, certificate) of a CA being imported, checked by check_ca_pair."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CaSetupError(f"the CA key of {origin} is encrypted: export it unencrypted "
                           "(PKCS#8 PEM) into a directory only you can read") from None
    except ValueError:
        raise CaSetupError(f"the CA key of {origin} is not a PEM private key") from None
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise CaSetupError(f"the CA certificate of {origin} is not a PEM X.509 certificate") from None
    check_ca_pair(key, cert)
    return key, cert


def check_ca_pair(key, cert: x509.Certificate) -> None:
    """An RSA key that matches a certificate with basicConstraints CA:TRUE and, when keyUsage
    is present, keyCertSign + cRLSign."""
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CaSetupError("the CA key must be an RSA key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise CaSetupError("the CA key does not match the CA certificate's public key")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise CaSetupError("the CA certificate lacks basicConstraints CA:TRUE")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (ku.key_cert_sign and ku.crl_sign):
            raise CaSetupError("the CA certificate's keyUsage must allow keyCertSign and cRLSign")
    except x509.ExtensionNotFound:
        pass
