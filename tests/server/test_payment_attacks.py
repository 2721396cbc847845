"""Attacks on the payment path (figure 6), each played over the HTTP API as the attacker
would: a merchant that picks the signing mode or the payee, a PIN holder who moves the
card counter with a bare-hash signature, a merchant and a terminal that try to block a
user without the user's card, a GET racing an authorization on PostgreSQL, a swapped
certificate. Each one was seen to succeed against the four-request payment path."""
from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, func, select, text, update

from cardshield.card.apdu import CommandAPDU
from cardshield.protocol import tlv
from cardshield.protocol.transaction import signed_transaction_data
from cardshield.server.clock import utcnow
from cardshield.server.db import normalize_url
from cardshield.server.models import ApiClient, AuditEvent, Card, Certificate, Payment, User
from cardshield.server.payment import PaymentService
from cardshield.server.testing.flows import FlowError, Terminal, call, create_payment

SIGN_STEPS = ("sign", "authorize")  # the batch that carries SIGN TRANSACTION


def _to_signing_batch(term: Terminal, payment_id: str) -> dict:
    state = term.claim(payment_id)
    while state["batch"]["step"] not in SIGN_STEPS:
        state = term.post_payment(payment_id, state["batch"])
    return state["batch"]


def _signed_fields(batch: dict) -> bytes:
    """The 81..85 TLVs of the SIGN TRANSACTION command (its chained parts joined)."""
    data = b"".join(CommandAPDU.decode(bytes.fromhex(a["apdu"])).data for a in batch["apdus"]
                    if bytes.fromhex(a["apdu"])[1] == 0x54)
    return b"".join(tlv.encode(i.tag, i.value) for i in tlv.decode(data)[:5])


def _client_id(ctx, token_name_prefix: str) -> int:
    with ctx.db.transaction() as s:
        return s.scalar(select(ApiClient.id).where(ApiClient.name.startswith(token_name_prefix)))


# -- the signing mode and the payee are the bank's, not the merchant's ----------------------
@pytest.mark.parametrize("field, value, reason", [
    ("signing_mode", "bare_hash", "issuer's policy"),
    ("payee", "Someone Else Ltd", "registered display name"),
])
def test_a_merchant_cannot_choose_the_signing_mode_or_the_payee(http, tokens, enrolled,
                                                                field, value, reason):
    enrolled()
    body = {"user_id": "alice", "amount_minor": 100, "currency": "EUR", "order_ref": "o-1",
            field: value}
    response = http.post("/v1/payments", json=body,
                         headers={"Authorization": f"Bearer {tokens['merchant']}"})
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid_request"
    assert reason in response.json()["error"]["message"]


def test_the_payee_signed_is_the_merchants_registered_display_name(ctx, http, tokens, enrolled):
    term = enrolled()
    shop = call(http, "POST", "/v1/admin/clients", tokens["admin"],
                {"name": "bakery-42", "role": "merchant", "display_name": "Bäckerei Müller"})
    assert shop["display_name"] == "Bäckerei Müller"
    created = create_payment(http, shop["token"], "alice")
    assert created["payee"] == "Bäckerei Müller"
    batch = _to_signing_batch(term, created["payment_id"])
    assert tlv.find(_signed_fields(batch), 0x83) == "Bäckerei Müller".encode()
    assert term.post_payment(created["payment_id"], batch)["state"] == "authorized"
    # a display name the card could not show as signed is refused at registration
    refused = http.post("/v1/admin/clients", json={"name": "bad-shop", "role": "merchant",
                                                   "display_name": "Shop\nOther"},
                        headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert refused.status_code == 400 and "control characters" in refused.json()["error"]["message"]
    # without a display name, the client's name is the payee
    plain = call(http, "POST", "/v1/admin/clients", tokens["admin"],
                 {"name": "corner-shop", "role": "merchant"})
    assert create_payment(http, plain["token"], "alice")["payee"] == "corner-shop"


# -- the counter cannot be poisoned ----------------------------------------------------------
def _forged_counter_responses(card, batch: dict, counter: int) -> list[str]:
    """A PIN holder answers the signing batch with a bare-hash signature (PSO COMPUTE
    DIGITAL SIGNATURE) over what SIGN TRANSACTION would sign with `counter`: the same
    PKCS#1 v1.5 signature the card would make, without the card's counter moving. An
    issued applet refuses PSO on the payment slot (docs/apdu.md); the server must not
    rely on it (older applets, a relaxed personalization), so the card's key signs the
    bare hash here directly."""
    responses = []
    card.verify(card.pin)
    for item in batch["apdus"]:
        apdu = bytes.fromhex(item["apdu"])
        if apdu[1] != 0x54:
            responses.append(card.transmit(apdu).hex().upper())
        elif apdu[0] & 0x10:  # a chained part of SIGN TRANSACTION
            responses.append("9000")
    digest = hashlib.sha256(signed_transaction_data(_signed_fields(batch), counter)).digest()
    signature = card.keys[1].sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    forged = tlv.encode(0x86, counter.to_bytes(4, "big")) + tlv.encode(0x9E, signature)
    return responses + [forged.hex().upper() + "9000"]


def test_a_bare_hash_signature_cannot_poison_the_counter(ctx, http, tokens, enrolled):
    term = enrolled()
    first = term.pay(create_payment(http, tokens["merchant"], "alice")["payment_id"])
    assert first["state"] == "authorized"
    created = create_payment(http, tokens["merchant"], "alice", order_ref="poison")
    batch = _to_signing_batch(term, created["payment_id"])
    with pytest.raises(FlowError) as err:
        term.post_payment(created["payment_id"], batch,
                          _forged_counter_responses(term.card, batch, 0xFFFFFFFF))
    assert err.value.code == "counter_jump", err.value.body
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.last_counter)) == first["card_counter"]
        assert s.scalar(select(AuditEvent.code).where(AuditEvent.action == "payment.suspicious")) \
            == "counter_jump"
    # the card's genuine payments go on
    assert term.pay(create_payment(http, tokens["merchant"], "alice")["payment_id"])["state"] == "authorized"


