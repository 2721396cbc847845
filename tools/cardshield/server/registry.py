"""The card registry: the cards the issuer personalized, and the attestation trust store.

A card reaches the registry through its personalization record (cardshield.attestation.record:
card id + attestation certificate), imported with `cardshield server cards import` or
POST /v1/admin/cards. Each record's certificate must chain to an attestation CA of the trust
store (`<state>/attestation-trust/*.pem`, installed with `cardshield server
trust-attestation-ca`) and name the record's card id; an import is all or nothing.

At enrollment the card's ATTEST statement is verified against the registered certificate,
and the card is bound to the user the certificate is issued to (once, for good). A revoked
registry card enrolls no more keys, and its certificates are revoked with it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from cardshield.attestation.record import CardRecord, RecordFileError, parse_records
from cardshield.attestation.verify import AttestationError, card_id_of, check_chain

from . import audit
from .clock import utcnow
from .context import ServerContext
from .errors import ApiError
from .models import Card, Certificate, RegisteredCard, User


# -- trust store ------------------------------------------------------------------------------
def load_trust_roots(directory: Path) -> list[x509.Certificate]:
    """The attestation CA certificates of the trust store (none if the directory is absent)."""
    if not directory.is_dir():
        return []
    return [x509.load_pem_x509_certificate(path.read_bytes())
            for path in sorted(directory.glob("*.pem"))]


def install_trust_root(directory: Path, pem: bytes) -> Path:
    """Add an attestation CA certificate to the trust store; returns the file written (or
    already there). ValueError names what is wrong with the certificate."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM X.509 certificate ({exc})") from None
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise ValueError("an attestation CA certificate needs basicConstraints and keyUsage") from None
    if not constraints.ca or not usage.key_cert_sign:
        raise ValueError("not a CA certificate (basicConstraints CA:TRUE and keyUsage keyCertSign)")
    der = certificate.public_bytes(serialization.Encoding.DER)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(der).hexdigest()[:16]}.pem"
    if not path.exists():
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


# -- registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisteredCardInfo:
    card_id: str
    status: str
    bound_user: str | None
    applet_version: str
    attestation_ca: str
    personalized_at: datetime | None
    imported_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class ImportResult:
    imported: list[str]
    unchanged: list[str]


def _info(row: RegisteredCard, bound_user: str | None) -> RegisteredCardInfo:
    issuer = x509.load_der_x509_certificate(row.attestation_certificate_der).issuer
    return RegisteredCardInfo(row.card_id_hex, row.status, bound_user, row.applet_version,
                              issuer.rfc4514_string(), row.personalized_at, row.imported_at,
                              row.revoked_at)


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _checked(ctx: ServerContext, index: int, record: CardRecord) -> tuple[str, bytes]:
    where = f"record {index + 1} (card {record.card_id.hex().upper()})"
    try:
        certificate = x509.load_der_x509_certificate(record.attestation_certificate_der)
    except ValueError:
        raise ApiError("invalid_card_record",
                       f"{where}: the attestation certificate is not DER X.509") from None
    try:
        named = card_id_of(certificate)
        check_chain(certificate, ctx.attestation_roots, utcnow())
    except AttestationError as exc:
        raise ApiError(exc.code, f"{where}: {exc.message}") from None
    if named != record.card_id:
        raise ApiError("invalid_card_record",
                       f"{where}: the attestation certificate names card {named.hex().upper()}")
    return record.card_id.hex().upper(), record.attestation_certificate_der


def import_records(ctx: ServerContext, records: list[CardRecord], *,
                   by: int | None = None) -> ImportResult:
    """Register personalization records; all or nothing. A card already registered with the
    same certificate is left as it is; with another certificate it is a 409 conflict."""
    if not records:
        raise ApiError("invalid_card_record", "no card records to import")
    if not ctx.attestation_roots:
        raise ApiError("attestation_untrusted",
                       "the attestation trust store is empty: install the attestation CA "
                       "certificate with `cardshield server trust-attestation-ca CERT.pem`")
    checked = [_checked(ctx, i, r) for i, r in enumerate(records)]
    imported, unchanged = [], []
    with ctx.db.transaction() as s:
        now = utcnow()
        for (card_id, der), record in zip(checked, records):
            existing = s.get(RegisteredCard, card_id)
            if existing is not None:
                if existing.attestation_certificate_der != der:
                    raise ApiError("conflict", f"card {card_id} is registered already with "
                                               "another attestation certificate")
                unchanged.append(card_id)
                continue
            s.add(RegisteredCard(
                card_id_hex=card_id, attestation_certificate_der=der, status="active",
                applet_version="%d.%d" % tuple(record.applet_version),
                personalized_at=_naive_utc(record.personalized_at), imported_at=now,
                imported_by_client_id=by))
            imported.append(card_id)
            audit.record(s, "card.import", "ok", client_id=by, detail=f"card {card_id}")
    return ImportResult(imported, unchanged)


