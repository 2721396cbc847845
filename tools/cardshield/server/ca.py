"""The issuing CA: key + self-signed root (created or imported), RFC 5280 v3 end-entity
certificates for card keys, CRLs, and validation of certificates read back from cards.

Key files must be private to their owner (mode 0600): `load` refuses anything looser.
The CA directory also holds the server's request-signing keys (SIGN TRANSACTION tag 8E),
RSA-2048 and EC P-256, whose public half of the type a card can hold is loaded into it at
personalization (PERSONALIZE P1=04); cardshield.server.bank_signature signs with them.
"""
from __future__ import annotations

import hashlib
import os
from urllib.parse import urlsplit
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import (AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID,
                                   ObjectIdentifier)

from ..protocol.bank_key import BankKeyType, BankPrivateKey, generate_bank_key
from ..pki import (CLOCK_SKEW, CaSetupError, check_ca_pair, check_private_file, generate_serial,
                   parse_ca_pair, pem_private, self_signed_root, write_private)
from .clock import utcnow
from .errors import ApiError
from .settings import Settings

CA_KEY_BITS = 3072
PAYMENT_SLOT = 1
AUTH_SLOT = 2
# Private EKU (IANA documentation PEN 32473, see settings.py) for the payment slot:
# the key signs CardShield transactions, not TLS handshakes.
EKU_TRANSACTION_SIGNING = ObjectIdentifier("1.3.6.1.4.1.32473.1.2")
CHAIN_CACHE_SIZE = 50_000  # certificates whose chain to this CA was verified


def _ca_name(settings: Settings) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.organization),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{settings.organization} Card Issuing CA"),
    ])


def build_root(settings: Settings, key: rsa.RSAPrivateKey) -> x509.Certificate:
    return self_signed_root(_ca_name(settings), key, settings.ca_validity_days, utcnow())


def init_ca(settings: Settings, *, import_key: Path | None = None,
            import_cert: Path | None = None) -> list[Path]:
    """Create (or import) the CA key + root and create the request-signing key.
    Existing files are never overwritten. Returns the files written."""
    ca_dir = settings.ca_dir
    ca_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ca_dir, 0o700)
    written: list[Path] = []
    if settings.ca_key_path.exists() or settings.ca_cert_path.exists():
        if import_key or import_cert:
            raise CaSetupError(f"a CA already exists in {ca_dir}; move it away before importing")
    elif import_key or import_cert:
        if not (import_key and import_cert):
            raise CaSetupError("importing a CA needs both --import-key and --import-cert")
        check_private_file(import_key)
        key, cert = parse_ca_pair(import_key.read_bytes(), import_cert.read_bytes(),
                                  f"{import_key} / {import_cert}")
        write_private(settings.ca_key_path, pem_private(key))
        settings.ca_cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        written += [settings.ca_key_path, settings.ca_cert_path]
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
        write_private(settings.ca_key_path, pem_private(key))
        cert = build_root(settings, key)
        settings.ca_cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        written += [settings.ca_key_path, settings.ca_cert_path]
    for key_type, path in request_key_paths(settings).items():
        if not path.exists():  # also adds a key type a CA directory made before it lacks
            write_private(path, pem_private(generate_bank_key(key_type)))
            written.append(path)
    return written


def request_key_paths(settings: Settings) -> dict[BankKeyType, Path]:
    """The request-signing key file of each bank key type."""
    return {BankKeyType.RSA_2048: settings.request_key_path,
            BankKeyType.EC_P256: settings.request_key_ec_path}


@dataclass(frozen=True)
class IssuedCertificate:
    serial: int
    der: bytes
    not_before: datetime
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def publication_extensions(public_url: str) -> list[x509.ExtensionType]:
    """CRL distribution point (RFC 5280 4.2.1.13) and authority information access
    caIssuers (4.2.2.1) naming this server's /v1/ca/crl and /v1/ca/certificate, both served
    as DER. Nothing without a public URL."""
    if not public_url:
        return []
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise CaSetupError(f"CARDSHIELD_PUBLIC_URL must be an http(s) base URL such as "
                           f"https://ca.bank.example, not {public_url!r}")
    base = public_url.rstrip("/")
    return [
        x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(f"{base}/v1/ca/crl")], None, None, None)]),
        x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(f"{base}/v1/ca/certificate"))]),
    ]


