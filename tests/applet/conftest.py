"""Fixtures of the applet tests: one personalized, issued card reused across tests (RSA
key generation is the slow part), rebuilt only after a test wiped the card.

The reference card: PIN 1234, PUK 12345678, the test server's RSA-2048 key loaded, both
slots RSA-2048 without policy flags (slot 01 relaxed explicitly by PERSONALIZE P1=03, since
ISSUE would give it PIN per signature + server-signed), a key generated in each slot, no
certificates. Slot 01 refuses bare-hash signing and DECIPHER whatever its policy.
Tests that change that state either restore it or use `fresh_card` (a wiped card, virtual
card only), after which the next test gets a rebuilt reference card.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cardshield.card.client import CardShield
from cardshield.protocol import encode_rsa_public_key
from cardshield.protocol.keys import PublicKey

from applet_support import PIN, PUK, RELAXED_PAYMENT_SLOT

pytestmark = pytest.mark.card


@dataclass
class ReferenceCard:
    valid: bool = False
    public_keys: dict[int, PublicKey] = field(default_factory=dict)


@pytest.fixture(scope="session")
def server_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def reference() -> ReferenceCard:
    return ReferenceCard()


def personalize(card: CardShield, server_key: rsa.RSAPrivateKey, slots=None) -> None:
    card.personalize_development_card(PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()),
                                      slots=RELAXED_PAYMENT_SLOT if slots is None else slots)


@pytest.fixture
def fresh_card(virtual_card, transport, reference) -> CardShield:
    """A wiped, freshly installed card in PERSONALIZATION state (virtual card only)."""
    reference.valid = False
    virtual_card.pristine()
    transport.reconnect("reset")
    card = CardShield(transport)
    card.select()
    return card


@pytest.fixture
def card(request, transport, reference, server_key, real_reader) -> CardShield:
    """The reference card, selected, PIN not verified."""
    shield = CardShield(transport)
    if not reference.valid:
        if real_reader is None:
            request.getfixturevalue("virtual_card").pristine()
            transport.reconnect("reset")
        personalize(shield, server_key)
        shield.verify_pin(PIN)
        reference.public_keys = {slot: shield.generate_key(slot) for slot in (1, 2)}
        reference.valid = True
        transport.reconnect("reset")
    shield.select()
    return shield


@pytest.fixture
def verified(card) -> CardShield:
    card.verify_pin(PIN)
    return card



@pytest.fixture
def short_apdus(reader_name, card) -> CardShield:
    """The reference card through a second connection that never uses extended length
    (long commands go as ISO command chains, long responses through GET RESPONSE)."""
    from cardshield.card.transport import Transport

    connection = Transport(reader_name, extended_length=False)
    connection.connect()
    try:
        shield = CardShield(connection)
        shield.select()
        yield shield
    finally:
        connection.close()
