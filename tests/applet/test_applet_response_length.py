"""Answers longer than 256 bytes: one extended Le brings them whole through an extended-length
reader (ISO/IEC 7816-4 5.1); a short-APDU reader fetches the rest with GET RESPONSE (5.3.4).
A card without extended length (a SIM: T=0) takes the short path whatever the reader, and on
T=0 a case-4 command's TPDU carries no Le, so its answer starts with a 61xx of its own: one
GET RESPONSE more (ISO/IEC 7816-3 12.2). The APDUs are counted on the transport's trace, one
"> " line per SCardTransmit."""

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from applet_support import PIN, short_apdus_only
from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.protocol import Transaction, signed_transaction_data

pytestmark = pytest.mark.card

READERS = {"extended reader": None, "short-APDU reader": False}


class TracedCard:
    """The reference card through its own connection, with every APDU of it traced."""

    def __init__(self, reader_name: str, extended_length: bool | None):
        self.lines: list[str] = []
        self.transport = Transport(reader_name, extended_length=extended_length, trace=True,
                                   trace_sink=self.lines.append)
        self.transport.connect()
        self.shield = CardShield(self.transport)
        self.shield.select()

    def extended(self, reader: str) -> bool:
        """Whether the exchanges can be extended ones: an extended reader and a card that takes them."""
        return reader == "extended reader" and not short_apdus_only(self.transport)

    @property
    def t0(self) -> bool:
        return self.transport.protocol_name == "T0"

    def count(self, operation):
        """Runs operation(shield); returns its result and the command APDUs it sent."""
        before = len(self.lines)
        result = operation(self.shield)
        return result, [line for line in self.lines[before:] if line.startswith("> ")]


@pytest.fixture(params=list(READERS))
def traced(request, reader_name, card):
    connection = TracedCard(reader_name, READERS[request.param])
    try:
        yield request.param, connection
    finally:
        connection.transport.close("reset")


def get_responses(apdus: list[str]) -> list[str]:
    return [line for line in apdus if line.startswith("> 00 C0")]


def test_read_public_key_exchanges(traced, reference):
    reader, connection = traced
    key, apdus = connection.count(lambda shield: shield.read_public_key(1))
    assert key == reference.public_keys[1]
    if connection.extended(reader):
        assert len(apdus) == 1 and "(extended)" in apdus[0], apdus
    else:  # an RSA-2048 7F49 template is longer than 256 bytes: 61xx, one GET RESPONSE (case 2, also on T=0)
        assert len(apdus) == 2 and len(get_responses(apdus)) == 1, apdus
        assert not any("(extended)" in line for line in apdus)


def test_sign_transaction_exchanges(traced, reference):
    reader, connection = traced
    connection.shield.verify_pin(PIN)
    tx = Transaction(amount=4200, currency="EUR", payee="Bakery", order_ref="ORDER-9", nonce=os.urandom(16))
    signed, apdus = connection.count(lambda shield: shield.sign_transaction(1, tx))
    reference.public_keys[1].verify(signed.signature, signed_transaction_data(tx.tlvs(), signed.counter),
                                    padding.PKCS1v15(), hashes.SHA256())
    if connection.extended(reader):
        assert len(apdus) == 1 and not get_responses(apdus), apdus
    elif connection.t0:  # case 4 on T=0: 61xx first, then 256 bytes and 61xx, then the last 10
        assert len(apdus) == 3 and len(get_responses(apdus)) == 2, apdus
    else:  # 86 04 counter, 9E 82 01 00 signature: 266 bytes, one GET RESPONSE
        assert len(apdus) == 2 and len(get_responses(apdus)) == 1, apdus


def test_extended_le_stays_within_a_reader_stating_its_message_size(reader_name, card, reference):
    """A CCID reader whose messages carry 262 bytes cannot bring back a 7F49 template of
    about 270 bytes: Ne is lowered to 260 and the card announces the rest with 61xx. A card
    without extended length gets a short Le (256) and 61xx in any reader."""
    connection = TracedCard(reader_name, None)
    try:
        connection.transport.reader_max_apdu = 262
        key, apdus = connection.count(lambda shield: shield.read_public_key(1))
        answers = [line for line in connection.lines if line.startswith("< ")]
    finally:
        connection.transport.close("reset")
    assert key == reference.public_keys[1]
    first = "Le=256" if short_apdus_only(connection.transport) else "Le=260 (extended)"
    assert apdus[0].endswith(first) and len(get_responses(apdus)) == 1, apdus
    assert all(len(line.split()[1]) // 2 <= 262 - 2 for line in answers)  # data hex or SW


def test_a_short_le_of_00_gets_at_most_256_bytes_then_61xx(card, transport):
    """A short APDU's Le 00 means 256 (ISO/IEC 7816-4 clause 5.1), also for an applet that
    implements ExtendedLength. Io caps Ne at 256 for short commands and for every command
    on T=0, where the Java Card API lets setOutgoing() answer 32767 to such an applet.
    READ PUBLIC KEY is case 2, so the same two APDUs on T=1 and on the T=0 sim profile."""
    from applet_support import exchange

    whole = card.read_public_key(1)  # the 7F49 DO of an RSA-2048 key: 265 bytes
    first = exchange(transport, "00 47 81 01 00")
    assert len(first.data) == 256 and first.sw1 == 0x61
    rest = exchange(transport, f"00 C0 00 00 {first.sw2:02X}")
    assert rest.sw == 0x9000 and len(first.data) + len(rest.data) > 256
    from cardshield.protocol.keys import parse_public_key

    assert parse_public_key(first.data + rest.data) == whole
