"""Figure 6 end to end through the HTTP API with SoftCard: an authorization whose
signature verifies, and every refusal (each recorded in the audit log). A payment is three
requests: the merchant creates it, the terminal claims it and gets one batch (SELECT,
SELECT certificate EF with its SHA-256 reference, SIGN TRANSACTION), the terminal posts
the card's answers."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select, update

from cardshield.card.apdu import CommandAPDU
from cardshield.protocol import tlv
from cardshield.protocol.constants import SlotPolicy
from cardshield.protocol.transaction import signed_transaction_data
from cardshield.server.clock import utcnow
from cardshield.server.models import AuditEvent, Card, Payment, User
from cardshield.server.testing.flows import FlowError, Terminal, call, create_payment


def _refusals(ctx) -> list[str]:
    with ctx.db.transaction() as s:
        return list(s.scalars(select(AuditEvent.code).where(AuditEvent.outcome == "refused")))


def _refuse(term, payment_id, expected_code, responses_fn=None):
    state = term.claim(payment_id)
    assert state["batch"]["step"] == "authorize"
    responses = responses_fn(state["batch"]) if responses_fn else None
    with pytest.raises(FlowError) as err:
        term.post_payment(payment_id, state["batch"], responses)
    assert err.value.code == expected_code, err.value.body
    return state


def test_payment_is_authorized_with_a_verifiable_signature(ctx, http, tokens, enrolled):
    term = enrolled()
    bakery = call(http, "POST", "/v1/admin/clients", tokens["admin"],
                  {"name": "bakery", "role": "merchant", "display_name": "Bakery"})
    created = create_payment(http, bakery["token"], "alice", amount_minor=4999)
    done = term.pay(created["payment_id"])
    assert done["state"] == "authorized" and done["card_counter"] == 1
    assert (done["signing_mode"], done["payee"]) == ("server_signed", "Bakery")
    with ctx.db.transaction() as s:
        p = s.get(Payment, created["payment_id"])
        card = s.get(Card, p.card_id)
    # an independent check: the stored signature verifies over what the card signed
    public = term.card.keys[1].public_key()
    public.verify(p.signature, signed_transaction_data(p.signed_fields, 1), padding.PKCS1v15(),
                  hashes.SHA256())
    assert tlv.find(p.signed_fields, 0x81) == (4999).to_bytes(2, "big")
    assert tlv.find(p.signed_fields, 0x83) == b"Bakery"
    assert card.last_counter == 1
    merchant_view = call(http, "GET", f"/v1/payments/{created['payment_id']}", bakery["token"])
    assert merchant_view["state"] == "authorized"


@pytest.mark.parametrize("bank_key_type", ["ec-p256", "rsa-2048"])
def test_the_bank_signs_8e_with_the_key_type_the_card_holds(ctx, http, tokens, enrolled, bank_key_type):
    """The card's FCI (flag 40) at enrollment says which bank key it holds; each payment's 8E
    is then that key's (the SoftCard checks it as the applet does: 6982 otherwise)."""
    from cardshield.protocol.bank_key import BankKeyType, verify_request

    key_type = BankKeyType(bank_key_type)
    term = enrolled(server_public_key=ctx.ca.request_keys[key_type].public_key())
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.bank_key_algorithm)) == key_type.algorithm
    created = create_payment(http, tokens["merchant"], "alice")
    claimed = term.claim(created["payment_id"])
    signing = [a for a in claimed["batch"]["apdus"] if a["name"].startswith("SIGN TRANSACTION")]
    assert len(signing) == (1 if key_type is BankKeyType.EC_P256 else 2)  # RSA's 8E needs a chain
    done = term.post_payment(created["payment_id"], claimed["batch"])
    assert done["state"] == "authorized"
    with ctx.db.transaction() as s:
        fields = s.get(Payment, created["payment_id"]).signed_fields
    data = b"".join(CommandAPDU.decode(bytes.fromhex(a["apdu"])).data for a in signing)
    server_signature = tlv.decode(data)[5].value  # 81..85, then 8E
    assert len(server_signature) == (64 if key_type is BankKeyType.EC_P256 else 256)
    for other in BankKeyType:
        assert verify_request(ctx.ca.request_keys[other].public_key(), fields, server_signature) is (other is key_type)


