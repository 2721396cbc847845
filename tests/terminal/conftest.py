"""Fixtures of the terminal tests: an issued development card on the session's virtual
card (PIN and PUK below, test values only), and a transport that counts what reaches it."""
from __future__ import annotations

import pytest

from cardshield.card.client import CardShield
from cardshield.protocol.constants import Algorithm, SlotPolicy

PIN, PUK = "2468", "13572468"


class CountingTransport:
    """Wraps a Transport: counts and records the commands that reach the card."""

    def __init__(self, transport):
        self.transport = transport
        self.sent = []

    def transmit(self, command):
        self.sent.append(command)
        return self.transport.transmit(command)

    def close(self, disposition="leave"):
        self.transport.close(disposition)


@pytest.fixture(scope="module")
def issued_card(card_stack, reader_name):
    """Wipe the virtual card once per module and personalize it: ISSUED, PIN set."""
    if card_stack is None:
        pytest.skip("the terminal tests personalize a card: virtual card only")
    from cardshield.card.transport import Transport

    card_stack.pristine()
    with Transport(reader_name) as transport:
        transport.reconnect("reset")
        # no server key here: slot 01 configured explicitly (ISSUE's default needs one)
        CardShield(transport).personalize_development_card(
            PIN, PUK, slots={1: (Algorithm.RSA_2048, SlotPolicy(0))})
    return reader_name


@pytest.fixture
def link(issued_card, request):
    from cardshield.card.transport import Transport

    transport = Transport(issued_card, trace=request.config.getoption("--card-trace") or None)
    transport.connect()
    counting = CountingTransport(transport)
    try:
        yield counting
    finally:
        transport.close("reset")
