"""Database schema (SQLAlchemy 2). Everything a replica needs lives here: sessions,
challenges, nonces, counters, failure counts, audit. Times are naive UTC datetimes.

The Alembic migrations in migrations/versions/ create exactly this schema; a test
compares the two.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ApiClient(Base):
    """A terminal, merchant or admin client; only the SHA-256 of its token is stored."""
    __tablename__ = "api_clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # terminal | merchant | admin
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # A merchant's name as the card holder sees it on the terminal and the card signs it
    # (SIGN TRANSACTION tag 83); NULL: the client's name.
    display_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Refusals that are not evidence against a user (a certificate that is not the user's,
    # a malformed answer) count here, per client, in a window starting at refusals_since.
    refusals: Mapped[int] = mapped_column(Integer, default=0)
    refusals_since: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    # Users are created by the bank (an admin client), never by a terminal.
    created_by_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"),
                                                             nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Card(Base):
    """One key generated in one slot of a user's card; holds the anti-replay counter."""
    __tablename__ = "cards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    requires_server_signature: Mapped[bool] = mapped_column(Boolean, default=False)
    # The physical card (card registry) whose attestation proved the key was generated in
    # it; NULL for an unattested enrollment (allowed only by settings).
    registry_card_id: Mapped[str | None] = mapped_column(
        ForeignKey("registered_cards.card_id_hex"), nullable=True, index=True)
    # Assurance: True only when a card attestation was verified at enrollment. Payments
    # may require it.
    attested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Slot policy bits as the card attested them (bit0 PIN per signature, bit1 server-signed).
    attested_policy: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The algorithm of the bank key the card checks 8E with (FCI at enrollment: 0x01
    # RSA-2048, 0x11 EC P-256); NULL for rows before 0005 (RSA-2048). server/bank_signature.py
    bank_key_algorithm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The ATTEST response (statement || 9E signature), kept for audit.
    attestation: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Highest SIGN TRANSACTION counter accepted; -1 before the first payment; starts at the
    # attested counter.
    last_counter: Mapped[int] = mapped_column(BigInteger, default=-1)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Certificate(Base):
    """Every certificate the CA signed. status: pending_store (issued, write to card not
    yet confirmed), active, revoked. Nothing issued is ever deleted."""
    __tablename__ = "certificates"
    serial_hex: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    enrollment_id: Mapped[str] = mapped_column(String(32), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[datetime] = mapped_column(DateTime)
    not_after: Mapped[datetime] = mapped_column(DateTime)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    stored_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


Index("ix_certificates_user_slot_status", Certificate.user_id, Certificate.slot,
      Certificate.status)


class Enrollment(Base):
    """Figure 5 session. state: keygen_sent -> pop_sent -> cert_sent -> completed, or
    aborted / failed / expired. `seq` numbers the pending batch so an old or repeated
    post is refused; `pending_batch` is kept so an interrupted terminal can resume."""
    __tablename__ = "enrollments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    terminal_client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    slot: Mapped[int] = mapped_column(Integer)
    card_label: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    pending_batch: Mapped[str | None] = mapped_column(Text, nullable=True)
    public_key_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    requires_server_signature: Mapped[bool] = mapped_column(Boolean, default=False)
    # The card's bank key algorithm from the FCI of the first batch (copied to the card row).
    bank_key_algorithm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The activation code that authorized this session, and whether it allows replacing
    # the user's active certificate for the slot.
    activation_code_id: Mapped[int | None] = mapped_column(
        ForeignKey("activation_codes.id"), nullable=True)
    replace_authorized: Mapped[bool] = mapped_column(Boolean, default=False)
    certificate_serial_hex: Mapped[str | None] = mapped_column(String(40), nullable=True)
    failure_code: Mapped[str | None] = mapped_column(String(48), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class RegisteredCard(Base):
    """The card registry: every card the issuer personalized, with the attestation
    certificate its personalization record carries (chain checked at import). A card is
    bound to the first user a certificate is issued to, for good."""
    __tablename__ = "registered_cards"
    card_id_hex: Mapped[str] = mapped_column(String(32), primary_key=True)
    attestation_certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    applet_version: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # active | revoked
    bound_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True,
                                                      index=True)
    personalized_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime)
    imported_by_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"),
                                                              nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ActivationCode(Base):
    """A one-time enrollment authorization the bank issued for a user and slot. Only a
    keyed hash (HMAC with the server's activation-code key) is stored. Single use,
    expiring, locked after settings.activation_code_max_attempts wrong tries."""
    __tablename__ = "activation_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    code_hmac: Mapped[str] = mapped_column(String(64), unique=True)
    replace: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"),
                                                             nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Challenge(Base):
    """One-time proof-of-possession challenge (single use, expiring)."""
    __tablename__ = "challenges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Payment(Base):
    """Figure 6 session. state: created -> sign_requested -> authorized, or refused /
    expired (cert_requested: rows of the four-request path, before 0003). `signed_fields` is the exact TLV 81..85 block sent to the card,
    so the signature is verified over precisely what the server asked for."""
    __tablename__ = "payments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"), index=True)
    terminal_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"),
                                                           nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payee: Mapped[str] = mapped_column(String(64))
    order_ref: Mapped[str] = mapped_column(String(64))
    # The card's issuer policy when the payment was created / claimed:
    # server_signed (8E) | transaction; bare_hash only in rows before 0003.
    signing_mode: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    pending_batch: Mapped[str | None] = mapped_column(Text, nullable=True)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), nullable=True)
    certificate_serial_hex: Mapped[str | None] = mapped_column(String(40), nullable=True)
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary, unique=True, nullable=True)
    nonce_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    nonce_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    signed_fields: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    card_counter: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    refusal_code: Mapped[str | None] = mapped_column(String(48), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    authorized_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEvent(Base):
    """Append-only record of every authorization, issuance, revocation and refusal."""
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(8))  # ok | refused
    code: Mapped[str | None] = mapped_column(String(48), nullable=True)
    client_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payment_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    certificate_serial_hex: Mapped[str | None] = mapped_column(String(40), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(512), nullable=True)


class PublishedCrl(Base):
    """The CA's current CRL, one row (id 1), produced by revocation.publish_crl and served
    as stored. `number` is the cRLNumber (RFC 5280 5.2.3): it is incremented in the same
    transaction that stores the new CRL, under the row's write lock, so it increases
    monotonically however many replicas publish. The migration creates the row (number 0,
    empty der: nothing published yet)."""
    __tablename__ = "published_crl"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger)
    # how many revoked certificates it lists: a revocation since (whatever its path and
    # however it raced the publication) makes the table's count differ
    revoked_count: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[datetime] = mapped_column(DateTime)
    next_update: Mapped[datetime] = mapped_column(DateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
