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

The rules live here once; the database work is a PaymentStore (payment_store.py: SQLite
on the DB-API connection and the group-commit writer, PostgreSQL through asyncpg on the
event loop). Each step reads a snapshot, checks, composes and signs (8E) or verifies the
card's signature outside any write transaction, then makes one conditional write that
re-checks in the database whatever another transaction could have changed; if it matches
nothing, a fresh snapshot says why.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy import Connection, or_, select, update

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
from .models import Payment
from .payment_store import (OPEN_STATES, Authorization, CardKey, Claim, CreateSnapshot,
                            LostRace, NewPayment, PaymentRecord, PaymentSnapshot, Refusal)

PAYMENTS = Payment.__table__
NONCE_BYTES = 32
_IS_OPEN = or_(*(PAYMENTS.c.state == state for state in OPEN_STATES))
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
# A conditional write that lost a race is re-decided from a fresh snapshot this often.
ATTEMPTS = 3


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


def state_as_read(state: str, refusal_code: str | None, expires_at) -> tuple[str, str | None]:
    """The state and refusal a reader sees: an open payment past its expiry reads as
    expired (stored so only by a compare-and-set, never by a read)."""
    if state in OPEN_STATES and expires_at <= utcnow():
        return "expired", "payment_expired"
    return state, refusal_code


def _view(p: PaymentRecord) -> PaymentView:
    """What a reader sees (state_as_read); an expired payment has no pending batch."""
    state, refusal = state_as_read(p.state, p.refusal_code, p.expires_at)
    batch = p.pending_batch if state == p.state else None
    return PaymentView(p.id, state, p.user_external_id, p.amount_minor, p.currency, p.payee,
                       p.order_ref, p.signing_mode, p.expires_at, stored_json(batch),
                       p.card_counter, p.authorized_at, refusal, p.certificate_serial_hex)


def _user_not_blocked(external_id: str, blocked_at) -> None:
    if blocked_at is not None:
        raise ApiError("user_blocked", f"user {external_id} is blocked after repeated "
                                       "failed authentications; an operator must unblock it")


def _signing_mode(card: CardKey) -> str:
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


@dataclass
class _Refused:
    """What a refusal's bookkeeping needs to know about the payment it refused."""
    user_id: int | None = None
    card_id: int | None = None
    serial: str | None = None
    final: bool = False  # the refusal ends the payment (if its code is a FINAL_CODE)


@dataclass(frozen=True)
class _Signed:
    """A verified SIGN TRANSACTION answer, ready for the compare-and-sets."""
    counter: int
    signature: bytes
    reference_hex: str


