"""Payment authorization, patent figure 6 (steps 601-608), in three requests.

    create (merchant)           amount, currency and order ref for a user; the payee is the
                                merchant's registered display name, the signing mode the
                                card's issuer policy (8E bank-signed requests or not)
    claim (terminal)   601-606  one batch: SELECT applet, SELECT certificate EF whose FCP
                                carries SHA-256 of the stored certificate (tag 85, the
                                certificate reference), SIGN TRANSACTION with amount,
                                currency, payee, order ref and a fresh nonce (+ 8E)
    responses          603-608  one transaction: the reference is the user's active payment
                                certificate (registered, valid now, not revoked), the
                                signature verifies with that certificate's key over exactly
                                the bytes sent, the card counter moved forward by at most
                                max_counter_jump; then two compare-and-sets: the card row
                                (counter, and still not blocked, certificate still active,
                                user still not blocked) and the payment row (nonce once).

Failure counts (PSD2 RTS art. 4) move only on evidence involving the user's own key: a
signature that does not verify after the card returned the user's certificate reference,
a card refusing to sign, a counter that goes back or jumps. Anything else a terminal posts
(another certificate, malformed answers) is audited and counted against that terminal
client, which is refused for a while past client_refusal_limit.

Reading a payment never writes: expiry is computed on read and stored only by a
compare-and-set on open states, by the steps above and by the sweep.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy import Connection, bindparam, case, insert, or_, select, update
from sqlalchemy.orm import Session

from cardshield.protocol.fci import parse_certificate_fcp
from cardshield.protocol.tlv import TLVError
from cardshield.protocol.transaction import (Transaction, parse_sign_transaction_response,
                                             signed_transaction_data)

from . import audit, bank_signature, card_commands, limits
from .batches import SW_OK, Batch, card_data, stored_json
from .ca import PAYMENT_SLOT
from .clock import utcnow
from .context import ServerContext
from .errors import ApiError
from .models import ApiClient, Card, Certificate, Payment, User

CARDS, PAYMENTS, CERTIFICATES = Card.__table__, Payment.__table__, Certificate.__table__
USERS, CLIENTS = User.__table__, ApiClient.__table__
NONCE_BYTES = 32
OPEN_STATES = ("created", "cert_requested", "sign_requested")
_IS_OPEN = or_(*(PAYMENTS.c.state == state for state in OPEN_STATES))

# The statements of every payment, built once as plain Core with bind parameters: building
# a statement per request cost more CPU than running it. (Bind names differ from the
# column names an UPDATE sets.)
_FIND_USER = select(USERS).where(USERS.c.external_id == bindparam("external_id"))
_MERCHANT = (select(CLIENTS.c.name, CLIENTS.c.display_name,
                    CLIENTS.c.refusals.label("client_refusals"),
                    CLIENTS.c.refusals_since.label("client_refusals_since"))
             .where(CLIENTS.c.id == bindparam("client_id")))
# The user's active payment certificate and the card row of its key.
_ACTIVE_CARD = (select(CERTIFICATES.c.serial_hex, CERTIFICATES.c.sha256, CERTIFICATES.c.card_id,
                       CARDS.c.blocked_at, CARDS.c.requires_server_signature, CARDS.c.attested,
                       CARDS.c.bank_key_algorithm)
                .join(CARDS, CARDS.c.id == CERTIFICATES.c.card_id)
                .where(CERTIFICATES.c.user_id == bindparam("user_id"),
                       CERTIFICATES.c.slot == PAYMENT_SLOT, CERTIFICATES.c.status == "active")
                .order_by(CERTIFICATES.c.stored_at.desc()).limit(1))
_INSERT_PAYMENT = insert(PAYMENTS)
# The payment row with its user and the asking client's refusal window.
_PAYMENT = (select(PAYMENTS, USERS.c.external_id.label("user_external_id"),
                   USERS.c.consecutive_failures.label("user_failures"),
                   USERS.c.blocked_at.label("user_blocked_at"),
                   CLIENTS.c.refusals.label("client_refusals"),
                   CLIENTS.c.refusals_since.label("client_refusals_since"))
            .join(USERS, USERS.c.id == PAYMENTS.c.user_id)
            .join(CLIENTS, CLIENTS.c.id == bindparam("client_id"))
            .where(PAYMENTS.c.id == bindparam("payment_id")))
_PAYMENT_LOCKED = _PAYMENT.with_for_update(of=PAYMENTS)
_CLAIM_COLUMNS = ("terminal_client_id", "seq", "state", "card_id", "certificate_serial_hex",
                  "nonce", "signed_fields", "signing_mode", "nonce_expires_at", "pending_batch")
_CLAIM = (update(PAYMENTS).where(PAYMENTS.c.id == bindparam("payment_id"),
                                 PAYMENTS.c.state == "created")
          .values({c: bindparam("new_" + c) for c in _CLAIM_COLUMNS}))
_EXPIRE = (update(PAYMENTS).where(PAYMENTS.c.id == bindparam("payment_id"), _IS_OPEN)
           .values(state="expired", pending_batch=None, refusal_code="payment_expired"))
# The certificate chosen at the claim, with its card row (key, counter, block).
_SIGNING_KEY = (select(CERTIFICATES.c.sha256, CERTIFICATES.c.status, CERTIFICATES.c.user_id,
                       CERTIFICATES.c.slot, CERTIFICATES.c.not_before, CERTIFICATES.c.not_after,
                       CERTIFICATES.c.revocation_reason, CARDS.c.public_key_der,
                       CARDS.c.last_counter, CARDS.c.consecutive_failures, CARDS.c.blocked_at)
                .join(CARDS, CARDS.c.id == CERTIFICATES.c.card_id)
                .where(CERTIFICATES.c.serial_hex == bindparam("serial_hex")))
# 608, the two compare-and-sets. The card row's carries the block and revocation checks,
# so nothing that committed since the reads of the same transaction can be missed.
_COUNTER_SWAP = (update(CARDS).where(
    CARDS.c.id == bindparam("card_id"), CARDS.c.last_counter < bindparam("counter"),
    CARDS.c.blocked_at.is_(None),
    select(CERTIFICATES.c.serial_hex).where(CERTIFICATES.c.serial_hex == bindparam("serial_hex"),
                                            CERTIFICATES.c.status == "active").exists(),
    select(USERS.c.id).where(USERS.c.id == bindparam("owner_id"),
                             USERS.c.blocked_at.is_(None)).exists())
    .values(last_counter=bindparam("counter")))
_CONSUME_NONCE = (update(PAYMENTS).where(PAYMENTS.c.id == bindparam("payment_id"),
                                         PAYMENTS.c.state == "sign_requested",
                                         PAYMENTS.c.nonce_used_at.is_(None))
                  .values(state="authorized", nonce_used_at=bindparam("now"),
                          authorized_at=bindparam("now"), card_counter=bindparam("counter"),
                          signature=bindparam("new_signature"), pending_batch=None))
_END = (update(PAYMENTS).where(PAYMENTS.c.id == bindparam("payment_id"), _IS_OPEN)
        .values(state=bindparam("new_state"), refusal_code=bindparam("code"), pending_batch=None))
BATCH_STEP = "authorize"
# Signing modes: the card's issuer policy (cards.requires_server_signature, from the
# attested slot policy), never the merchant's choice.
SERVER_SIGNED, TRANSACTION = "server_signed", "transaction"
# Position of the certificate reference (SELECT EF, FCP) in the batch.
REFERENCE_INDEX = 1
# Refusals that end the payment (the merchant creates a new one). Other refusals
# (wrong terminal, stale or repeated post, a card status word such as a wrong PIN)
# leave the batch pending so the terminal can retry it until the payment expires.
FINAL_CODES = frozenset({
    "card_response_malformed", "certificate_mismatch", "certificate_not_valid_now",
    "certificate_revoked", "certificate_not_registered", "card_blocked", "user_blocked",
    "signature_mismatch", "counter_not_increasing", "counter_jump", "payment_expired",
    "card_not_attested",
})
# Evidence involving the user's own key: counted toward the block (limits).
USER_EVIDENCE = frozenset({"signature_mismatch", "card_refused_signature",
                           "counter_not_increasing", "counter_jump"})
# What a merchant's create can be refused for without any fault of the user: counted
# against the merchant client.
MERCHANT_EVIDENCE = frozenset({"unknown_user", "no_active_certificate", "invalid_request"})
# What a terminal can post without the user's card: counted against the terminal client.
CLIENT_EVIDENCE = frozenset({"certificate_mismatch", "card_response_malformed", "card_error",
                             "stale_step", "session_closed", "nonce_already_used",
                             "wrong_terminal", "not_found"})


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
    """A payments row (+ its user's id, failure count and block, and the asking client's
    refusal window) as plain attributes."""


def _view(p: PaymentRecord) -> PaymentView:
    """What a reader sees: an open payment past its expiry reads as expired (stored so
    only by a compare-and-set, never by a read)."""
    state, refusal, batch = p.state, p.refusal_code, p.pending_batch
    if state in OPEN_STATES and p.expires_at <= utcnow():
        state, refusal, batch = "expired", "payment_expired", None
    return PaymentView(p.id, state, p.user_external_id, p.amount_minor, p.currency, p.payee,
                       p.order_ref, p.signing_mode, p.expires_at, stored_json(batch),
                       p.card_counter, p.authorized_at, refusal, p.certificate_serial_hex)


def _expire(s: Connection, payment_id: str) -> int:
    """Store an expiry: a compare-and-set on the open states, so it can never overwrite
    an authorization (or a refusal) that committed first."""
    return s.execute(_EXPIRE, {"payment_id": payment_id}).rowcount


def _user_not_blocked(p: PaymentRecord) -> None:
    if p.user_blocked_at is not None:
        raise ApiError("user_blocked", f"user {p.user_external_id} is blocked after repeated "
                                       "failed authentications; an operator must unblock it")


def _active_payment_card(s: Connection, user_id: int):
    """The user's active payment certificate and the card row of its key, or None."""
    return s.execute(_ACTIVE_CARD, {"user_id": user_id}).first()


