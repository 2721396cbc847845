"""Every path answers a defined status word: a seeded sweep of malformed commands over all
of the applet's instructions (never 6F00, the card keeps working afterwards)."""

import random

import pytest

from applet_support import PIN, PUK, RELAXED_PAYMENT_SLOT, exchange
from cardshield.card.apdu import CommandAPDU
from cardshield.protocol import APPLET_AID, Lifecycle

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

INSTRUCTIONS = {0x00: [0xA4, 0xB0, 0xDA, 0x20, 0x24, 0x2C, 0x47, 0x22, 0x2A, 0xC0],
                0x80: [0x54, 0x56, 0x58, 0xE0, 0xE2]}
DOCUMENTED = {0x9000, 0x6300, 0x6700, 0x6882, 0x6883, 0x6884, 0x6982, 0x6983, 0x6984, 0x6985, 0x6986,
              0x6988, 0x6A80, 0x6A81, 0x6A82, 0x6A84, 0x6A86, 0x6A88, 0x6B00, 0x6D00, 0x6E00}


def documented(sw: int) -> bool:
    return sw in DOCUMENTED or sw >> 8 == 0x61 or sw & 0xFFF0 == 0x63C0


@pytest.mark.parametrize("state", ["personalization", "issued"])
def test_malformed_commands_get_documented_status_words(fresh_card, transport, state):
    if state == "issued":
        fresh_card.personalize_development_card(PIN, PUK, slots=RELAXED_PAYMENT_SLOT)
    rng = random.Random(20261125)
    for _ in range(300):
        cla = rng.choice([0x00, 0x80])
        ins = rng.choice(INSTRUCTIONS[cla])
        if ins in (0x20, 0x24, 0x2C):
            continue  # keep the PIN and PUK counters out of the sweep
        chained = rng.random() < 0.15
        data = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 3, 8, 33, 255])))
        command = CommandAPDU(cla | (0x10 if chained else 0), ins, rng.randrange(256), rng.randrange(256), data,
                              ne=rng.choice([None, 1, 256]))
        sw = exchange(transport, command.encode()).sw
        assert documented(sw), f"{command.trace()} -> {sw:04X}"
    fci = fresh_card.select()  # the card still works: selection, and in ISSUED the PIN
    assert fci.aid == APPLET_AID
    if state == "issued":
        assert fci.lifecycle is Lifecycle.ISSUED
        fresh_card.verify_pin(PIN)