# -- a merchant and a terminal cannot block a user without the user's card --------------------
def _self_signed_card(make_card, user: str, length: int):
    """An attacker's card: its own key and a self-signed certificate naming the user, made
    exactly `length` bytes long (the length of the user's real certificate, which the
    four-request path read)."""
    card = make_card()
    card.verify(card.pin)
    card.transmit(bytes.fromhex("00478001"))  # GENERATE ASYMMETRIC KEY PAIR, slot 1
    key, now = card.keys[1], datetime(2026, 1, 1)

    def certificate(units: int, chars: int, serial_bytes: int) -> bytes:
        """`chars` characters of padding spread over `units` OU attributes (<= 64 each)."""
        sizes = [chars // units + (1 if n < chars % units else 0) for n in range(units)]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)] + [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "x" * size) for size in sizes])
        return (x509.CertificateBuilder().subject_name(subject)
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
                .public_key(key.public_key()).serial_number(1 << (8 * serial_bytes - 2))
                .not_valid_before(now).not_valid_after(now + timedelta(days=3650))
                .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))

    for units in range(1, 40):  # the length grows by one per character within `units`
        low, high = units, 64 * units
        if not len(certificate(units, low, 1)) <= length <= len(certificate(units, high, 1)):
            continue
        while low < high:
            middle = (low + high) // 2
            low, high = (middle + 1, high) if len(certificate(units, middle, 1)) < length else (low, middle)
        for chars, serial_bytes in ((low, 1), (low - 1, 2), (low - 1, 3)):
            der = certificate(units, chars, serial_bytes)
            if len(der) == length:
                card.certificates[1] = der
                return card
    raise AssertionError(f"no self-signed certificate of {length} bytes")


def test_a_merchant_and_a_terminal_cannot_block_a_user_without_the_card(
        ctx, http, tokens, enrolled, make_card):
    alice = enrolled()
    attacker = Terminal(http, tokens["terminal"], _self_signed_card(
        make_card, "alice", len(alice.card.certificates[1])))
    for i in range(5):
        created = create_payment(http, tokens["merchant"], "alice", order_ref=f"lock-{i}")
        with pytest.raises(FlowError) as err:
            attacker.pay(created["payment_id"])
        assert err.value.code in ("certificate_mismatch", "certificate_untrusted"), err.value.body
    with ctx.db.transaction() as s:
        user = s.scalar(select(User).where(User.external_id == "alice"))
        assert (user.consecutive_failures, user.blocked_at) == (0, None)
        assert s.scalar(select(Card.consecutive_failures)) == 0
        refused = list(s.scalars(select(AuditEvent.code).where(AuditEvent.outcome == "refused")))
    assert refused.count("certificate_mismatch") == 5  # audited, not counted
    assert alice.pay(create_payment(http, tokens["merchant"], "alice")["payment_id"])["state"] == "authorized"