# A card personalized without the bank-signed policy: the card signs whatever reaches it,
# so the server's own check of the signature is what refuses a change (with 8E, the card
# refuses). The attestation reports the relaxed policy; a bank accepts it only by setting.
NO_8E = {1: SlotPolicy(0), 2: SlotPolicy(0)}


@pytest.fixture
def relaxed_bank(ctx):
    ctx.settings = ctx.settings.with_overrides(required_slot_policy={1: 0, 2: 0})


def test_changed_amount_or_payee_is_refused(ctx, http, tokens, enrolled, relaxed_bank):
    term = enrolled(slot_policy=NO_8E)

    shop = call(http, "POST", "/v1/admin/clients", tokens["admin"],
                {"name": "example", "role": "merchant", "display_name": "Example Shop"})
    tokens = dict(tokens, merchant=shop["token"])

    def swap_payee(data: bytes) -> bytes:
        return data.replace(b"\x83\x0cExample Shop", b"\x83\x0cAttacker Ltd")
    term.card.tamper = swap_payee
    created = create_payment(http, tokens["merchant"], "alice")
    _refuse(term, created["payment_id"], "signature_mismatch")

    def raise_amount(data: bytes) -> bytes:
        return data.replace(b"\x81\x02\x04\xe2", b"\x81\x02\x27\x10")
    term.card.tamper = raise_amount
    created = create_payment(http, tokens["merchant"], "alice")
    _refuse(term, created["payment_id"], "signature_mismatch")
    with ctx.db.transaction() as s:
        assert s.get(Payment, created["payment_id"]).state == "refused"
    assert _refusals(ctx).count("signature_mismatch") == 2


def test_replayed_signature_is_refused(ctx, http, tokens, enrolled):
    term = enrolled()
    first = create_payment(http, tokens["merchant"], "alice", order_ref="o-1")
    sign_batch = term.claim(first["payment_id"])["batch"]
    responses = term.run(sign_batch)
    assert term.post_payment(first["payment_id"], sign_batch, responses)["state"] == "authorized"
    # the same response again to the same payment: the one authorization, not a second
    assert term.post_payment(first["payment_id"], sign_batch, responses)["card_counter"] == 1
    # ... and to a new payment with identical fields: another nonce, so it fails to verify
    second = create_payment(http, tokens["merchant"], "alice", order_ref="o-1")
    _refuse(term, second["payment_id"], "signature_mismatch", lambda batch: responses)
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.last_counter)) == 1
        assert [p.state for p in s.scalars(select(Payment).order_by(Payment.created_at))] == \
            ["authorized", "refused"]


def test_non_increasing_counter_is_refused(ctx, http, tokens, enrolled):
    term = enrolled()
    assert term.pay(create_payment(http, tokens["merchant"], "alice")["payment_id"])["state"] == "authorized"
    assert term.pay(create_payment(http, tokens["merchant"], "alice")["payment_id"])["card_counter"] == 2
    term.card.counter = 0  # a cloned or rolled-back card signs with counter 1 again
    created = create_payment(http, tokens["merchant"], "alice")
    _refuse(term, created["payment_id"], "counter_not_increasing")
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.last_counter)) == 2


def test_another_card_with_the_users_certificate_is_refused(http, tokens, enrolled):
    """The certificate reference is bound to the key that signs: another card answering
    with alice's certificate (public data) cannot sign for her."""
    alice = enrolled("alice")
    mallory = enrolled("mallory")
    mallory.card.certificates[1] = alice.card.certificates[1]
    created = create_payment(http, tokens["merchant"], "alice")

    def mallory_signs(batch):
        return Terminal(alice.http, alice.token, mallory.card).run(batch)
    _refuse(alice, created["payment_id"], "signature_mismatch", mallory_signs)


def test_another_users_card_is_refused(http, tokens, enrolled):
    enrolled("alice")
    eve = enrolled("eve01")
    created = create_payment(http, tokens["merchant"], "alice")
    state = eve.claim(created["payment_id"])
    with pytest.raises(FlowError) as err:
        eve.post_payment(created["payment_id"], state["batch"])
    assert err.value.code == "certificate_mismatch"


