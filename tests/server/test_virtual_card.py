"""Both flows end to end against the real applet on the virtual card (jcardsim behind
pcscd + vpcd), through the Python card client's transport: the server's batches go to the
card byte for byte; only the PIN is handled locally, as a terminal does.

The card is personalized so the payment slot REQUIRES server-signed requests (tag 8E),
with the server's request-signing key loaded: the applet itself checks the server."""
from __future__ import annotations

import pytest
from cryptography import x509
from sqlalchemy import select

from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.protocol import encode_rsa_public_key
from cardshield.protocol.constants import Algorithm, SlotPolicy
from cardshield.server.models import Card, Payment
from cardshield.server.testing.flows import FlowError, Terminal, create_payment

pytestmark = [pytest.mark.card, pytest.mark.virtual_only, pytest.mark.slow]

PIN, PUK = "4321", "87654321"


class CardOverPcsc:
    """The terminal's side of the card: relay raw APDUs, verify the PIN locally."""

    def __init__(self, shield: CardShield):
        self.shield = shield

    @property
    def pin_verified(self) -> bool:
        return self.shield.pin_tries_left() is None

    def verify(self, pin: str) -> None:
        self.shield.verify_pin(pin)

    def transmit(self, apdu: bytes) -> bytes:
        return self.shield.transport.transmit(CommandAPDU.decode(apdu)).encode()


@pytest.fixture
def applet_card(virtual_card, transport, ctx):
    virtual_card.pristine()
    transport.reconnect("reset")
    shield = CardShield(transport)
    shield.personalize_development_card(
        PIN, PUK, server_key_7f49=encode_rsa_public_key(ctx.ca.request_key.public_key()),
        slots={1: (Algorithm.RSA_2048, SlotPolicy.SERVER_SIGNED_REQUESTS),
               2: (Algorithm.RSA_2048, SlotPolicy(0))})
    yield CardOverPcsc(shield)
    virtual_card.pristine()  # leave a fresh card for the tests after this one
    transport.reconnect("reset")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_enroll_and_pay_with_the_applet(ctx, http, tokens, applet_card):
    term = Terminal(http, tokens["terminal"], applet_card, pin=PIN)
    done = term.enroll("alice", card_label="vcard-1")
    assert done["state"] == "completed"
    der = bytes.fromhex(done["certificate_der_hex"])
    assert applet_card.shield.read_certificate(1) == der  # stored in the card's EF C1 01
    cert = x509.load_der_x509_certificate(der)
    cert.verify_directly_issued_by(ctx.ca.cert)
    on_card_key = applet_card.shield.read_public_key(1)
    assert cert.public_key().public_numbers() == on_card_key.public_numbers()

    first = term.pay(create_payment(http, tokens["merchant"], "alice", amount_minor=2599)["payment_id"])
    second = term.pay(create_payment(http, tokens["merchant"], "alice", order_ref="o-2")["payment_id"])
    assert first["state"] == second["state"] == "authorized"
    assert second["card_counter"] > first["card_counter"]
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.requires_server_signature)) is True
        assert s.scalar(select(Card.last_counter)) == second["card_counter"]

    # a relay that rewrites the payee: the applet checks the server signature (8E) over
    # the fields and refuses with 6982 before signing anything
    created = create_payment(http, tokens["merchant"], "alice", order_ref="o-3")
    state = term.claim(created["payment_id"])  # one batch: SELECT, SELECT EF (reference), SIGN
    payee = created["payee"].encode()
    tampered = [dict(a, apdu=a["apdu"].replace(payee.hex().upper(), (b"X" * len(payee)).hex().upper()))
                for a in state["batch"]["apdus"]]
    assert tampered != state["batch"]["apdus"]
    with pytest.raises(FlowError) as err:
        term.post_payment(created["payment_id"], state["batch"], term.run(dict(state["batch"], apdus=tampered)))
    assert err.value.code == "card_refused_signature" and "6982" in err.value.body["error"]["message"]
    with ctx.db.transaction() as s:
        assert s.get(Payment, created["payment_id"]).state == "sign_requested"
    # a card refusal leaves the batch pending while the nonce is valid: the honest relay retries
    third = term.post_payment(created["payment_id"], state["batch"])
    assert third["state"] == "authorized" and third["card_counter"] > second["card_counter"]