def parse_import(text: str) -> list[CardRecord]:
    """A cardshield-card-records/1 document; a malformed one is refused whole (400)."""
    try:
        return parse_records(text, "the card records")
    except RecordFileError as exc:
        raise ApiError("invalid_card_record", str(exc)) from None


def _bound_user(s: Session, row: RegisteredCard) -> str | None:
    if row.bound_user_id is None:
        return None
    return s.scalar(select(User.external_id).where(User.id == row.bound_user_id))


def normalize_card_id(card_id: str) -> str:
    text = card_id.strip().upper()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if not 8 <= len(raw) <= 16:
        raise ApiError("invalid_request", "a card id is 8-16 bytes in hex (FCI tag 8A)")
    return raw.hex().upper()


def get_card(ctx: ServerContext, card_id: str) -> RegisteredCardInfo:
    with ctx.db.read_session() as s:
        row = s.get(RegisteredCard, normalize_card_id(card_id))
        if row is None:
            raise ApiError("not_found", f"no registered card {card_id}")
        return _info(row, _bound_user(s, row))


def list_cards(ctx: ServerContext) -> list[RegisteredCardInfo]:
    with ctx.db.read_session() as s:
        return [_info(r, _bound_user(s, r)) for r in
                s.scalars(select(RegisteredCard).order_by(RegisteredCard.card_id_hex))]


def revoke_card(ctx: ServerContext, card_id: str, *, by: int | None = None) -> RegisteredCardInfo:
    """A lost, stolen or withdrawn card: it enrolls no more keys, and the certificates of the
    keys it holds are revoked (cessation_of_operation). Idempotent."""
    card_id = normalize_card_id(card_id)
    with ctx.db.transaction() as s:
        row = s.get(RegisteredCard, card_id, with_for_update=True)
        if row is None:
            raise ApiError("not_found", f"no registered card {card_id}")
        if row.status != "revoked":
            now = utcnow()
            row.status, row.revoked_at = "revoked", now
            key_ids = select(Card.id).where(Card.registry_card_id == card_id)
            for cert in s.scalars(select(Certificate).where(Certificate.card_id.in_(key_ids),
                                                            Certificate.status != "revoked")):
                cert.status, cert.revoked_at = "revoked", now
                cert.revocation_reason = "cessation_of_operation"
                audit.record(s, "certificate.revoke", "ok", client_id=by,
                             serial_hex=cert.serial_hex, detail=f"card {card_id} revoked")
            audit.record(s, "card.revoke", "ok", client_id=by, detail=f"card {card_id}")
        return _info(row, _bound_user(s, row))


_BIND = (update(RegisteredCard.__table__)
         .where(RegisteredCard.card_id_hex == bindparam("card_id"), RegisteredCard.status == "active",
                (RegisteredCard.bound_user_id.is_(None))
                | (RegisteredCard.bound_user_id == bindparam("user_id")))
         .values(bound_user_id=bindparam("user_id")))


def bind_card(s: Session | Connection, card_id: str, user_id: int) -> None:
    """Bind the registry card to the user at issuance, atomically: a compare-and-set that
    succeeds only for an active card that is unbound or already this user's."""
    bound = s.execute(_BIND, {"card_id": card_id, "user_id": user_id}).rowcount
    if bound != 1:
        status = s.execute(select(RegisteredCard.status)
                           .where(RegisteredCard.card_id_hex == card_id)).scalar()
        if status != "active":
            raise ApiError("card_revoked", f"card {card_id} is revoked in the card registry")
        raise ApiError("card_bound_to_another_user",
                       f"card {card_id} is registered to another user")
