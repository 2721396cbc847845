"""The issuer's attestation CA: certifies each card's attestation key at personalization.

It is a key of its own, kept apart from the payment CA (cardshield.server.ca): the payment CA
certifies user keys at enrollment and lives with the server; this one vouches that a key was
generated inside a card the issuer personalized, and lives with the personalization station.
A compromise of one does not forge the other's certificates.

Directory layout (created 0700):
    attestation-ca.key   RSA-3072 private key, PKCS#8 PEM, mode 0600 (load refuses looser)
    attestation-ca.pem   the CA certificate; this is what servers put in their trust store

Card attestation certificate profile (RFC 5280, docs/attestation.md):
    subject  O=<CA organization>, serialNumber=<card id, upper-case hex>, CN=CardShield card <hex>
    keyUsage digitalSignature (critical), basicConstraints CA:FALSE (critical), SKI, AKI,
    and the applet version the card reported (private extension, non-critical).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ..perso.keys import check_card_id
from ..pki import (CLOCK_SKEW, CaSetupError, check_private_file, generate_serial, parse_ca_pair,
                   pem_private, self_signed_root, write_private)

CA_KEY_BITS = 3072
CA_VALIDITY_DAYS = 20 * 365
#: a card's attestation certificate lasts as long as a card can be in service, capped by the CA
CARD_VALIDITY_DAYS = 15 * 365
CARD_KEY_MIN_BITS = 2048
KEY_FILE = "attestation-ca.key"
CERTIFICATE_FILE = "attestation-ca.pem"
#: private arc under IANA's documentation PEN 32473 (RFC 5612), as the payment CA's OIDs:
#: DER SEQUENCE { INTEGER major, INTEGER minor } of the applet that generated the key
OID_APPLET_VERSION = ObjectIdentifier("1.3.6.1.4.1.32473.1.20")


def card_common_name(card_id: bytes) -> str:
    return f"CardShield card {card_id.hex().upper()}"


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _der_version(applet_version: tuple[int, int]) -> bytes:
    """SEQUENCE { INTEGER major, INTEGER minor } for 0..255 each (one content octet or two)."""
    def integer(value: int) -> bytes:
        content = value.to_bytes(2, "big") if value >= 0x80 else bytes([value])
        return bytes([0x02, len(content)]) + content
    body = integer(applet_version[0]) + integer(applet_version[1])
    return bytes([0x30, len(body)]) + body


def _check_version(applet_version: tuple[int, int]) -> tuple[int, int]:
    if (len(applet_version) != 2
            or not all(isinstance(part, int) and 0 <= part <= 255 for part in applet_version)):
        raise ValueError(f"applet version must be (major, minor), each 0..255, not {applet_version!r}")
    return int(applet_version[0]), int(applet_version[1])


@dataclass(frozen=True)
class AttestationCA:
    directory: Path
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    # -- creation, import, loading --------------------------------------------------------
    @staticmethod
    def key_path(directory: Path) -> Path:
        return Path(directory) / KEY_FILE

    @staticmethod
    def certificate_path(directory: Path) -> Path:
        return Path(directory) / CERTIFICATE_FILE

    @classmethod
    def _prepare(cls, directory: Path) -> None:
        """An empty place for a new CA; an existing one is never overwritten."""
        for path in (cls.key_path(directory), cls.certificate_path(directory)):
            if path.exists():
                raise CaSetupError(f"an attestation CA already exists in {directory} ({path.name}); "
                                   "use another --dir or move the old one away first")
        Path(directory).mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)

    @classmethod
    def _store(cls, directory: Path, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> "AttestationCA":
        write_private(cls.key_path(directory), pem_private(key))
        cls.certificate_path(directory).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(Path(directory), key, certificate)

    @classmethod
    def create(cls, directory: Path, organization: str) -> "AttestationCA":
        """A new RSA-3072 key and self-signed root named '<organization> Card Attestation CA'."""
        organization = organization.strip()
        if not organization or len(organization) > 64:
            raise CaSetupError("the organization name must be 1-64 characters (X.520 ub-organization-name)")
        cls._prepare(directory)
        key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} Card Attestation CA"),
        ])
        return cls._store(directory, key, self_signed_root(name, key, CA_VALIDITY_DAYS))

    @classmethod
    def import_(cls, directory: Path, key_pem: bytes, certificate_pem: bytes) -> "AttestationCA":
        """An existing CA (for example the issuer's HSM-backed root exported for a station)."""
        key, certificate = parse_ca_pair(key_pem, certificate_pem)
        if key.key_size < CA_KEY_BITS:
            raise CaSetupError(f"the attestation CA key has {key.key_size} bits; at least {CA_KEY_BITS} are required")
        cls._organization_of(certificate)
        cls._prepare(directory)
        return cls._store(directory, key, certificate)

    @classmethod
    def load(cls, directory: Path) -> "AttestationCA":
        key_path, cert_path = cls.key_path(directory), cls.certificate_path(directory)
        for path in (key_path, cert_path):
            if not path.exists():
                raise CaSetupError(f"{path} is missing: create the CA with "
                                   f"`cardshield attestation-ca init --dir {directory}` or import one")
        check_private_file(key_path)
        key, certificate = parse_ca_pair(key_path.read_bytes(), cert_path.read_bytes(), str(directory))
        return cls(Path(directory), key, certificate)

    # -- what it is ---------------------------------------------------------------------
    @staticmethod
    def _organization_of(certificate: x509.Certificate) -> str:
        names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if not names:
            raise CaSetupError("the attestation CA certificate has no organization (O) in its subject; "
                               "card certificates are named after it")
        return str(names[0].value)

    @property
    def organization(self) -> str:
        return self._organization_of(self.certificate)

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()

    # -- issuance -----------------------------------------------------------------------
    def certify_card(self, card_id: bytes, public_key, applet_version: tuple[int, int],
                     now: datetime | None = None) -> x509.Certificate:
        """The attestation certificate of one card's attestation key. The caller must have
        authenticated `public_key` as coming from that card (the secure channel's receipt)."""
        card_id = check_card_id(bytes(card_id))
        applet_version = _check_version(applet_version)
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < CARD_KEY_MIN_BITS:
            raise ValueError(f"a card attestation key is RSA of at least {CARD_KEY_MIN_BITS} bits")
        now = _utc(now)
        ca_end = self.certificate.not_valid_after_utc
        if now >= ca_end:
            raise CaSetupError(f"the attestation CA expired on {ca_end:%Y-%m-%d}: create or import a new one")
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, card_id.hex().upper()),
            x509.NameAttribute(NameOID.COMMON_NAME, card_common_name(card_id)),
        ])
        return (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(self.certificate.subject)
                .public_key(public_key).serial_number(generate_serial())
                .not_valid_before(now - CLOCK_SKEW)
                .not_valid_after(min(now + timedelta(days=CARD_VALIDITY_DAYS), ca_end))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                               critical=False)
                .add_extension(x509.UnrecognizedExtension(OID_APPLET_VERSION, _der_version(applet_version)),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