class CertificateAuthority:
    def __init__(self, settings: Settings, key: rsa.RSAPrivateKey, cert: x509.Certificate,
                 request_keys: dict[BankKeyType, BankPrivateKey]):
        self.settings = settings
        self.key = key
        self.cert = cert
        #: the bank's request-signing keys (8E), one per type a card can hold
        self.request_keys = request_keys
        self.request_key = request_keys[BankKeyType.RSA_2048]
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self._chained: dict[bytes, x509.Certificate] = {}  # see validate()
        self._ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        # "key generated on the card" only with a verified card attestation
        self._policies = {attested: x509.CertificatePolicies([x509.PolicyInformation(
            ObjectIdentifier(oid), None)]) for attested, oid in (
                (True, settings.key_on_card_policy_oid), (False, settings.unattested_policy_oid))}
        self._locations = publication_extensions(settings.public_url)

    @classmethod
    def load(cls, settings: Settings) -> "CertificateAuthority":
        key_paths = request_key_paths(settings)
        for path in (settings.ca_key_path, settings.ca_cert_path, *key_paths.values()):
            if not path.exists():
                raise CaSetupError(f"{path} is missing; run `cardshield server init` (it creates what "
                                   "is missing and never overwrites a file)")
        check_private_file(settings.ca_key_path)
        key = serialization.load_pem_private_key(settings.ca_key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes())
        check_ca_pair(key, cert)
        request_keys = {}
        for key_type, path in key_paths.items():
            check_private_file(path)
            request_key = serialization.load_pem_private_key(path.read_bytes(), None)
            try:
                found = BankKeyType.of_key(request_key)
            except ValueError as exc:
                raise CaSetupError(f"{path}: {exc}") from None
            if found is not key_type:
                raise CaSetupError(f"{path} holds an {found.value} key, expected {key_type.value}")
            request_keys[key_type] = request_key
        return cls(settings, key, cert, request_keys)

    # -- issuance -------------------------------------------------------------------
    def issue(self, public_key: rsa.RSAPublicKey, *, user_external_id: str, card_label: str,
              slot: int, card_id: str | None = None, attested: bool = False) -> IssuedCertificate:
        """End-entity certificate for a card key (RFC 5280 profile). The subject's
        serialNumber names the attested card id (the terminal's label without one); the
        policy OID says whether the key's generation on the card was attested."""
        now = utcnow()
        not_before = now - CLOCK_SKEW
        not_after = min(now + timedelta(days=self.settings.certificate_validity_days),
                        self.cert.not_valid_after_utc.replace(tzinfo=None))
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.settings.organization),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, card_id or card_label),
            x509.NameAttribute(NameOID.COMMON_NAME, user_external_id),
        ])
        payment = slot == PAYMENT_SLOT
        key_usage = x509.KeyUsage(
            digital_signature=True, content_commitment=payment, key_encipherment=not payment,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False)
        eku = x509.ExtendedKeyUsage(
            [EKU_TRANSACTION_SIGNING] if payment else [ExtendedKeyUsageOID.CLIENT_AUTH])
        serial = generate_serial()
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(public_key).serial_number(serial)
                   .not_valid_before(not_before).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(key_usage, critical=True)
                   .add_extension(eku, critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                                  critical=False)
                   .add_extension(
                       x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski),
                       critical=False)
                   .add_extension(self._policies[attested], critical=False))
        for extension in self._locations:
            builder = builder.add_extension(extension, critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCertificate(serial, cert.public_bytes(serialization.Encoding.DER),
                                 not_before, not_after)

    # -- validation of a certificate read from a card (payment step 604) --------------
    def validate(self, der: bytes, *, now: datetime | None = None) -> x509.Certificate:
        """Chain to this CA and validity window; revocation/binding are checked in the DB.

        The chain check is a pure function of the DER and this CA, so a certificate that
        passed it once is remembered by its SHA-256 fingerprint: a card presents the same
        certificate at every payment. The validity window is still checked every time and
        revocation is checked live in the database by the caller."""
        fingerprint = hashlib.sha256(der).digest()
        cert = self._chained.get(fingerprint)
        if cert is None:
            cert = self._check_chain(der)
            if len(self._chained) >= CHAIN_CACHE_SIZE:
                self._chained.clear()
            self._chained[fingerprint] = cert
        now = now or utcnow()
        if not (cert.not_valid_before_utc.replace(tzinfo=None) <= now
                <= cert.not_valid_after_utc.replace(tzinfo=None)):
            raise ApiError("certificate_not_valid_now",
                           f"the certificate is valid from {cert.not_valid_before_utc} to "
                           f"{cert.not_valid_after_utc}, not now")
        return cert

    def _check_chain(self, der: bytes) -> x509.Certificate:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ApiError("certificate_unreadable",
                           "the card's certificate is not a DER X.509 certificate") from exc
        if cert.issuer != self.cert.subject:
            raise ApiError("certificate_untrusted", "the certificate was not issued by this CA")
        try:
            self.cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                          padding.PKCS1v15(), cert.signature_hash_algorithm)
        except (InvalidSignature, TypeError, ValueError) as exc:
            raise ApiError("certificate_untrusted",
                           "the certificate's signature does not verify with this CA") from exc
        return cert

    # -- revocation list ---------------------------------------------------------------
    def crl(self, revoked: list[tuple[str, datetime, str | None]], *, number: int,
            this_update: datetime, next_update: datetime) -> bytes:
        """DER CRL (RFC 5280 5) over (serial_hex, revoked_at, reason) entries; `number` is
        its cRLNumber, which the caller keeps increasing (RFC 5280 5.2.3)."""
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.cert.subject)
                   .last_update(this_update)
                   .next_update(next_update)
                   .add_extension(x509.CRLNumber(number), critical=False)
                   .add_extension(
                       x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski),
                       critical=False))
        for serial_hex, revoked_at, reason in revoked:
            entry = (x509.RevokedCertificateBuilder()
                     .serial_number(int(serial_hex, 16))
                     .revocation_date(revoked_at))
            flag = REVOCATION_REASONS.get(reason or "")
            if flag is not None:
                entry = entry.add_extension(x509.CRLReason(flag), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


REVOCATION_REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "certificate_hold": x509.ReasonFlags.certificate_hold,
}