def test_uncounted_refusals_are_rate_limited_per_terminal(ctx, http, tokens, enrolled, make_card):
    alice = enrolled()
    limit = ctx.settings.client_refusal_limit
    attacker = Terminal(http, tokens["terminal"], _self_signed_card(
        make_card, "alice", len(alice.card.certificates[1])))
    for i in range(limit):
        created = create_payment(http, tokens["merchant"], "alice", order_ref=f"flood-{i}")
        with pytest.raises(FlowError) as err:
            attacker.pay(created["payment_id"])
        assert err.value.code == "certificate_mismatch"
    created = create_payment(http, tokens["merchant"], "alice", order_ref="flood-last")
    with pytest.raises(FlowError) as err:
        attacker.claim(created["payment_id"])
    assert err.value.status == 429 and err.value.code == "client_rate_limited"


def test_a_merchant_probing_user_ids_is_rate_limited(ctx, http, tokens):
    limit = ctx.settings.client_refusal_limit
    for i in range(limit):
        with pytest.raises(FlowError) as err:
            create_payment(http, tokens["merchant"], f"guess{i}")
        assert err.value.code == "unknown_user"
    with pytest.raises(FlowError) as err:
        create_payment(http, tokens["merchant"], "guess-last")
    assert err.value.status == 429 and err.value.code == "client_rate_limited"


# -- blocks and revocations are checked at every step -----------------------------------------
CHANGES = {"certificate_revoked": lambda: update(Certificate).values(
               status="revoked", revoked_at=utcnow(), revocation_reason="key_compromise"),
           "user_blocked": lambda: update(User).values(blocked_at=utcnow()),
           "card_blocked": lambda: update(Card).values(blocked_at=utcnow())}


@pytest.mark.parametrize("moment", ["after_the_claim", "between_the_checks_and_the_write"])
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_block_or_revocation_stops_the_final_post(ctx, http, tokens, enrolled, change, moment):
    """After the claim, or committed by another replica between the final post's checks (on a
    snapshot) and its write: the compare-and-sets carry the checks, so it is never missed."""
    term = enrolled()
    created = create_payment(http, tokens["merchant"], "alice")
    batch = _to_signing_batch(term, created["payment_id"])
    responses = term.run(batch)
    with ctx.db.transaction() as s:
        counter_before = s.scalar(select(Card.last_counter))
    store = ctx.payment_store
    authorize, reached = store.authorize, []

    def commit_the_change():
        with ctx.db.transaction() as s:  # another transaction, committed now
            s.execute(CHANGES[change]())

    async def after_a_concurrent_commit(authorization):
        store.authorize = authorize  # once
        reached.append(authorization)
        commit_the_change()
        return await authorize(authorization)
    if moment == "after_the_claim":
        commit_the_change()
    else:
        store.authorize = after_a_concurrent_commit
    with pytest.raises(FlowError) as err:
        term.post_payment(created["payment_id"], batch, responses)
    assert bool(reached) == (moment != "after_the_claim"), "the write was (not) reached"
    assert err.value.code == change, err.value.body
    with ctx.db.transaction() as s:
        assert s.get(Payment, created["payment_id"]).state == "refused"
        assert s.scalar(select(Card.last_counter)) == counter_before
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "payment.authorize", AuditEvent.outcome == "ok")) == 0


# -- the certificate reference is bound to the key that signs --------------------------------
def test_a_certificate_swapped_into_the_card_is_refused(ctx, http, tokens, enrolled):
    alice, eve = enrolled("alice"), enrolled("eve01")
    alice.card.certificates[1] = eve.card.certificates[1]  # alice's key, eve's certificate
    created = create_payment(http, tokens["merchant"], "alice")
    with pytest.raises(FlowError) as err:
        alice.pay(created["payment_id"])
    assert err.value.code in ("certificate_mismatch", "certificate_wrong_user"), err.value.body


