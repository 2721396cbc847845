"""What both tearing suites share: an issued card to tear, and the short APDUs a command
becomes (short APDUs give the most boundaries between APDUs and the most tear points)."""

from __future__ import annotations

from collections.abc import Iterator

from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.protocol import encode_rsa_public_key
from cardshield.protocol.constants import Algorithm, SlotPolicy


def issued_card(stack, server_key, pin: str, puk: str) -> Iterator[CardShield]:
    """A wiped card of `stack`, personalized as a development card and issued, with keys in
    slots 1 and 2, over a short-APDU transport; closed when the generator ends."""
    transport = Transport(stack.info.reader, extended_length=False)
    transport.connect()
    stack.pristine()
    transport.reconnect("reset")
    card = CardShield(transport)
    # slot 01 relaxed explicitly: payments without the bank's 8E (ISSUE alone would require it)
    card.personalize_development_card(pin, puk, server_key_7f49=encode_rsa_public_key(server_key.public_key()),
                                      slots={1: (Algorithm.RSA_2048, SlotPolicy(0))})
    for slot in (1, 2):
        card.verify_pin(pin)
        card.generate_key(slot)
    yield card
    transport.close()


def short_apdus(command: CommandAPDU) -> list[CommandAPDU]:
    """The short APDUs one command becomes: its chain pieces, Ne (at most 256) on the last."""
    return command.with_short_le().chain()