def _signing_mode(card) -> str:
    return SERVER_SIGNED if card.requires_server_signature else TRANSACTION


def _posted_reference(responses: list[bytes]) -> bytes | None:
    """SHA-256 of the card's certificate from the FCP it answered, if it answered one."""
    if len(responses) <= REFERENCE_INDEX:
        return None
    answer = responses[REFERENCE_INDEX]
    if answer[-2:] != SW_OK.to_bytes(2, "big"):
        return None
    try:
        return parse_certificate_fcp(answer[:-2]).sha256
    except (TLVError, ValueError):
        return None


class PaymentService:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def _usable_card(self, s: Connection, user_id: int, user_external_id: str):
        """The user's payment card, checked against the bank's policy: it exists, is not
        blocked, and (if the bank requires it) its key was attested at enrollment."""
        card = _active_payment_card(s, user_id)
        if card is None:
            raise ApiError("no_active_certificate",
                           f"user {user_external_id} has no active payment certificate; "
                           "enroll the card first")
        limits.ensure_card_not_blocked(card.blocked_at)
        if self.ctx.settings.payments_require_attested_card and not card.attested:
            raise ApiError("card_not_attested",
                           f"user {user_external_id}'s payment key was enrolled without a card "
                           "attestation and this bank requires one: enroll the card again")
        return card

    # -- merchant -------------------------------------------------------------------------
    def create(self, merchant_id: int, user_external_id: str, amount_minor: int, currency: str,
               order_ref: str) -> PaymentView:
        def work(session: Session) -> PaymentView:
            s = session.connection()  # Core statements, SQLAlchemy's compiled cache
            merchant = s.execute(_MERCHANT, {"client_id": merchant_id}).first()
            self._not_rate_limited(merchant)
            user = s.execute(_FIND_USER, {"external_id": user_external_id}).first()
            if user is None:
                raise ApiError("unknown_user", f"no enrolled user {user_external_id}")
            payee = merchant.display_name or merchant.name
            try:  # the card's own field rules (docs/apdu.md SIGN TRANSACTION)
                Transaction(amount_minor, currency, payee, order_ref, b"\0" * 16)
            except ValueError as exc:
                raise ApiError("invalid_request", str(exc)) from exc
            now = utcnow()
            p = PaymentRecord(
                id=secrets.token_hex(16), merchant_client_id=merchant_id, terminal_client_id=None,
                user_id=user.id, amount_minor=amount_minor, currency=currency, payee=payee,
                order_ref=order_ref, signing_mode=TRANSACTION, state="created", seq=0,
                pending_batch=None, card_id=None, certificate_serial_hex=None, nonce=None,
                nonce_expires_at=None, nonce_used_at=None, signed_fields=None, card_counter=None,
                signature=None, refusal_code=None, created_at=now, authorized_at=None,
                expires_at=now + timedelta(seconds=self.ctx.settings.payment_ttl_seconds),
                user_external_id=user.external_id, user_failures=user.consecutive_failures,
                user_blocked_at=user.blocked_at)
            _user_not_blocked(p)
            p.signing_mode = _signing_mode(self._usable_card(s, user.id, user.external_id))
            s.execute(_INSERT_PAYMENT, {c.name: getattr(p, c.name) for c in PAYMENTS.columns})
            return _view(p)

        def on_refusal(s: Connection, err: ApiError) -> None:
            if err.code in MERCHANT_EVIDENCE:  # e.g. probing which user ids exist
                self._count_client_refusal(s, merchant_id)
            audit.record(s, "payment.create", "refused", code=err.code, client_id=merchant_id,
                         user=user_external_id, detail=err.message)

        return self.ctx.run(work, on_refusal)

    def get(self, client_id: int, role: str, payment_id: str) -> PaymentView:
        """Read only (a snapshot that never takes the writer lock): an overdue open payment
        reads as expired, and nothing is written."""
        with self.ctx.db.read() as s:
            row = s.execute(_PAYMENT, {"payment_id": payment_id, "client_id": client_id}).first()
        p = PaymentRecord(**row._mapping) if row else None
        owner = None if p is None else (
            p.merchant_client_id if role == "merchant" else p.terminal_client_id)
        if p is None or (role != "admin" and owner != client_id):
            raise ApiError("not_found", f"no payment {payment_id} for this client")
        return _view(p)

    def _load(self, s: Connection, payment_id: str, client_id: int) -> PaymentRecord:
        """The payment row, locked (PostgreSQL; SQLite's BEGIN IMMEDIATE locks already),
        with its user in the same query."""
        statement = _PAYMENT if self.ctx.db.is_sqlite else _PAYMENT_LOCKED
        row = s.execute(statement, {"payment_id": payment_id, "client_id": client_id}).first()
        if row is None:
            raise ApiError("not_found", f"no payment {payment_id}")
        return PaymentRecord(**row._mapping)

    def _not_rate_limited(self, client) -> None:
        """`client`: a row with the asking client's client_refusals(_since)."""
        settings = self.ctx.settings
        since = client.client_refusals_since
        if (client.client_refusals >= settings.client_refusal_limit and since is not None
                and since > utcnow() - timedelta(seconds=settings.client_refusal_window_seconds)):
            raise ApiError("client_rate_limited",
                           f"this client had {client.client_refusals} refused payment requests "
                           f"in {settings.client_refusal_window_seconds} s; retry later, and "
                           "check the user ids it sends or its terminal and card reader")

    def _count_client_refusal(self, s: Connection, client_id: int) -> None:
        now = utcnow()
        window_start = now - timedelta(seconds=self.ctx.settings.client_refusal_window_seconds)
        new_window = (CLIENTS.c.refusals_since.is_(None)
                      | (CLIENTS.c.refusals_since <= window_start))
        s.execute(update(CLIENTS).where(CLIENTS.c.id == client_id).values(
            refusals=case((new_window, 1), else_=CLIENTS.c.refusals + 1),
            refusals_since=case((new_window, now), else_=CLIENTS.c.refusals_since)))

    # -- 601..606: the terminal takes the payment and gets the one batch -----------------
    def claim(self, terminal_id: int, payment_id: str) -> PaymentView:
        def work(session: Session) -> PaymentView:
            s = session.connection()  # Core statements, SQLAlchemy's compiled cache
            p = self._load(s, payment_id, terminal_id)
            if p.terminal_client_id not in (None, terminal_id):
                raise ApiError("wrong_terminal", "another terminal has taken this payment")
            if p.state in OPEN_STATES and p.expires_at <= utcnow():
                _expire(s, p.id)
                return _view(p)
            if p.state != "created":
                return _view(p)  # resume: hand out the pending batch again
            self._not_rate_limited(p)
            _user_not_blocked(p)
            card = self._usable_card(s, p.user_id, p.user_external_id)
            nonce = secrets.token_bytes(NONCE_BYTES)
            tlvs = Transaction(p.amount_minor, p.currency, p.payee, p.order_ref, nonce).tlvs()
            mode = _signing_mode(card)
            server_sig = (bank_signature.sign_for_card(self.ctx.ca, card.bank_key_algorithm, tlvs)
                          if mode == SERVER_SIGNED else None)
            steps = ([card_commands.select_applet(), card_commands.certificate_reference(PAYMENT_SLOT)]
                     + card_commands.sign_transaction(PAYMENT_SLOT, tlvs, server_sig))
            notes = ["PIN required: the user confirms amount and payee at the terminal"]
            claimed = dict(terminal_client_id=terminal_id, seq=1, state="sign_requested",
                           card_id=card.card_id, certificate_serial_hex=card.serial_hex,
                           nonce=nonce, signed_fields=tlvs, signing_mode=mode,
                           nonce_expires_at=min(p.expires_at, utcnow() + timedelta(
                               seconds=self.ctx.settings.challenge_ttl_seconds)),
                           pending_batch=Batch(1, BATCH_STEP, steps, notes).dumps())
            s.execute(_CLAIM, {"payment_id": p.id,
                               **{"new_" + c: v for c, v in claimed.items()}})
            p.__dict__.update(claimed)
            return _view(p)

        def on_refusal(s: Connection, err: ApiError) -> None:
            if err.code in CLIENT_EVIDENCE:
                self._count_client_refusal(s, terminal_id)
            audit.record(s, "payment.claim", "refused", code=err.code, client_id=terminal_id,
                         payment_id=payment_id, detail=err.message)

        return self.ctx.run(work, on_refusal)

    # -- 603..608: one transaction -------------------------------------------------------
    def post_responses(self, terminal_id: int, payment_id: str, seq: int,
                       responses: list[bytes]) -> PaymentView:
        ids: dict = {}

        def work(session: Session) -> PaymentView:
            s = session.connection()  # Core statements, SQLAlchemy's compiled cache
            p = self._load(s, payment_id, terminal_id)
            ids.update(user_id=p.user_id, card_id=p.card_id, serial=p.certificate_serial_hex)
            if p.terminal_client_id != terminal_id:
                raise ApiError("wrong_terminal", "this payment belongs to another terminal")
            if p.state == "authorized" and seq == p.seq and _signature_of(responses) == p.signature:
                return _view(p)  # a retried final post (its answer was lost): same result
            if p.state == "authorized":
                raise ApiError("nonce_already_used", "this payment was already authorized; its "
                                                     "nonce is spent and a signature counts once")
            self._not_rate_limited(p)
            if p.state != "sign_requested":
                raise ApiError("session_closed", f"the payment is {p.state}")
            now = utcnow()
            if p.expires_at <= now or (p.nonce_expires_at and p.nonce_expires_at <= now):
                ids["final"] = True
                raise ApiError("payment_expired", "the payment session expired")
            if seq != p.seq:
                raise ApiError("stale_step", f"these responses answer batch {seq}, but batch "
                                             f"{p.seq} is pending")
            key = self._certificate_and_key(s, p)
            reference_matched = _posted_reference(responses) == key.reference
            try:
                data = card_data(Batch.loads(p.pending_batch), responses)
            except ApiError as err:
                if err.code == "card_error" and reference_matched:
                    # The user's card (its certificate reference matched) would not sign
                    # what the server sent: 6982 after a relay changed the command, a
                    # counter at its end, ... A failed authentication of the user; an
                    # honest retry stays possible until the nonce expires or the block.
                    raise ApiError("card_refused_signature", err.message) from err
                raise
            ids["final"] = True
            self._check_reference(data[REFERENCE_INDEX], key)
            self._authorize(s, p, key, data[-1])
            ids.pop("final")
            return _view(p)

        def on_refusal(s: Connection, err: ApiError) -> None:
            ends = ids.get("final") and err.code in FINAL_CODES
            if ends:
                s.execute(_END, {"payment_id": payment_id, "code": err.code,
                                 "new_state": "expired" if err.code == "payment_expired"
                                 else "refused"})
            if err.code in USER_EVIDENCE:
                limits.register_failure(s, err.code, self.ctx.settings.max_consecutive_failures,
                                        user_id=ids.get("user_id"), card_id=ids.get("card_id"))
                if not ends and limits.is_blocked(s, user_id=ids["user_id"],
                                                  card_id=ids["card_id"]):
                    # no retry can succeed any more: end the payment now
                    s.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment_id,
                                                     PAYMENTS.c.state == "sign_requested")
                              .values(state="refused", refusal_code=err.code, pending_batch=None))
            elif err.code in CLIENT_EVIDENCE:
                self._count_client_refusal(s, terminal_id)
            audit.record(s, "payment.authorize", "refused", code=err.code, client_id=terminal_id,
                         card_id=ids.get("card_id"), payment_id=payment_id,
                         serial_hex=ids.get("serial"), detail=err.message)
            if err.code == "counter_jump":
                audit.record(s, "payment.suspicious", "refused", code=err.code,
                             client_id=terminal_id, card_id=ids.get("card_id"),
                             payment_id=payment_id, serial_hex=ids.get("serial"),
                             detail=err.message)

        return self.ctx.run(work, on_refusal)

    @staticmethod
    def _certificate_and_key(s: Connection, p: PaymentRecord) -> "_SigningKey":
        """The certificate chosen at the claim, with its card row (key, counter, block)."""
        row = s.execute(_SIGNING_KEY, {"serial_hex": p.certificate_serial_hex}).first()
        return _SigningKey(**row._mapping, serial_hex=p.certificate_serial_hex,
                           reference=bytes.fromhex(row.sha256), user_matches=row.user_id == p.user_id)

    def _check_reference(self, fcp_data: bytes, key: "_SigningKey") -> None:
        """603-604: the card's certificate is the user's active payment certificate."""
        try:
            reference = parse_certificate_fcp(fcp_data).sha256
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed",
                           f"the certificate EF's FCP is unreadable: {exc}") from exc
        if reference is None:
            raise ApiError("card_response_malformed",
                           "the card's FCP has no certificate reference (tag 85): this applet "
                           "version cannot pay with a certificate reference; update the applet")
        if reference != key.reference:
            raise ApiError("certificate_mismatch",
                           "the card holds another certificate than the user's active payment "
                           "certificate (another card, or a certificate swapped in)")
        if key.status == "revoked":
            raise ApiError("certificate_revoked", f"certificate {key.serial_hex} is revoked "
                                                  f"({key.revocation_reason})")
        if key.status != "active" or not key.user_matches or key.slot != PAYMENT_SLOT:
            raise ApiError("certificate_not_registered",
                           "the certificate is no longer the user's active payment certificate")
        now = utcnow()
        if not key.not_before <= now < key.not_after:
            raise ApiError("certificate_not_valid_now",
                           f"certificate {key.serial_hex} is valid from {key.not_before} to "
                           f"{key.not_after}")

    def _authorize(self, s: Connection, p: PaymentRecord, key: "_SigningKey",
                   answer: bytes) -> None:
        """607-608: verify, bound the counter, then both compare-and-sets."""
        try:
            signed = parse_sign_transaction_response(answer)
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed",
                           f"SIGN TRANSACTION response unreadable: {exc}") from exc
        counter, signature = signed.counter, signed.signature
        _user_not_blocked(p)
        limits.ensure_card_not_blocked(key.blocked_at)
        try:
            _load_public_key(key.public_key_der).verify(
                signature, signed_transaction_data(p.signed_fields, counter),
                padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise ApiError("signature_mismatch",
                           "the signature does not verify over the payment the server sent with "
                           "the key of the user's certificate (changed amount or payee, another "
                           "card, or a signature from another payment)") from exc
        if counter <= key.last_counter:
            raise ApiError("counter_not_increasing",
                           f"card counter {counter} is not above the last accepted one: a "
                           "replayed or cloned signature")
        bound = self.ctx.settings.max_counter_jump
        if counter - max(key.last_counter, 0) > bound:
            raise ApiError("counter_jump",
                           f"card counter {counter} jumps more than {bound} above the last "
                           f"accepted {key.last_counter}: refused as suspicious (a signature "
                           "made outside SIGN TRANSACTION, or a tampered card)")
        swapped = s.execute(_COUNTER_SWAP, {
            "card_id": p.card_id, "counter": counter, "serial_hex": p.certificate_serial_hex,
            "owner_id": p.user_id}).rowcount
        if swapped != 1:
            self._explain_lost_race(s, p, counter)
        now = utcnow()
        consumed = s.execute(_CONSUME_NONCE, {"payment_id": p.id, "now": now, "counter": counter,
                                              "new_signature": signature}).rowcount
        if consumed != 1:
            raise ApiError("nonce_already_used", "the payment's nonce was already used")
        p.__dict__.update(state="authorized", nonce_used_at=now, authorized_at=now,
                          card_counter=counter, signature=signature, pending_batch=None)
        if p.user_failures or key.consecutive_failures:
            limits.reset_failures(s, user_id=p.user_id, card_id=p.card_id)
        audit.record(s, "payment.authorize", "ok", client_id=p.terminal_client_id,
                     card_id=p.card_id, payment_id=p.id, serial_hex=p.certificate_serial_hex,
                     detail=f"{p.signing_mode} counter={counter}")

    @staticmethod
    def _explain_lost_race(s: Connection, p: PaymentRecord, counter: int) -> None:
        """The card row's compare-and-set matched nothing: say which condition changed."""
        row = s.execute(select(CARDS.c.blocked_at, CARDS.c.last_counter,
                               CERTIFICATES.c.status, USERS.c.blocked_at.label("user_blocked_at"))
                        .join(CERTIFICATES, CERTIFICATES.c.card_id == CARDS.c.id)
                        .join(USERS, USERS.c.id == CARDS.c.user_id)
                        .where(CARDS.c.id == p.card_id,
                               CERTIFICATES.c.serial_hex == p.certificate_serial_hex)).first()
        if row.status != "active":
            raise ApiError("certificate_revoked", "the certificate was revoked during the payment")
        if row.user_blocked_at is not None:
            raise ApiError("user_blocked", f"user {p.user_external_id} was blocked during the "
                                           "payment")
        limits.ensure_card_not_blocked(row.blocked_at)
        raise ApiError("counter_not_increasing",
                       f"card counter {counter} is not above the last accepted one "
                       f"({row.last_counter}): a replayed or cloned signature")


@dataclass(frozen=True)
class _SigningKey:
    """The certificate the payment was claimed with and its card row, as read in 603."""
    serial_hex: str
    reference: bytes
    user_matches: bool
    sha256: str
    status: str
    user_id: int
    slot: int
    not_before: datetime
    not_after: datetime
    revocation_reason: str | None
    public_key_der: bytes
    last_counter: int
    consecutive_failures: int
    blocked_at: datetime | None


def _signature_of(responses: list[bytes]) -> bytes | None:
    """The signature in a posted SIGN TRANSACTION answer, to recognize a retried post."""
    if not responses or responses[-1][-2:] != SW_OK.to_bytes(2, "big"):
        return None
    try:
        return parse_sign_transaction_response(responses[-1][:-2]).signature
    except (TLVError, ValueError):
        return None


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
    Runs from `cardshield server sweep`; a read shows such a payment expired already,
    without writing."""
    now = utcnow()
    ids = list(s.scalars(select(PAYMENTS.c.id).where(
        PAYMENTS.c.state.in_(OPEN_STATES), PAYMENTS.c.expires_at <= now).limit(limit)))
    for payment_id in ids:
        if _expire(s, payment_id):
            audit.record(s, "payment.expire", "ok", payment_id=payment_id,
                         detail="session expired unfinished")
    return ids