def test_expired_payment_is_refused(ctx, http, tokens, enrolled):
    term = enrolled()
    created = create_payment(http, tokens["merchant"], "alice")
    state = term.claim(created["payment_id"])
    with ctx.db.transaction() as s:
        s.execute(update(Payment).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(FlowError) as err:
        term.post_payment(created["payment_id"], state["batch"])
    assert err.value.status == 410 and err.value.code == "payment_expired"
    with ctx.db.transaction() as s:
        assert s.get(Payment, created["payment_id"]).state == "expired"


def test_expired_nonce_is_refused(ctx, http, tokens, enrolled):
    term = enrolled()
    created = create_payment(http, tokens["merchant"], "alice")
    state = term.claim(created["payment_id"])
    with ctx.db.transaction() as s:
        s.execute(update(Payment).values(nonce_expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(FlowError) as err:
        term.post_payment(created["payment_id"], state["batch"])
    assert err.value.code == "payment_expired"


def test_revoked_certificate_fails_every_later_payment(ctx, http, tokens, enrolled):
    term = enrolled()
    assert term.pay(create_payment(http, tokens["merchant"], "alice")["payment_id"])["state"] == "authorized"
    # revoked while a payment is in flight: the final check refuses it
    in_flight = create_payment(http, tokens["merchant"], "alice")
    state = term.claim(in_flight["payment_id"])
    call(http, "POST", "/v1/admin/revocations", tokens["admin"], {"user_id": "alice"})
    with pytest.raises(FlowError) as err:
        term.post_payment(in_flight["payment_id"], state["batch"])
    assert err.value.code == "certificate_revoked"
    # and every later one is refused at once: no active certificate left
    with pytest.raises(FlowError) as err:
        create_payment(http, tokens["merchant"], "alice")
    assert err.value.code == "no_active_certificate"


def test_signing_mode_is_the_cards_issuer_policy(ctx, http, tokens, enrolled, relaxed_bank):
    """A card issued with the default policy gets the bank's 8E signature (a chained
    command); a card personalized without it gets SIGN TRANSACTION alone."""
    bank_signed = enrolled("alice")
    created = create_payment(http, tokens["merchant"], "alice")
    state = bank_signed.claim(created["payment_id"])
    assert state["signing_mode"] == "server_signed"
    assert sum(a["apdu"][2:4] == "54" for a in state["batch"]["apdus"]) > 1  # chained with 8E
    assert bank_signed.post_payment(created["payment_id"], state["batch"])["state"] == "authorized"
    relaxed = enrolled("bob01", slot_policy={1: SlotPolicy(0), 2: SlotPolicy(0)})
    created = create_payment(http, tokens["merchant"], "bob01")
    assert created["signing_mode"] == "transaction"
    state = relaxed.claim(created["payment_id"])
    assert [a["name"] for a in state["batch"]["apdus"]] == [
        "SELECT applet", "SELECT certificate EF (reference)", "SIGN TRANSACTION"]
    assert relaxed.post_payment(created["payment_id"], state["batch"])["state"] == "authorized"


def test_five_consecutive_failures_block_user_and_card(ctx, http, tokens, enrolled, relaxed_bank):
    term = enrolled(slot_policy=NO_8E)
    term.card.tamper = lambda data: data.replace(b"\x81\x02\x04\xe2", b"\x81\x02\x04\xe3")
    for i in range(5):
        created = create_payment(http, tokens["merchant"], "alice", order_ref=f"o{i}")
        _refuse(term, created["payment_id"], "signature_mismatch")
    with pytest.raises(FlowError) as err:
        create_payment(http, tokens["merchant"], "alice")
    assert err.value.status == 403 and err.value.code == "user_blocked"
    with ctx.db.transaction() as s:
        assert s.scalar(select(User.blocked_at)) is not None
        assert s.scalar(select(Card.blocked_at)) is not None


def test_success_resets_the_failure_count(ctx, http, tokens, enrolled, relaxed_bank):
    term = enrolled(slot_policy=NO_8E)
    for i in range(4):
        term.card.tamper = lambda data: data.replace(b"\x81\x02\x04\xe2", b"\x81\x02\x04\xe3")
        _refuse(term, create_payment(http, tokens["merchant"], "alice", order_ref=f"o{i}")["payment_id"],
                "signature_mismatch")
        term.card.tamper = None
        assert term.pay(create_payment(http, tokens["merchant"], "alice")["payment_id"])["state"] == "authorized"
    with ctx.db.transaction() as s:
        assert s.scalar(select(User.consecutive_failures)) == 0
        assert s.scalar(select(User.blocked_at)) is None


def test_another_terminal_cannot_take_or_answer(ctx, http, tokens, enrolled, bank):
    from cardshield.server.tokens import create_client
    term = enrolled()
    other = Terminal(http, create_client(ctx.db, "other", "terminal"), term.card)
    created = create_payment(http, tokens["merchant"], "alice")
    state = term.claim(created["payment_id"])
    with pytest.raises(FlowError) as err:
        other.claim(created["payment_id"])
    assert err.value.code == "wrong_terminal"
    with pytest.raises(FlowError) as err:
        other.post_payment(created["payment_id"], state["batch"])
    assert err.value.code == "wrong_terminal"
    assert term.pay(created["payment_id"])["state"] == "authorized"


def _card_refuses(term):
    """What a terminal posts when the user's card (it answered its certificate reference)
    refuses the signing command with 6982 (e.g. a relay changed a command whose slot
    requires the bank's signature)."""
    def responses(batch) -> list[str]:
        answers = term.run(dict(batch, apdus=batch["apdus"][:2]))
        return answers + ["9000"] * (len(batch["apdus"]) - 3) + ["6982"]
    return responses


def test_card_refusing_to_sign_counts_is_audited_and_may_be_retried(ctx, http, tokens, enrolled):
    term = enrolled()
    created = create_payment(http, tokens["merchant"], "alice")
    state = _refuse(term, created["payment_id"], "card_refused_signature", _card_refuses(term))
    with ctx.db.transaction() as s:
        assert s.scalar(select(User.consecutive_failures)) == 1
        assert s.scalar(select(Card.consecutive_failures)) == 1
        assert s.get(Payment, created["payment_id"]).state == "sign_requested"
        detail = s.scalar(select(AuditEvent.detail).where(AuditEvent.code == "card_refused_signature"))
    assert "6982" in detail
    # an honest retry of the same signing batch within the nonce's validity succeeds
    done = term.post_payment(created["payment_id"], state["batch"])
    assert done["state"] == "authorized"
    with ctx.db.transaction() as s:
        assert s.scalar(select(User.consecutive_failures)) == 0


def test_repeated_card_refusals_block_the_card_and_end_the_payment(ctx, http, tokens, enrolled):
    term = enrolled()
    created = create_payment(http, tokens["merchant"], "alice")
    state = _refuse(term, created["payment_id"], "card_refused_signature", _card_refuses(term))
    for _ in range(4):
        with pytest.raises(FlowError) as err:
            term.post_payment(created["payment_id"], state["batch"], _card_refuses(term)(state["batch"]))
        assert err.value.code == "card_refused_signature"
    with ctx.db.transaction() as s:
        payment = s.get(Payment, created["payment_id"])
        assert (payment.state, payment.refusal_code) == ("refused", "card_refused_signature")
        assert s.scalar(select(Card.blocked_at)) is not None
    with pytest.raises(FlowError) as err:  # a final state: a good signature comes too late
        term.post_payment(created["payment_id"], state["batch"])
    assert err.value.code == "session_closed"


def test_an_abandoned_payment_is_swept_to_expired(ctx, http, tokens, enrolled):
    from cardshield.server.payment import sweep_expired_payments
    term = enrolled()
    created = create_payment(http, tokens["merchant"], "alice")
    term.claim(created["payment_id"])  # now awaiting the signature
    with ctx.db.transaction() as s:
        s.execute(update(Payment).values(expires_at=utcnow() - timedelta(seconds=1)))
    with ctx.db.transaction() as s:
        assert sweep_expired_payments(s.connection()) == [created["payment_id"]]
    with ctx.db.transaction() as s:
        payment = s.get(Payment, created["payment_id"])
        assert (payment.state, payment.refusal_code) == ("expired", "payment_expired")
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.payment_id == payment.id)
                        .order_by(AuditEvent.id.desc()).limit(1)) == "payment.expire"
