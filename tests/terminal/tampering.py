"""Test doubles for what sits between the terminal and the card: malware that rewrites
the amount of a payment on its way to the card, a card pulled out mid-command."""
from __future__ import annotations

from dataclasses import replace

from cardshield.card.transport import Transport

TAMPERED_AMOUNT = b"\x81\x02\x99\x99"  # 393.21 EUR


class Tamper:
    """Rewrites a 2-byte amount (81 02 xx xx) in SIGN TRANSACTION before the card sees it."""

    def __init__(self, transport):
        self.transport = transport

    def transmit(self, command):
        if command.ins == 0x54 and command.data[:2] == b"\x81\x02":
            command = replace(command, data=TAMPERED_AMOUNT + command.data[4:])
        return self.transport.transmit(command)

    def close(self, disposition="leave"):
        self.transport.close(disposition)


def open_with(wrapper=None):
    """An open_transport for run_flow / AgentConfig that wraps the real transport."""
    def opener(reader):
        transport = Transport(reader)
        transport.connect()
        return wrapper(transport) if wrapper else transport
    return opener


def remove_card_before_keygen(card_stack):
    """A wrapper class: the card holder pulls the card out just as GENERATE leaves."""

    class RemoveBeforeKeygen:
        def __init__(self, transport):
            self.transport = transport

        def transmit(self, command):
            if command.ins == 0x47 and command.p1 == 0x80:
                card_stack.remove_card()
            return self.transport.transmit(command)

        def close(self, disposition="leave"):
            self.transport.close(disposition)

    return RemoveBeforeKeygen


def insert_card_and_wait(card_stack, reader, timeout=15.0):
    """Put the card back and wait until PC/SC reports it again."""
    import time

    from cardshield.card.errors import CardShieldCardError

    card_stack.insert_card()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with Transport(reader):
                return
        except CardShieldCardError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
