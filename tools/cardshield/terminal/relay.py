"""The relay: send the server's APDU batch to the card and return the card's answers.

A batch (cardshield.server.batches) is a list of APDUs composed by the server. The relay
passes them through unchanged (patent steps 503, 508, 602, 606) with four exceptions
that belong to the terminal, not the server:
  * every APDU must pass the allow-list (allowlist.py) before anything is sent;
  * the PIN is asked here, from the card holder, and presented to the card here with
    VERIFY (ISO 7816-4 11.5.6); the server never sees it;
  * SIGN TRANSACTION is decoded and shown (amount, currency, payee) and sent only after
    the card holder approves it; a bare-hash signature is flagged as weaker;
  * 61xx is resolved with GET RESPONSE by the transport (ISO 7816-4 5.3.4): the server
    gets each command's complete data followed by the final SW1 SW2.
It stops at the first status word other than 9000 and returns what it has.

Within one flow (one Relay), a PIN the card accepted is kept in memory to present it
again after the server's next SELECT clears the card's PIN state (enrollment needs the
PIN for GENERATE, PROVE POSSESSION and PUT DATA, three batches). Signing never reuses
it silently: a payment is always approved by the card holder. forget() wipes it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from cardshield.card.apdu import CommandAPDU, ResponseAPDU
from cardshield.protocol import commands
from cardshield.protocol.constants import CLA_CHAINING, Ins

from . import allowlist
from .display import decode_sign_transaction
from .ui import AuthorizationRequest, UserInterface

SW_OK = 0x9000


class RelayError(Exception):
    """The relay stopped; the message is meant for the card holder."""


class Declined(RelayError):
    pass


class PinBlocked(RelayError):
    pass


@dataclass
class RelayResult:
    responses: list[str]  # hex, data || SW1 SW2, one per relayed APDU
    relayed: int = 0  # APDUs from the server sent to the card
    local: int = 0  # APDUs of the terminal itself (VERIFY)
    card_seconds: float = 0.0
    user_seconds: float = 0.0
    commands: list[tuple[str, int, float]] = field(default_factory=list)  # name, SW, seconds

    @property
    def last_sw(self) -> int | None:
        return int(self.responses[-1][-4:], 16) if self.responses else None


def _chains(checked: list[tuple[CommandAPDU, allowlist.Rule]]) -> list[list[int]]:
    """Group the batch into logical commands: a command chain (CLA bit 10, ISO 7816-4
    5.1.1.1) with its closing command is one group; everything else stands alone."""
    groups: list[list[int]] = []
    open_chain: tuple[int, int, int] | None = None
    for index, (command, _rule) in enumerate(checked):
        key = (command.ins, command.p1, command.p2)
        if open_chain == key:
            groups[-1].append(index)
        else:
            groups.append([index])
        open_chain = key if command.cla & CLA_CHAINING else None
    return groups


class Relay:
    def __init__(self, transport, ui: UserInterface, *, server: str = "",
                 on_command: Callable[[str, int, float], None] = lambda name, sw, seconds: None):
        self.transport, self.ui, self.server = transport, ui, server
        self.on_command = on_command
        self._pin: str | None = None

    def forget(self) -> None:
        self._pin = None

    # -- one batch ------------------------------------------------------------------------
    def run(self, batch: dict) -> RelayResult:
        raw = [bytes.fromhex(item["apdu"]) for item in batch["apdus"]]
        # Check the whole batch first: a refused command means nothing of it reaches the card.
        checked = [allowlist.check(apdu) for apdu in raw]
        result = RelayResult([])
        for group in _chains(checked):
            command, rule = checked[group[0]]
            pin_flag = any(batch["apdus"][i].get("pin_required") for i in group)
            if rule.needs_pin or pin_flag:
                data = b"".join(checked[i][0].data for i in group)
                self._authorize(rule, data, result)
            for index in group:
                command, rule = checked[index]
                response, seconds = self._transmit(command, result)
                result.relayed += 1
                result.responses.append((response.data + response.sw.to_bytes(2, "big")).hex().upper())
                name = batch["apdus"][index].get("name") or rule.name
                result.commands.append((name, response.sw, seconds))
                self.on_command(name, response.sw, seconds)
                if response.sw != SW_OK:
                    return result
        return result

    def _transmit(self, command: CommandAPDU, result: RelayResult) -> tuple[ResponseAPDU, float]:
        started = time.perf_counter()
        response = self.transport.transmit(command)
        elapsed = time.perf_counter() - started
        result.card_seconds += elapsed
        return response, elapsed

    # -- PIN and consent --------------------------------------------------------------------
    def _pin_state(self, result: RelayResult) -> int | None:
        """None if the PIN is verified in this card session, else the tries left."""
        response = self._local(commands.pin_status().apdu(False), result)
        if response.sw == SW_OK:
            return None
        if response.sw & 0xFFF0 == 0x63C0:
            return response.sw & 0x0F
        if response.sw == 0x6983:
            raise PinBlocked("the card's PIN is blocked: unblock it with the PUK (`cardshield card ...` "
                             "at the issuer's desk) before using the card again")
        if response.sw == 0x6984:
            raise RelayError("the card has no PIN yet: it has not been personalized")
        raise RelayError(f"the card answered the PIN status query with {response.sw:04X}")

    def _local(self, command: CommandAPDU, result: RelayResult) -> ResponseAPDU:
        started = time.perf_counter()
        response = self.transport.transmit(command)
        result.card_seconds += time.perf_counter() - started
        result.local += 1
        return response

    def _authorize(self, rule: allowlist.Rule, data: bytes, result: RelayResult) -> None:
        payment = None
        weaker = rule.ins == Ins.PERFORM_SECURITY_OPERATION and rule.name == "PSO COMPUTE DIGITAL SIGNATURE"
        if rule.ins == Ins.SIGN_TRANSACTION:
            try:
                payment = decode_sign_transaction(data)
            except ValueError as error:
                raise allowlist.RefusedCommand(
                    f"the signing command does not decode as a payment ({error}); refusing to sign what "
                    "cannot be shown to you") from None
        must_ask = payment is not None or weaker
        tries = self._pin_state(result)
        if tries is None and not must_ask:
            return
        if tries is not None and self._pin is not None and not must_ask:
            if self._verify(self._pin, result) is None:
                return
            self._pin = None
            tries = self._pin_state(result)
        wrong_before: int | None = None
        problem: str | None = None
        while True:
            request = AuthorizationRequest(rule.consent or rule.name, pin_needed=tries is not None, payment=payment,
                                           weaker_signing=weaker, tries_left=wrong_before, server=self.server,
                                           problem=problem)
            started = time.perf_counter()
            answer = self.ui.authorize(request)
            result.user_seconds += time.perf_counter() - started
            if not answer.approved:
                raise Declined("you declined" + (f" to {rule.consent}" if rule.consent else ""))
            if tries is None:
                return
            if not answer.pin:
                raise Declined("no PIN entered")
            if not (answer.pin.isascii() and answer.pin.isdigit() and 4 <= len(answer.pin) <= 12):
                problem = "The PIN is 4 to 12 digits; nothing was sent to the card."
                continue  # the card is not asked: no try is spent
            problem = None
            left = self._verify(answer.pin, result)
            if left is None:
                self._pin = answer.pin
                return
            if left == 0:
                raise PinBlocked("wrong PIN, and that was the last try: the PIN is now blocked. Unblock it "
                                 "with the PUK before using the card again")
            tries = wrong_before = left

    def _verify(self, pin: str, result: RelayResult) -> int | None:
        """VERIFY the PIN locally: None if accepted, else the tries left."""
        response = self._local(commands.verify_pin(pin).apdu(False), result)
        if response.sw == SW_OK:
            return None
        if response.sw & 0xFFF0 == 0x63C0:
            return response.sw & 0x0F
        if response.sw == 0x6983:
            raise PinBlocked("the card's PIN is blocked: unblock it with the PUK before using the card again")
        if response.sw in (0x6700, 0x6A80):
            return self._pin_state(result)
        raise RelayError(f"the card answered VERIFY with {response.sw:04X}")
