"""Payment authorization, patent figure 6 (steps 601-608).

    create (merchant)          amount, currency, payee, order ref for a user
    claim (terminal)   601-602 SELECT + SELECT cert EF + READ BINARY
    cert_requested     603-604 certificate validated: chain to the CA, validity, not
                               revoked, registered and active for that user, card not blocked;
                       605-606 SIGN TRANSACTION with amount, currency, payee, order ref and a
                               fresh nonce (+ 8E server signature when the slot requires it);
                               or, flagged weaker, PSO CDS over a bare SHA-256 digest
    sign_requested     607-608 signature verified over exactly the bytes sent; nonce
                               consumed once (compare-and-set on the payment row); card
                               counter strictly increasing (compare-and-set on the card row);
                               certificate still not revoked: authorized, once.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from types import SimpleNamespace
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy import Connection

from cardshield.protocol.tlv import TLVError
from cardshield.protocol.transaction import (Transaction, parse_sign_transaction_response,
                                             request_data, signed_transaction_data)

from . import audit, card_commands, limits
from .batches import Batch, card_data, stored_json
from .ca import PAYMENT_SLOT
from .clock import utcnow
from .context import ServerContext
from .db import Prebuilt
from .errors import ApiError
from .models import Card, Certificate, Payment, User

# Compare-and-set statements go to the tables directly: plain Core, without the ORM's
# bulk-update bookkeeping (which cost more than the statement itself).
CARDS, PAYMENTS, CERTIFICATES = Card.__table__, Payment.__table__, Certificate.__table__
# Built once: statement construction and cache-key generation are a large share of the
# per-request cost on the hot path.
USERS = User.__table__
_LOAD_PAYMENT_SELECT = (select(PAYMENTS, USERS.c.external_id.label("user_external_id"),
                        USERS.c.consecutive_failures.label("user_failures"),
                        USERS.c.blocked_at.label("user_blocked_at"))
                 .join(USERS, USERS.c.id == PAYMENTS.c.user_id)
                 .where(PAYMENTS.c.id == bindparam("payment_id")))
_LOAD_PAYMENT = Prebuilt(_LOAD_PAYMENT_SELECT)
_LOAD_PAYMENT_LOCKED = Prebuilt(_LOAD_PAYMENT_SELECT.with_for_update(of=PAYMENTS))
_FIND_USER = Prebuilt(select(USERS).where(USERS.c.external_id == bindparam("external_id")))
_ACTIVE_CERT_LENGTH = Prebuilt(select(func.length(CERTIFICATES.c.der))
                       .where(CERTIFICATES.c.user_id == bindparam("user_id"),
                              CERTIFICATES.c.slot == PAYMENT_SLOT,
                              CERTIFICATES.c.status == "active")
                       .order_by(CERTIFICATES.c.stored_at.desc()).limit(1))
_CERT_WITH_CARD = Prebuilt(select(CERTIFICATES, CARDS.c.blocked_at.label("card_blocked_at"),
                          CARDS.c.requires_server_signature)
                   .join(CARDS, CARDS.c.id == CERTIFICATES.c.card_id)
                   .where(CERTIFICATES.c.serial_hex == bindparam("serial_hex")))
_CARD_KEY = Prebuilt(select(CARDS.c.public_key_der, CARDS.c.consecutive_failures,
                    CERTIFICATES.c.status.label("certificate_status"))
             .join(CERTIFICATES, CERTIFICATES.c.card_id == CARDS.c.id)
             .where(CARDS.c.id == bindparam("card_id"),
                    CERTIFICATES.c.serial_hex == bindparam("serial_hex")))
# The two compare-and-set statements of step 608.
_COUNTER_SWAP = Prebuilt(update(CARDS).where(CARDS.c.id == bindparam("card_id"),
                                     CARDS.c.last_counter < bindparam("counter"),
                                     CARDS.c.blocked_at.is_(None))
                 .values(last_counter=bindparam("counter")))
_CONSUME_NONCE = Prebuilt(update(PAYMENTS).where(PAYMENTS.c.id == bindparam("payment_id"),
                                         PAYMENTS.c.state == "sign_requested",
                                         PAYMENTS.c.nonce_used_at.is_(None))
                  .values(state="authorized", nonce_used_at=bindparam("now"),
                          authorized_at=bindparam("now"), card_counter=bindparam("counter"),
                          signature=bindparam("signature"), pending_batch=None))
_INSERT_PAYMENT = Prebuilt(insert(PAYMENTS))
# One UPDATE per set of changed columns, built on first use and then reused: building
# update().values(...) per request cost more CPU than executing it.
_UPDATES: dict[tuple[str, ...], object] = {}
NONCE_BYTES = 32
SIGNING_MODES = ("transaction", "bare_hash")
OPEN_STATES = ("created", "cert_requested", "sign_requested")
BARE_HASH_MAGIC = b"CSTX1"
# Refusals that end the payment (the merchant creates a new one). Other refusals
# (wrong terminal, stale or repeated post, a card status word such as a wrong PIN)
# leave the batch pending so the terminal can retry it until the payment expires.
FINAL_CODES = frozenset({
    "card_response_malformed", "certificate_unreadable", "certificate_untrusted",
    "certificate_not_valid_now", "certificate_revoked", "certificate_not_registered",
    "certificate_wrong_user", "card_blocked", "user_blocked", "signature_mismatch",
    "counter_not_increasing", "payment_expired",
})


def bare_hash_digest(transaction_tlvs: bytes) -> bytes:
    """What the weaker bare-hash mode signs: SHA-256("CSTX1" || 81..85). No card counter."""
    return hashlib.sha256(BARE_HASH_MAGIC + transaction_tlvs).digest()


@dataclass
class PaymentView:
    payment_id: str
    state: str
    user_id: str
    amount_minor: int
    currency: str
    payee: str
    order_ref: str
    signing_mode: str
    expires_at: datetime
    batch: dict | None = None
    card_counter: int | None = None
    authorized_at: datetime | None = None
    refusal_code: str | None = None
    certificate_serial: str | None = None


class PaymentRecord(SimpleNamespace):
    """A payments row (+ its user's id, failure count and block) as plain attributes.
    The hot path reads and writes rows with prebuilt Core statements: the ORM's unit of
    work cost more CPU than everything else in a payment."""


def _view(p: PaymentRecord) -> PaymentView:
    return PaymentView(p.id, p.state, p.user_external_id, p.amount_minor, p.currency, p.payee,
                       p.order_ref, p.signing_mode, p.expires_at,
                       stored_json(p.pending_batch),
                       p.card_counter, p.authorized_at, p.refusal_code, p.certificate_serial_hex)


def _save(s: Connection, p: PaymentRecord, **changes) -> None:
    columns = tuple(sorted(changes))
    statement = _UPDATES.get(columns)
    if statement is None:  # bind names must differ from column names in an UPDATE
        statement = _UPDATES[columns] = Prebuilt(
            update(PAYMENTS).where(PAYMENTS.c.id == bindparam("p_id"))
            .values({c: bindparam("new_" + c) for c in columns}))
    s.execute(statement, {"p_id": p.id, **{"new_" + c: v for c, v in changes.items()}})
    p.__dict__.update(changes)


def _user_not_blocked(p: PaymentRecord) -> None:
    if p.user_blocked_at is not None:
        raise ApiError("user_blocked", f"user {p.user_external_id} is blocked after repeated "
                                       "failed authentications; an operator must unblock it")


class PaymentService:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    # -- merchant -------------------------------------------------------------------------
    def create(self, merchant_id: int, user_external_id: str, amount_minor: int, currency: str,
               payee: str, order_ref: str, signing_mode: str) -> PaymentView:
        if signing_mode not in SIGNING_MODES:
            raise ApiError("invalid_request", f"signing_mode must be one of {SIGNING_MODES}")
        try:  # the card's own field rules (docs/apdu.md SIGN TRANSACTION)
            Transaction(amount_minor, currency, payee, order_ref, b"\0" * 16)
        except ValueError as exc:
            raise ApiError("invalid_request", str(exc)) from exc

        def work(s: Connection) -> PaymentView:
            user = s.execute(_FIND_USER, {"external_id": user_external_id}).first()
            if user is None:
                raise ApiError("unknown_user", f"no enrolled user {user_external_id}")
            now = utcnow()
            p = PaymentRecord(
                id=secrets.token_hex(16), merchant_client_id=merchant_id, terminal_client_id=None,
                user_id=user.id, amount_minor=amount_minor, currency=currency, payee=payee,
                order_ref=order_ref, signing_mode=signing_mode, state="created", seq=0,
                pending_batch=None, card_id=None, certificate_serial_hex=None, nonce=None,
                nonce_expires_at=None, nonce_used_at=None, signed_fields=None, card_counter=None,
                signature=None, refusal_code=None, created_at=now, authorized_at=None,
                expires_at=now + timedelta(seconds=self.ctx.settings.payment_ttl_seconds),
                user_external_id=user.external_id, user_failures=user.consecutive_failures,
                user_blocked_at=user.blocked_at)
            _user_not_blocked(p)
            s.execute(_INSERT_PAYMENT, {c.name: getattr(p, c.name) for c in PAYMENTS.columns})
            return _view(p)

        return self.ctx.run(work, lambda s, err: audit.record(
            s, "payment.create", "refused", code=err.code, client_id=merchant_id,
            user=user_external_id, detail=err.message), core=True)

    def get(self, client_id: int, role: str, payment_id: str) -> PaymentView:
        with self.ctx.db.core_transaction() as s:
            row = s.execute(_LOAD_PAYMENT, {"payment_id": payment_id}).first()
            p = PaymentRecord(**row._mapping) if row else None
            owner = None if p is None else (
                p.merchant_client_id if role == "merchant" else p.terminal_client_id)
            if p is None or (role != "admin" and owner != client_id):
                raise ApiError("not_found", f"no payment {payment_id} for this client")
            self._expire_if_due(s, p)
            return _view(p)

    @staticmethod
    def _expire_if_due(s: Connection, p: PaymentRecord) -> bool:
        if p.state in OPEN_STATES and p.expires_at <= utcnow():
            _save(s, p, state="expired", pending_batch=None, refusal_code="payment_expired")
            return True
        return False

    # -- 601/602: the terminal takes the payment -----------------------------------------
    def claim(self, terminal_id: int, payment_id: str) -> PaymentView:
        def work(s: Connection) -> PaymentView:
            p = self._load(s, payment_id)
            if p.terminal_client_id not in (None, terminal_id):
                raise ApiError("wrong_terminal", "another terminal has taken this payment")
            if p.state != "created" or self._expire_if_due(s, p):
                return _view(p)  # resume: hand out the pending batch again
            _user_not_blocked(p)
            cert_len = s.scalar(_ACTIVE_CERT_LENGTH, {"user_id": p.user_id})
            if cert_len is None:
                raise ApiError("no_active_certificate",
                               f"user {p.user_external_id} has no active payment certificate; "
                               "enroll the card first")
            _save(s, p, terminal_client_id=terminal_id, seq=1, state="cert_requested",
                  pending_batch=Batch(1, "read_certificate", [card_commands.select_applet()]
                                      + card_commands.read_certificate(PAYMENT_SLOT, cert_len)
                                      ).dumps())
            return _view(p)

        return self.ctx.run(work, lambda s, err: audit.record(
            s, "payment.claim", "refused", code=err.code, client_id=terminal_id,
            payment_id=payment_id, detail=err.message), core=True)

    def _load(self, s: Connection, payment_id: str) -> PaymentRecord:
        """The payment row, locked (PostgreSQL; SQLite's BEGIN IMMEDIATE locks already),
        with its user in the same query."""
        statement = _LOAD_PAYMENT if self.ctx.db.is_sqlite else _LOAD_PAYMENT_LOCKED
        row = s.execute(statement, {"payment_id": payment_id}).first()
        if row is None:
            raise ApiError("not_found", f"no payment {payment_id}")
        return PaymentRecord(**row._mapping)

    # -- 603..608 -------------------------------------------------------------------------
    def post_responses(self, terminal_id: int, payment_id: str, seq: int,
                       responses: list[bytes]) -> PaymentView:
        ids: dict = {}

        def work(s: Connection) -> PaymentView:
            p = self._load(s, payment_id)
            ids.update(user_id=p.user_id, card_id=p.card_id, serial=p.certificate_serial_hex)
            if p.terminal_client_id != terminal_id:
                raise ApiError("wrong_terminal", "this payment belongs to another terminal")
            if p.state == "authorized":
                raise ApiError("nonce_already_used", "this payment was already authorized; its "
                                                     "nonce is spent and a signature counts once")
            if p.state not in ("cert_requested", "sign_requested"):
                raise ApiError("session_closed", f"the payment is {p.state}")
            now = utcnow()
            if p.expires_at <= now or (p.nonce_expires_at and p.nonce_expires_at <= now):
                ids["final"] = True
                raise ApiError("payment_expired", "the payment session expired")
            if seq != p.seq:
                raise ApiError("stale_step", f"these responses answer batch {seq}, but batch "
                                             f"{p.seq} is pending")
            try:
                data = card_data(Batch.loads(p.pending_batch), responses)
            except ApiError as err:
                if err.code == "card_error" and p.state == "sign_requested":
                    # The card would not sign what the server sent (6982 on a slot that
                    # needs the server's signature after a relay changed the command, a
                    # counter at its end, ...): a failed authentication. An honest retry
                    # stays possible until the nonce expires or the limit blocks the card.
                    raise ApiError("card_refused_signature", err.message) from err
                raise
            ids["final"] = True
            if p.state == "cert_requested":
                self._on_certificate(s, p, data, ids)
            else:
                self._on_signature(s, p, data)
            ids.pop("final")
            return _view(p)

        def on_refusal(s: Connection, err: ApiError) -> None:
            if ids.get("final") and err.code in FINAL_CODES:
                s.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment_id,
                                                 PAYMENTS.c.state.in_(("cert_requested",
                                                                       "sign_requested")))
                          .values(state="expired" if err.code == "payment_expired" else "refused",
                                  refusal_code=err.code, pending_batch=None))
                limits.register_failure(s, err.code, self.ctx.settings.max_consecutive_failures,
                                        user_id=ids.get("user_id"), card_id=ids.get("card_id"))
            elif err.code == "card_refused_signature":
                limits.register_failure(s, err.code, self.ctx.settings.max_consecutive_failures,
                                        user_id=ids.get("user_id"), card_id=ids.get("card_id"))
                if limits.is_blocked(s, user_id=ids["user_id"], card_id=ids["card_id"]):
                    # no retry can succeed any more: end the payment now
                    s.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment_id,
                                                     PAYMENTS.c.state == "sign_requested")
                              .values(state="refused", refusal_code=err.code, pending_batch=None))
            audit.record(s, "payment.authorize", "refused", code=err.code, client_id=terminal_id,
                         card_id=ids.get("card_id"), payment_id=payment_id,
                         serial_hex=ids.get("serial"), detail=err.message)

        return self.ctx.run(work, on_refusal, core=True)

    def _on_certificate(self, s: Connection, p: PaymentRecord, data: list[bytes], ids: dict) -> None:
        der = b"".join(data[2:])  # after SELECT applet and SELECT EF
        cert = self.ctx.ca.validate(der)
        serial_hex = format(cert.serial_number, "x")
        row = s.execute(_CERT_WITH_CARD, {"serial_hex": serial_hex}).first()
        if row is not None:
            ids["card_id"] = row.card_id
        if row is None or row.der != der:
            raise ApiError("certificate_not_registered", "the card's certificate is not one this "
                                                         "server issued and recorded")
        if row.status == "revoked":
            raise ApiError("certificate_revoked", f"certificate {serial_hex} is revoked "
                                                  f"({row.revocation_reason})")
        if row.user_id != p.user_id:
            raise ApiError("certificate_wrong_user",
                           "the card's certificate belongs to another user")
        if row.status != "active" or row.slot != PAYMENT_SLOT:
            raise ApiError("certificate_not_registered",
                           "the certificate is not the user's active payment certificate")
        limits.ensure_card_not_blocked(row.card_blocked_at)
        nonce = secrets.token_bytes(NONCE_BYTES)
        tlvs = Transaction(p.amount_minor, p.currency, p.payee, p.order_ref, nonce).tlvs()
        if p.signing_mode == "transaction":
            server_sig = (self.ctx.ca.sign_request(request_data(tlvs))
                          if row.requires_server_signature else None)
            steps = card_commands.sign_transaction(PAYMENT_SLOT, tlvs, server_sig)
            notes = ["PIN required: the user confirms amount and payee at the terminal"]
        else:
            steps = [card_commands.sign_bare_hash(bare_hash_digest(tlvs))]
            notes = ["WEAKER: bare-hash signing (patent step 605) does not bind the "
                     "amount and payee on the card; prefer signing_mode=transaction"]
        _save(s, p, card_id=row.card_id, certificate_serial_hex=serial_hex, nonce=nonce,
              signed_fields=tlvs, seq=p.seq + 1, state="sign_requested",
              nonce_expires_at=min(p.expires_at, utcnow() + timedelta(
                  seconds=self.ctx.settings.challenge_ttl_seconds)),
              pending_batch=Batch(p.seq + 1, "sign", steps, notes).dumps())

    def _on_signature(self, s: Connection, p: PaymentRecord, data: list[bytes]) -> None:
        card = s.execute(_CARD_KEY, {"card_id": p.card_id, "serial_hex": p.certificate_serial_hex}
                         ).first()
        public_key = _load_public_key(card.public_key_der)
        if p.signing_mode == "transaction":
            try:
                signed = parse_sign_transaction_response(data[-1])
            except (TLVError, ValueError) as exc:
                raise ApiError("card_response_malformed",
                               f"SIGN TRANSACTION response unreadable: {exc}") from exc
            counter, signature = signed.counter, signed.signature
            message, algorithm = signed_transaction_data(p.signed_fields, counter), hashes.SHA256()
        else:
            counter, signature = None, data[-1]
            message, algorithm = bare_hash_digest(p.signed_fields), utils.Prehashed(hashes.SHA256())
        try:
            public_key.verify(signature, message, padding.PKCS1v15(), algorithm)
        except InvalidSignature as exc:
            raise ApiError("signature_mismatch",
                           "the signature does not verify over the payment the server sent with "
                           "this card's key (changed amount or payee, another card, or a "
                           "signature from another payment)") from exc
        # 608: revocation may have happened since the certificate step
        if card.certificate_status != "active":
            raise ApiError("certificate_revoked", "the certificate was revoked during the payment")
        if counter is not None:
            swapped = s.execute(_COUNTER_SWAP, {"card_id": p.card_id, "counter": counter}).rowcount
            if swapped != 1:
                raise ApiError("counter_not_increasing",
                               f"card counter {counter} is not above the last accepted one: a "
                               "replayed or cloned signature")
        now = utcnow()
        consumed = s.execute(_CONSUME_NONCE, {
            "payment_id": p.id, "now": now, "counter": counter, "signature": signature}).rowcount
        if consumed != 1:
            raise ApiError("nonce_already_used", "the payment's nonce was already used")
        p.__dict__.update(state="authorized", nonce_used_at=now, authorized_at=now,
                          card_counter=counter, signature=signature, pending_batch=None)
        if p.user_failures or card.consecutive_failures:
            limits.reset_failures(s, user_id=p.user_id, card_id=p.card_id)
        audit.record(s, "payment.authorize", "ok", client_id=p.terminal_client_id,
                     card_id=p.card_id, payment_id=p.id, serial_hex=p.certificate_serial_hex,
                     detail=f"{p.signing_mode} counter={counter}")


_KEY_CACHE: dict[bytes, object] = {}


def _load_public_key(der: bytes):
    """Parsed public keys are immutable; caching them saves a DER parse per payment."""
    key = _KEY_CACHE.get(der)
    if key is None:
        key = load_der_public_key(der)
        if len(_KEY_CACHE) > 50_000:
            _KEY_CACHE.clear()
        _KEY_CACHE[der] = key
    return key


def sweep_expired_payments(s: Connection, limit: int = 500) -> list[str]:
    """End overdue open payments (created, claimed or awaiting a signature that never
    came, e.g. after the card refused to sign): a payment is never left open forever.
    Runs from `cardshield server sweep`; reading a payment expires it lazily too."""
    now = utcnow()
    ids = list(s.scalars(select(PAYMENTS.c.id).where(
        PAYMENTS.c.state.in_(OPEN_STATES), PAYMENTS.c.expires_at <= now).limit(limit)))
    for payment_id in ids:
        expired = s.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment_id,
                                                   PAYMENTS.c.state.in_(OPEN_STATES))
                            .values(state="expired", pending_batch=None,
                                    refusal_code="payment_expired")).rowcount
        if expired:
            audit.record(s, "payment.expire", "ok", payment_id=payment_id,
                         detail="session expired unfinished")
    return ids
