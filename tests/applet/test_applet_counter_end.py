"""The signature counter's end of range, end to end over PC/SC on the virtual card.

The authentication server accepts a SIGN TRANSACTION counter only if it is strictly above
the last one it accepted, so the card must never wrap: at FF FF FF FF it refuses with 6985,
returns no signature and keeps the counter (docs/apdu.md, SIGN TRANSACTION). Reaching that
value by APDU takes 2^32 signatures; these tests put the counter near it with the virtual
card's host-only SET-BYTES control (a test facility with no counterpart on a real card,
never reachable by APDU), then use only ordinary APDUs through pcscd.

Covered: the applet's counter arithmetic (carry, last value, refusal at the end), that the
signature over the last value verifies, that the refusal carries no data and leaves the
counter (FCI tag 87) unchanged, also across a power cycle. Not covered: how the
counter got there (the control writes the applet's persistent array directly, outside
any APDU and any Java Card transaction), and real-card behaviour (virtual card only).
"""

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from applet_support import PIN
from cardshield.protocol import Transaction, commands, signed_transaction_data
from cardshield.sim.control import ControlError

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

#: the applet field holding the counter: CardShieldApplet.state (Persistent) .counter
COUNTER_FIELD = "state.counter"
COUNTER_MAX = 0xFFFFFFFF


def payment() -> Transaction:
    return Transaction(amount=4200, currency="EUR", payee="Counter End Ltd", order_ref="END-1", nonce=os.urandom(16))


@pytest.fixture
def set_counter(virtual_card, verified):
    """Sets the reference card's counter; puts the value found back afterwards so the other
    tests keep a card that signs (they only compare counters with each other)."""
    original = verified.select().counter
    verified.verify_pin(PIN)

    def set_to(value: int) -> None:
        virtual_card.set_applet_bytes(verified.aid, COUNTER_FIELD, value.to_bytes(4, "big"))

    yield set_to
    set_to(original)


def assert_signs_with_counter(card, public_key, expected: int) -> None:
    tx = payment()
    signed = card.sign_transaction(1, tx)
    assert signed.counter == expected
    public_key.verify(signed.signature, signed_transaction_data(tx.tlvs(), expected), padding.PKCS1v15(),
                      hashes.SHA256())


@pytest.mark.parametrize("start", [0x000000FF, 0x0000FFFF, 0x00FFFFFF, 0x7FFFFFFF],
                         ids=["carry-1", "carry-2", "carry-3", "sign-bit"])
def test_counter_carries_into_the_next_byte(set_counter, verified, reference, start):
    set_counter(start)
    assert verified.select().counter == start
    verified.verify_pin(PIN)
    assert_signs_with_counter(verified, reference.public_keys[1], start + 1)
    assert verified.select().counter == start + 1


def test_counter_stops_at_ffffffff_without_wrapping(set_counter, verified, reference, transport):
    set_counter(COUNTER_MAX - 1)
    verified.select()
    verified.verify_pin(PIN)
    # the last value is still a valid signature
    assert_signs_with_counter(verified, reference.public_keys[1], COUNTER_MAX)

    # the next one is refused: 6985, no counter, no signature, in either slot
    for slot in (1, 2):
        response = verified.transmit(commands.sign_transaction(slot, payment()))
        assert response.sw == 0x6985
        assert response.data == b""
    assert verified.select().counter == COUNTER_MAX

    # for good: still refused after a power cycle, the counter still at its end
    transport.reconnect("unpower")
    assert verified.select().counter == COUNTER_MAX
    verified.verify_pin(PIN)
    response = verified.transmit(commands.sign_transaction(1, payment()))
    assert (response.sw, response.data) == (0x6985, b"")
    assert verified.select().counter == COUNTER_MAX


def test_counter_control_refuses_what_it_cannot_write(virtual_card, card):
    with pytest.raises(ControlError, match="holds 4 bytes"):
        virtual_card.set_applet_bytes(card.aid, COUNTER_FIELD, bytes(5))
    with pytest.raises(ControlError, match="has no field"):
        virtual_card.set_applet_bytes(card.aid, "state.no_such_field", bytes(4))
    with pytest.raises(ControlError, match="no applet instance"):
        virtual_card.set_applet_bytes(bytes.fromhex("F0000000000001"), COUNTER_FIELD, bytes(4))