# -- GET never writes --------------------------------------------------------------------------
def test_reading_an_overdue_payment_writes_nothing(ctx, http, tokens, enrolled):
    term = enrolled()
    created = create_payment(http, tokens["merchant"], "alice")
    term.claim(created["payment_id"])
    with ctx.db.transaction() as s:
        s.execute(update(Payment).values(expires_at=utcnow() - timedelta(seconds=1)))
        before = s.get(Payment, created["payment_id"]).state
    view = call(http, "GET", f"/v1/payments/{created['payment_id']}", tokens["merchant"])
    assert (view["state"], view["refusal_code"], view["batch"]) == ("expired", "payment_expired", None)
    with ctx.db.transaction() as s:
        assert s.get(Payment, created["payment_id"]).state == before  # computed, not stored


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_get_crossing_expiry_does_not_overwrite_an_authorization(ctx, http, tokens, enrolled):
    """The final post has locked the payment and waits for the card row (held here); a GET
    that sees the payment overdue runs meanwhile; then the post commits. The payment must
    stay authorized (the GET used to write 'expired' over it, by id alone)."""
    term = enrolled()
    payment_id = create_payment(http, tokens["merchant"], "alice")["payment_id"]
    batch = _to_signing_batch(term, payment_id)
    responses = [bytes.fromhex(r) for r in term.run(batch)]
    terminal_id, merchant_id = (_client_id(ctx, "terminal-"), _client_id(ctx, "merchant-"))
    deadline = utcnow() + timedelta(seconds=2)
    with ctx.db.transaction() as s:
        s.execute(update(Payment).values(expires_at=deadline))
    service = PaymentService(ctx)
    watcher = create_engine(normalize_url(ctx.settings.effective_database_url))
    holder = watcher.connect()
    results: dict = {}

    def waiting_locks() -> int:
        with watcher.connect() as c:
            return c.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))

    def wait_for(condition, what: str) -> None:
        for _ in range(400):
            if condition():
                return
            time.sleep(0.025)
        raise AssertionError(f"timed out waiting for {what}")

    def run(name, work):
        """`work()`, a coroutine of the (async) payment service, on this thread's own loop."""
        async def call():
            try:
                return await work()
            finally:
                await ctx.payment_store.close()  # this loop's connections
        try:
            results[name] = asyncio.run(call())
        except Exception as exc:  # noqa: BLE001 - reported below
            results[name] = exc

    try:
        holder.begin()
        holder.execute(text("SELECT id FROM cards FOR UPDATE"))
        post = threading.Thread(target=run, args=("post", lambda: service.post_responses(
            terminal_id, payment_id, batch["seq"], responses)))
        post.start()
        wait_for(lambda: waiting_locks() >= 1, "the final post to wait for the card row")
        while utcnow() <= deadline:
            time.sleep(0.05)
        get = threading.Thread(target=run, args=("get", lambda: service.get(
            merchant_id, "merchant", payment_id)))
        get.start()
        wait_for(lambda: not get.is_alive() or waiting_locks() >= 2, "the GET to read")
        holder.rollback()
        post.join(10)
        get.join(10)
    finally:
        holder.close()
        watcher.dispose()
    assert not isinstance(results["post"], Exception), results["post"]
    assert results["post"].state == "authorized"
    with ctx.db.transaction() as s:
        payment = s.get(Payment, payment_id)
        assert (payment.state, payment.refusal_code) == ("authorized", None)


# -- three requests, and a retried final post -------------------------------------------------
def test_a_payment_takes_three_requests_and_a_retry_returns_the_authorization(
        ctx, http, tokens, enrolled):
    term = enrolled()  # issued default: PIN per signature and bank-signed requests (8E)
    created = create_payment(http, tokens["merchant"], "alice")  # request 1
    state = term.claim(created["payment_id"])  # request 2
    responses = term.run(state["batch"])
    done = term.post_payment(created["payment_id"], state["batch"], responses)  # request 3
    assert done["state"] == "authorized"
    again = term.post_payment(created["payment_id"], state["batch"], responses)
    assert again == done
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.last_counter)) == done["card_counter"]
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "payment.authorize", AuditEvent.outcome == "ok")) == 1


def test_a_bank_requiring_attested_cards_refuses_an_unattested_one(ctx, http, tokens, enrolled):
    enrolled()
    ctx.settings = ctx.settings.with_overrides(payments_require_attested_card=True)
    assert create_payment(http, tokens["merchant"], "alice")["state"] == "created"
    with ctx.db.transaction() as s:  # as an unattested enrollment (a setting) leaves the key
        s.execute(update(Card).values(attested=False))
    with pytest.raises(FlowError) as err:
        create_payment(http, tokens["merchant"], "alice")
    assert err.value.code == "card_not_attested", err.value.body
