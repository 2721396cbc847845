"""The relay against the virtual card over PC/SC: batches composed the way the server
composes them go through unchanged, the PIN is asked here and never leaves, a payment is
shown and signed only when approved, and a refused command means nothing is sent."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.protocol import commands
from cardshield.protocol.constants import APPLET_AID
from cardshield.protocol.fci import parse_fci
from cardshield.protocol.keys import parse_public_key
from cardshield.protocol.transaction import Transaction, parse_sign_transaction_response, signed_transaction_data
from cardshield.terminal.allowlist import RefusedCommand
from cardshield.terminal.relay import Declined, Relay
from cardshield.terminal.ui import ScriptedInterface

from .conftest import PIN

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


def batch(*steps, seq=1):
    """steps: (name, apdu bytes, pin_required) as cardshield.server.batches.Batch.to_json()."""
    return {"seq": seq, "step": "test", "notes": [],
            "apdus": [{"name": name, "apdu": apdu.hex().upper(), "pin_required": pin} for name, apdu, pin in steps]}


SELECT = ("SELECT applet", commands.select_applet(APPLET_AID).short(), False)


def data_of(response_hex: str) -> bytes:
    assert response_hex.endswith("9000"), response_hex
    return bytes.fromhex(response_hex[:-4])


def generate(relay, slot=1):
    result = relay.run(batch(SELECT, ("GENERATE", commands.generate_key(slot).short(), True)))
    return parse_public_key(data_of(result.responses[1]))


def counter(link) -> int:
    return parse_fci(data_of(Relay(link, ScriptedInterface([])).run(batch(SELECT)).responses[0])).counter


def test_enrollment_batches_ask_the_pin_once_and_relay_unchanged(link):
    ui = ScriptedInterface([PIN])
    relay = Relay(link, ui)
    key = generate(relay)
    assert [r.pin_needed for r in ui.requests] == [True]
    assert "key pair" in ui.requests[0].action

    challenge = bytes(range(32))
    result = relay.run(batch(("READ PUBLIC KEY", commands.read_public_key(1).short(), False),
                             ("PROVE POSSESSION", commands.prove_possession(1, challenge).short(), True)))
    assert parse_public_key(data_of(result.responses[0])).public_numbers() == key.public_numbers()
    key.verify(data_of(result.responses[1]), b"CSPOP1" + challenge, padding.PKCS1v15(), hashes.SHA256())

    # The server's SELECT clears the card's PIN state; the relay presents the PIN of this flow again.
    der = b"\x30\x82\x01\x2c" + bytes(300)
    pieces = commands.put_certificate(1, der).chained()
    steps = [SELECT, *[(f"PUT DATA {i}", piece, False) for i, piece in enumerate(pieces)],
             ("SELECT EF", commands.select_certificate(1).short(), False),
             ("READ BINARY 0", commands.read_binary(0, ne=256).short(), False),
             ("READ BINARY 256", commands.read_binary(256, ne=48).short(), False)]
    result = relay.run(batch(*steps))
    assert len(result.responses) == len(steps) and result.relayed == len(steps)
    assert data_of(result.responses[-2]) + data_of(result.responses[-1]) == der
    assert len(ui.requests) == 1  # one PIN entry for the whole enrollment


def test_payment_is_shown_and_signed_only_after_approval(link):
    ui = ScriptedInterface([PIN])
    key = generate(Relay(link, ui))
    tx = Transaction(4999, "EUR", "Example Shop", "order-42", bytes(range(32)))
    relay = Relay(link, ui)
    result = relay.run(batch(SELECT, ("SIGN TRANSACTION", commands.sign_transaction(1, tx).short(), True)))
    shown = ui.requests[-1]
    assert shown.pin_needed and shown.payment is not None
    assert (shown.payment.amount_text, shown.payment.payee, shown.payment.order_ref) == (
        "49.99 EUR", "Example Shop", "order-42")
    signed = parse_sign_transaction_response(data_of(result.responses[1]))
    key.verify(signed.signature, signed_transaction_data(tx.tlvs(), signed.counter), padding.PKCS1v15(),
               hashes.SHA256())


def test_declined_payment_never_reaches_the_card(link):
    tx = Transaction(100, "EUR", "Someone", "o-1", bytes(16))
    before = counter(link)
    link.sent.clear()
    relay = Relay(link, ScriptedInterface([PIN], approve=lambda request: request.payment is None))
    with pytest.raises(Declined):
        relay.run(batch(SELECT, ("SIGN TRANSACTION", commands.sign_transaction(1, tx).short(), True)))
    assert all(command.ins != 0x54 for command in link.sent)
    assert counter(link) == before


def test_wrong_pin_shows_tries_left_then_the_right_one_works(link):
    ui = ScriptedInterface(["0000", PIN])
    generate(Relay(link, ui))
    assert [(r.pin_needed, r.tries_left) for r in ui.requests] == [(True, None), (True, 2)]
    assert CardShield(link.transport).pin_tries_left() is None  # verified; counter back to 3


def test_a_refused_command_means_nothing_is_sent(link):
    link.sent.clear()
    with pytest.raises(RefusedCommand):
        Relay(link, ScriptedInterface([PIN])).run(batch(SELECT, ("PERSONALIZE", bytes.fromhex("80E00100043132333400"),
                                                                  False)))
    assert link.sent == []


def test_the_relay_stops_at_the_first_error(link):
    result = Relay(link, ScriptedInterface([PIN])).run(batch(
        SELECT, ("SELECT EF", commands.select_certificate(2).short(), False),
        ("READ BINARY", commands.read_binary(0, ne=256).short(), False)))
    assert len(result.responses) == 2 and result.responses[1] == "6A82"


def test_the_pin_never_appears_in_the_trace(issued_card):
    lines: list[str] = []
    with Transport(issued_card, trace=True, trace_sink=lines.append) as transport:
        generate(Relay(transport, ScriptedInterface([PIN])))
    trace = "\n".join(lines)
    assert "00 20 00 81" in trace  # the VERIFY went through this transport
    assert PIN.encode().hex().upper() not in trace.replace(" ", "")


def test_a_pin_that_is_not_digits_is_asked_again_without_spending_a_try(link):
    ui = ScriptedInterface(["12ab", PIN])
    generate(Relay(link, ui))
    assert [(r.tries_left, r.problem) for r in ui.requests] == [
        (None, None), (None, "The PIN is 4 to 12 digits; nothing was sent to the card.")]
    assert all(command.data != b"12ab" for command in link.sent)
