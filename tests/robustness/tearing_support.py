"""What both tearing suites share: an issued card to tear, and the short APDUs a command
becomes (short APDUs give the most boundaries between APDUs and the most tear points)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from smartcard import scard

from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.card.errors import NoCardError
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


def reinsert_after_tear(stack, transport: Transport, timeout: float = 10.0) -> None:
    """The card lost its power inside a command and left the reader: wait until pcscd has
    seen it leave (it polls the reader), release the dead card handle (pcscd keeps a removed
    card's handle until it is disconnected, at most 200 per reader: helpers that only dropped
    it failed after 200 tears with SCARD_F_INTERNAL_ERROR), INSERT the card and connect again
    on the same context."""
    deadline = time.monotonic() + timeout
    state = scard.SCARD_STATE_UNAWARE
    while not state & scard.SCARD_STATE_EMPTY:
        assert time.monotonic() < deadline, "pcscd never saw the torn card leave"
        hresult, readers = scard.SCardGetStatusChange(transport._context, 100, [(transport.reader, state)])
        if hresult == scard.SCARD_S_SUCCESS:
            state = readers[0][1] & ~scard.SCARD_STATE_CHANGED
    transport.disconnect()
    stack.insert_card()
    deadline = time.monotonic() + timeout
    while True:
        try:
            transport.connect()
            return
        except NoCardError:
            if time.monotonic() > deadline:
                hresult, readers = scard.SCardGetStatusChange(transport._context, 0,
                                                              [(transport.reader, scard.SCARD_STATE_UNAWARE)])
                raise AssertionError(f"the card did not come back within {timeout} s of INSERT (reader state "
                                     f"{readers[0][1] if hresult == 0 else hresult:#x}; the host's log: "
                                     f"{stack.directory / 'virtualcard.log'})") from None
            time.sleep(0.02)