class PaymentService:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx
        self.store = ctx.payment_store

    def _bank_signature(self, card: CardKey, tlvs: bytes) -> bytes:
        """Tag 8E: the bank's signature over the request the card will sign (docs/apdu.md
        SIGN TRANSACTION), with the request key of the type the card holds."""
        return bank_signature.sign_for_card(self.ctx.ca, card.bank_key_algorithm, tlvs)

    def _usable_card(self, key: CardKey | None, user_external_id: str) -> CardKey:
        """The user's payment card, checked against the bank's policy: it exists, is not
        blocked, and (if the bank requires it) its key was attested at enrollment."""
        if key is None:
            raise ApiError("no_active_certificate",
                           f"user {user_external_id} has no active payment certificate; "
                           "enroll the card first")
        limits.ensure_card_not_blocked(key.blocked_at)
        if self.ctx.settings.payments_require_attested_card and not key.attested:
            raise ApiError("card_not_attested",
                           f"user {user_external_id}'s payment key was enrolled without a card "
                           "attestation and this bank requires one: enroll the card again")
        return key

    def _not_rate_limited(self, refusals: int, since: datetime | None) -> None:
        settings = self.ctx.settings
        if (refusals >= settings.client_refusal_limit and since is not None
                and since > self._window_start()):
            raise ApiError("client_rate_limited",
                           f"this client had {refusals} refused payment requests "
                           f"in {settings.client_refusal_window_seconds} s; retry later, and "
                           "check the user ids it sends or its terminal and card reader")

    def _window_start(self) -> datetime:
        return utcnow() - timedelta(seconds=self.ctx.settings.client_refusal_window_seconds)

    async def _record(self, err: ApiError, action: str, client_id: int, **fields) -> None:
        """A refusal's consequences, in their own transaction (the refused work wrote
        nothing)."""
        await self.store.refused(Refusal(
            action, err.code, err.message, utcnow(), client_id,
            count_client=err.code in (MERCHANT_EVIDENCE if action == "payment.create"
                                      else CLIENT_EVIDENCE),
            window_start=self._window_start(),
            max_failures=self.ctx.settings.max_consecutive_failures, **fields))

    # -- merchant -------------------------------------------------------------------------
    async def create(self, merchant_id: int, user_external_id: str, amount_minor: int,
                     currency: str, order_ref: str) -> PaymentView:
        try:
            return await self._create(merchant_id, user_external_id, amount_minor, currency,
                                      order_ref)
        except ApiError as err:
            await self._record(err, "payment.create", merchant_id, user_external_id=user_external_id)
            raise

    async def _create(self, merchant_id: int, user_external_id: str, amount_minor: int,
                      currency: str, order_ref: str) -> PaymentView:
        try:  # the card's own field rules (docs/apdu.md SIGN TRANSACTION); the payee, the
            # merchant's registered display name, was checked when it was registered
            Transaction(amount_minor, currency, "payee", order_ref, b"\0" * 16)
        except ValueError as exc:
            raise ApiError("invalid_request", str(exc)) from exc
        settings = self.ctx.settings
        for _ in range(ATTEMPTS):
            now = utcnow()
            new = NewPayment(secrets.token_hex(16), merchant_id, user_external_id, amount_minor,
                             currency, order_ref, now,
                             now + timedelta(seconds=settings.payment_ttl_seconds),
                             not settings.payments_require_attested_card,
                             settings.client_refusal_limit, self._window_start())
            created = await self.store.create(new)
            if created is not None:
                return _view(PaymentRecord(
                    new.id, merchant_id, None, created.user_id, amount_minor, currency,
                    created.payee, order_ref, created.signing_mode, "created", 0, None, None,
                    None, None, None, None, None, None, None, None, now, new.expires_at, None,
                    user_external_id, 0, None, 0, None))
            self._explain_create(await self.store.create_snapshot(merchant_id, user_external_id),
                                 user_external_id)
        raise ApiError("conflict", "the user's card changed during the request; retry")

    def _explain_create(self, snap: CreateSnapshot, user_external_id: str) -> None:
        """Why the create's INSERT found no row: the checks, in the order a merchant reads."""
        self._not_rate_limited(snap.client_refusals, snap.client_refusals_since)
        if snap.user_id is None:
            raise ApiError("unknown_user", f"no enrolled user {user_external_id}")
        _user_not_blocked(user_external_id, snap.user_blocked_at)
        self._usable_card(snap.key, user_external_id)

    async def get(self, client_id: int, role: str, payment_id: str) -> PaymentView:
        """Read only (a snapshot that never takes the writer lock): an overdue open payment
        reads as expired, and nothing is written."""
        snap = await self.store.snapshot(payment_id, client_id, active_key=False)
        p = snap.payment if snap else None
        owner = None if p is None else (
            p.merchant_client_id if role == "merchant" else p.terminal_client_id)
        if p is None or (role != "admin" and owner != client_id):
            raise ApiError("not_found", f"no payment {payment_id} for this client")
        return _view(p)

    # -- 601..606: the terminal takes the payment and gets the one batch -----------------
    async def claim(self, terminal_id: int, payment_id: str) -> PaymentView:
        try:
            for _ in range(ATTEMPTS):
                view = await self._claim(terminal_id, payment_id)
                if view is not None:
                    return view
            raise ApiError("conflict", "the payment changed during the request; retry")
        except ApiError as err:
            await self._record(err, "payment.claim", terminal_id, payment_id=payment_id)
            raise

    async def _claim(self, terminal_id: int, payment_id: str) -> PaymentView | None:
        snap = await self.store.snapshot(payment_id, terminal_id, active_key=True)
        if snap is None:
            raise ApiError("not_found", f"no payment {payment_id}")
        p = snap.payment
        if p.terminal_client_id not in (None, terminal_id):
            raise ApiError("wrong_terminal", "another terminal has taken this payment")
        if p.state in OPEN_STATES and p.expires_at <= utcnow():
            await self.store.expire(p.id)
            return _view(p)
        if p.state != "created":
            return _view(p)  # resume: hand out the pending batch again
        self._not_rate_limited(p.client_refusals, p.client_refusals_since)
        _user_not_blocked(p.user_external_id, p.user_blocked_at)
        card = self._usable_card(snap.key, p.user_external_id)
        # composed and signed before the write: the UPDATE below re-checks what matters
        nonce = secrets.token_bytes(NONCE_BYTES)
        transaction = Transaction(p.amount_minor, p.currency, p.payee, p.order_ref, nonce)
        tlvs = transaction.tlvs()
        mode = _signing_mode(card)
        server_sig = self._bank_signature(card, tlvs) if mode == SERVER_SIGNED else None
        steps = ([card_commands.select_applet(), card_commands.certificate_reference(PAYMENT_SLOT)]
                 + card_commands.sign_transaction(PAYMENT_SLOT, transaction, server_sig))
        notes = ["PIN required: the user confirms amount and payee at the terminal"]
        now = utcnow()
        claim = Claim(p.id, terminal_id, card.card_id, card.serial_hex, nonce, tlvs, mode,
                      min(p.expires_at, now + timedelta(
                          seconds=self.ctx.settings.challenge_ttl_seconds)),
                      Batch(1, BATCH_STEP, steps, notes).dumps(), now)
        if not await self.store.claim(claim):
            return None  # taken, blocked, revoked or expired meanwhile: decide again
        p.terminal_client_id, p.seq, p.state, p.card_id = terminal_id, 1, "sign_requested", card.card_id
        p.certificate_serial_hex, p.nonce, p.signed_fields = card.serial_hex, nonce, tlvs
        p.signing_mode, p.nonce_expires_at, p.pending_batch = mode, claim.nonce_expires_at, claim.pending_batch
        return _view(p)

    # -- 603..608: checks, then one transaction ------------------------------------------
    async def post_responses(self, terminal_id: int, payment_id: str, seq: int,
                             responses: list[bytes]) -> PaymentView:
        refused = _Refused()
        try:
            for _ in range(ATTEMPTS):
                snap = await self.store.snapshot(payment_id, terminal_id, active_key=False)
                decided = self._check_final(snap, payment_id, terminal_id, seq, responses, refused)
                if isinstance(decided, PaymentView):
                    return decided  # a retried final post (its answer was lost)
                p = snap.payment
                now = utcnow()
                try:
                    await self.store.authorize(Authorization(
                        p.id, terminal_id, seq, p.card_id, p.certificate_serial_hex, p.user_id,
                        decided.reference_hex, decided.counter, decided.signature,
                        self.ctx.settings.max_counter_jump, now,
                        f"{p.signing_mode} counter={decided.counter}"))
                except LostRace:
                    continue  # a block, revocation or racing post committed: decide again
                p.state, p.nonce_used_at, p.authorized_at = "authorized", now, now
                p.card_counter, p.signature, p.pending_batch = decided.counter, decided.signature, None
                return _view(p)
            raise ApiError("conflict", "the payment kept changing during the request; retry")
        except ApiError as err:
            await self._record_final_refusal(err, terminal_id, payment_id, refused)
            raise

    def _check_final(self, snap: PaymentSnapshot | None, payment_id: str, terminal_id: int,
                     seq: int, responses: list[bytes], refused: _Refused) -> PaymentView | _Signed:
        """Every check of 603-608 on a snapshot: a retried post's view, or the verified
        counter and signature for the compare-and-sets, or an ApiError."""
        if snap is None:
            raise ApiError("not_found", f"no payment {payment_id}")
        p, key = snap.payment, snap.key
        refused.user_id, refused.card_id, refused.serial = p.user_id, p.card_id, p.certificate_serial_hex
        refused.final = False
        if p.terminal_client_id != terminal_id:
            raise ApiError("wrong_terminal", "this payment belongs to another terminal")
        if p.state == "authorized" and seq == p.seq and _signature_of(responses) == p.signature:
            return _view(p)  # a retried final post (its answer was lost): same result
        if p.state == "authorized":
            raise ApiError("nonce_already_used", "this payment was already authorized; its "
                                                 "nonce is spent and a signature counts once")
        self._not_rate_limited(p.client_refusals, p.client_refusals_since)
        if p.state != "sign_requested":
            raise ApiError("session_closed", f"the payment is {p.state}")
        now = utcnow()
        if p.expires_at <= now or (p.nonce_expires_at and p.nonce_expires_at <= now):
            refused.final = True
            raise ApiError("payment_expired", "the payment session expired")
        if seq != p.seq:
            raise ApiError("stale_step", f"these responses answer batch {seq}, but batch "
                                         f"{p.seq} is pending")
        reference = bytes.fromhex(key.sha256)
        reference_matched = _posted_reference(responses) == reference
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
        refused.final = True
        self._check_reference(data[REFERENCE_INDEX], key, reference, p.user_id, now)
        return self._verify(p, key, data[-1])

    @staticmethod
    def _check_reference(fcp_data: bytes, key: CardKey, reference: bytes, user_id: int,
                         now: datetime) -> None:
        """603-604: the card's certificate is the user's active payment certificate."""
        try:
            posted = parse_certificate_fcp(fcp_data).sha256
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed",
                           f"the certificate EF's FCP is unreadable: {exc}") from exc
        if posted is None:
            raise ApiError("card_response_malformed",
                           "the card's FCP has no certificate reference (tag 85): this applet "
                           "version cannot pay with a certificate reference; update the applet")
        if posted != reference:
            raise ApiError("certificate_mismatch",
                           "the card holds another certificate than the user's active payment "
                           "certificate (another card, or a certificate swapped in)")
        if key.status == "revoked":
            raise ApiError("certificate_revoked", f"certificate {key.serial_hex} is revoked "
                                                  f"({key.revocation_reason})")
        if key.status != "active" or key.user_id != user_id or key.slot != PAYMENT_SLOT:
            raise ApiError("certificate_not_registered",
                           "the certificate is no longer the user's active payment certificate")
        if not key.not_before <= now < key.not_after:
            raise ApiError("certificate_not_valid_now",
                           f"certificate {key.serial_hex} is valid from {key.not_before} to "
                           f"{key.not_after}")

    def _verify(self, p: PaymentRecord, key: CardKey, answer: bytes) -> _Signed:
        """607-608 before the write: the signature over exactly the bytes sent, the
        counter forward and bounded, nothing blocked (as of the snapshot)."""
        try:
            signed = parse_sign_transaction_response(answer)
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed",
                           f"SIGN TRANSACTION response unreadable: {exc}") from exc
        counter, signature = signed.counter, signed.signature
        _user_not_blocked(p.user_external_id, p.user_blocked_at)
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
        return _Signed(counter, signature, key.sha256)

    async def _record_final_refusal(self, err: ApiError, terminal_id: int, payment_id: str,
                                    refused: _Refused) -> None:
        ends = refused.final and err.code in FINAL_CODES
        evidence = err.code in USER_EVIDENCE
        await self._record(
            err, "payment.authorize", terminal_id, payment_id=payment_id,
            user_id=refused.user_id, card_id=refused.card_id, serial_hex=refused.serial,
            end_state=("expired" if err.code == "payment_expired" else "refused") if ends else None,
            # failure counts move only on evidence involving the user's own key
            count_failure=evidence and err.code in limits.AUTHENTICATION_FAILURES,
            end_if_blocked=evidence,  # no retry can succeed any more: end the payment now
            suspicious=err.code == "counter_jump")


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
        if s.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment_id, _IS_OPEN).values(
                state="expired", pending_batch=None, refusal_code="payment_expired")).rowcount:
            audit.record(s, "payment.expire", "ok", payment_id=payment_id,
                         detail="session expired unfinished")
    return ids
