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
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from cardshield.protocol.tlv import TLVError
from cardshield.protocol.transaction import (Transaction, parse_sign_transaction_response,
                                             request_data, signed_transaction_data)

from . import audit, card_commands, limits
from .batches import Batch, card_data
from .ca import PAYMENT_SLOT
from .clock import utcnow
from .context import ServerContext
from .errors import ApiError
from .models import Card, Certificate, Payment, User

# Compare-and-set statements go to the tables directly: plain Core, without the ORM's
# bulk-update bookkeeping (which cost more than the statement itself).
CARDS, PAYMENTS, CERTIFICATES = Card.__table__, Payment.__table__, Certificate.__table__
# Built once: statement construction and cache-key generation are a large share of the
# per-request cost on the hot path.
_LOAD_PAYMENT = (select(Payment, User).join(User, User.id == Payment.user_id)
                 .where(Payment.id == bindparam("payment_id")).with_for_update(of=Payment))
NONCE_BYTES = 32
SIGNING_MODES = ("transaction", "bare_hash")
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


def _view(p: Payment, user_external: str) -> PaymentView:
    return PaymentView(p.id, p.state, user_external, p.amount_minor, p.currency, p.payee,
                       p.order_ref, p.signing_mode, p.expires_at,
                       Batch.loads(p.pending_batch).to_json() if p.pending_batch else None,
                       p.card_counter, p.authorized_at, p.refusal_code, p.certificate_serial_hex)


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

        def work(s: Session) -> PaymentView:
            user = s.scalar(select(User).where(User.external_id == user_external_id))
            if user is None:
                raise ApiError("unknown_user", f"no enrolled user {user_external_id}")
            limits.ensure_user_not_blocked(user)
            now = utcnow()
            p = Payment(id=secrets.token_hex(16), merchant_client_id=merchant_id,
                        user_id=user.id, amount_minor=amount_minor, currency=currency,
                        payee=payee, order_ref=order_ref, signing_mode=signing_mode,
                        state="created", seq=0, created_at=now,
                        expires_at=now + timedelta(seconds=self.ctx.settings.payment_ttl_seconds))
            s.add(p)
            return _view(p, user.external_id)

        return self.ctx.run(work, lambda s, err: audit.record(
            s, "payment.create", "refused", code=err.code, client_id=merchant_id,
            user=user_external_id, detail=err.message))

    def get(self, client_id: int, role: str, payment_id: str) -> PaymentView:
        with self.ctx.db.transaction() as s:
            p = s.get(Payment, payment_id)
            owner = p.merchant_client_id if p and role == "merchant" else (
                p.terminal_client_id if p else None)
            if p is None or (role != "admin" and owner != client_id):
                raise ApiError("not_found", f"no payment {payment_id} for this client")
            self._expire_if_due(p)
            return _view(p, s.scalar(select(User.external_id).where(User.id == p.user_id)))

    @staticmethod
    def _expire_if_due(p: Payment) -> bool:
        if p.state in ("created", "cert_requested", "sign_requested") and p.expires_at <= utcnow():
            p.state, p.pending_batch, p.refusal_code = "expired", None, "payment_expired"
            return True
        return False

    # -- 601/602: the terminal takes the payment -----------------------------------------
    def claim(self, terminal_id: int, payment_id: str) -> PaymentView:
        def work(s: Session) -> PaymentView:
            p, user = self._load(s, payment_id)
            if p.terminal_client_id not in (None, terminal_id):
                raise ApiError("wrong_terminal", "another terminal has taken this payment")
            if p.state != "created":  # resume: hand out the pending batch again
                return _view(p, user.external_id)
            if self._expire_if_due(p):
                return _view(p, user.external_id)
            limits.ensure_user_not_blocked(user)
            cert_len = s.scalar(select(Certificate.der).where(
                Certificate.user_id == p.user_id, Certificate.slot == PAYMENT_SLOT,
                Certificate.status == "active").order_by(Certificate.stored_at.desc()).limit(1))
            if cert_len is None:
                raise ApiError("no_active_certificate",
                               f"user {user.external_id} has no active payment certificate; "
                               "enroll the card first")
            p.terminal_client_id = terminal_id
            p.seq, p.state = 1, "cert_requested"
            p.pending_batch = Batch(1, "read_certificate", [card_commands.select_applet()]
                                    + card_commands.read_certificate(PAYMENT_SLOT, len(cert_len))
                                    ).dumps()
            return _view(p, user.external_id)

        return self.ctx.run(work, lambda s, err: audit.record(
            s, "payment.claim", "refused", code=err.code, client_id=terminal_id,
            payment_id=payment_id, detail=err.message))

    def _load(self, s: Session, payment_id: str) -> tuple[Payment, User]:
        """The payment row, locked (PostgreSQL; SQLite's BEGIN IMMEDIATE locks already),
        with its user in the same query."""
        row = s.execute(_LOAD_PAYMENT, {"payment_id": payment_id}).first()
        if row is None:
            raise ApiError("not_found", f"no payment {payment_id}")
        return row[0], row[1]

    # -- 603..608 -------------------------------------------------------------------------
    def post_responses(self, terminal_id: int, payment_id: str, seq: int,
                       responses: list[bytes]) -> PaymentView:
        ids: dict = {}

        def work(s: Session) -> PaymentView:
            p, user = self._load(s, payment_id)
            ids.update(user_id=p.user_id, card_id=p.card_id, serial=p.certificate_serial_hex)
            if p.terminal_client_id != terminal_id:
                raise ApiError("wrong_terminal", "this payment belongs to another terminal")
            if p.state == "authorized":
                raise ApiError("nonce_already_used", "this payment was already authorized; its "
                                                     "nonce is spent and a signature counts once")
            if p.state not in ("cert_requested", "sign_requested"):
                raise ApiError("session_closed", f"the payment is {p.state}")
            if self._expire_if_due(p) or (p.nonce_expires_at and p.nonce_expires_at <= utcnow()):
                ids["final"] = True
                raise ApiError("payment_expired", "the payment session expired")
            if seq != p.seq:
                raise ApiError("stale_step", f"these responses answer batch {seq}, but batch "
                                             f"{p.seq} is pending")
            data = card_data(Batch.loads(p.pending_batch), responses)
            ids["final"] = True
            if p.state == "cert_requested":
                self._on_certificate(s, p, data)
            else:
                self._on_signature(s, p, user, data)
            ids.pop("final")
            return _view(p, user.external_id)

        def on_refusal(s: Session, err: ApiError) -> None:
            if ids.get("final") and err.code in FINAL_CODES:
                s.execute(update(Payment).where(Payment.id == payment_id,
                                                Payment.state.in_(("cert_requested",
                                                                   "sign_requested")))
                          .values(state="expired" if err.code == "payment_expired" else "refused",
                                  refusal_code=err.code, pending_batch=None))
                limits.register_failure(s, err.code, self.ctx.settings.max_consecutive_failures,
                                        user_id=ids.get("user_id"), card_id=ids.get("card_id"))
            audit.record(s, "payment.authorize", "refused", code=err.code, client_id=terminal_id,
                         card_id=ids.get("card_id"), payment_id=payment_id,
                         serial_hex=ids.get("serial"), detail=err.message)

        return self.ctx.run(work, on_refusal)

    def _on_certificate(self, s: Session, p: Payment, data: list[bytes]) -> None:
        der = b"".join(data[2:])  # after SELECT applet and SELECT EF
        cert = self.ctx.ca.validate(der)
        serial_hex = format(cert.serial_number, "x")
        row = s.get(Certificate, serial_hex)
        if row is not None and row.card_id:
            p.card_id = row.card_id
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
        card = s.get(Card, row.card_id)
        limits.ensure_card_not_blocked(card)
        p.certificate_serial_hex = serial_hex
        nonce = secrets.token_bytes(NONCE_BYTES)
        tlvs = Transaction(p.amount_minor, p.currency, p.payee, p.order_ref, nonce).tlvs()
        p.nonce, p.signed_fields = nonce, tlvs
        p.nonce_expires_at = min(p.expires_at, utcnow() + timedelta(
            seconds=self.ctx.settings.challenge_ttl_seconds))
        p.seq, p.state = p.seq + 1, "sign_requested"
        if p.signing_mode == "transaction":
            server_sig = (self.ctx.ca.sign_request(request_data(tlvs))
                          if card.requires_server_signature else None)
            steps = card_commands.sign_transaction(PAYMENT_SLOT, tlvs, server_sig)
            notes = ["PIN required: the user confirms amount and payee at the terminal"]
        else:
            steps = [card_commands.sign_bare_hash(bare_hash_digest(tlvs))]
            notes = ["WEAKER: bare-hash signing (patent step 605) does not bind the "
                     "amount and payee on the card; prefer signing_mode=transaction"]
        p.pending_batch = Batch(p.seq, "sign", steps, notes).dumps()

    def _on_signature(self, s: Session, p: Payment, user: User, data: list[bytes]) -> None:
        card = s.get(Card, p.card_id)
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
        now = utcnow()
        # 608: revocation may have happened since the certificate step
        status = s.scalar(select(CERTIFICATES.c.status).where(
            CERTIFICATES.c.serial_hex == p.certificate_serial_hex))
        if status != "active":
            raise ApiError("certificate_revoked", "the certificate was revoked during the payment")
        if counter is not None:
            swapped = s.execute(update(CARDS).where(CARDS.c.id == card.id,
                                                    CARDS.c.last_counter < counter,
                                                    CARDS.c.blocked_at.is_(None))
                                .values(last_counter=counter)).rowcount
            if swapped != 1:
                raise ApiError("counter_not_increasing",
                               f"card counter {counter} is not above the last accepted one: a "
                               "replayed or cloned signature")
        consumed = s.execute(update(PAYMENTS).where(PAYMENTS.c.id == p.id,
                                                    PAYMENTS.c.state == "sign_requested",
                                                    PAYMENTS.c.nonce_used_at.is_(None))
                             .values(state="authorized", nonce_used_at=now, authorized_at=now,
                                     card_counter=counter, signature=signature,
                                     pending_batch=None)).rowcount
        if consumed != 1:
            raise ApiError("nonce_already_used", "the payment's nonce was already used")
        # the row changed by the compare-and-set above: mirror it without another SELECT
        for name, value in dict(state="authorized", nonce_used_at=now, authorized_at=now,
                                card_counter=counter, signature=signature,
                                pending_batch=None).items():
            set_committed_value(p, name, value)
        if user.consecutive_failures or card.consecutive_failures:
            limits.reset_failures(s, user_id=p.user_id, card_id=card.id)
        audit.record(s, "payment.authorize", "ok", client_id=p.terminal_client_id,
                     card_id=card.id, payment_id=p.id, serial_hex=p.certificate_serial_hex,
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
