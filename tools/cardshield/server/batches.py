"""APDU batches the server sends to the terminal, and the card responses it gets back.

A batch is a numbered list of APDUs (hex) that the terminal relays in order without
interpreting them. It stops at the first status word other than 9000 and posts what it
has. It resolves 61xx with GET RESPONSE itself (ISO 7816-4 5.3.4) and posts each
command's complete response data followed by the final SW1 SW2. `pin_required` marks
an APDU before which the terminal must have the user's PIN verified (VERIFY 00 20 00 81)
on the card: the PIN is entered at the terminal and never reaches the server.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from cardshield.card.apdu import status_word_meaning

from .errors import ApiError

SW_OK = 0x9000


@dataclass(frozen=True)
class CardStep:
    name: str
    apdu: bytes
    pin_required: bool = False


@dataclass
class Batch:
    seq: int
    step: str
    apdus: list[CardStep]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "seq": self.seq,
            "step": self.step,
            "apdus": [{"name": a.name, "apdu": a.apdu.hex().upper(),
                       "pin_required": a.pin_required} for a in self.apdus],
            "notes": list(self.notes),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> "Batch":
        raw = json.loads(text)
        return cls(raw["seq"], raw["step"],
                   [CardStep(a["name"], bytes.fromhex(a["apdu"]), a["pin_required"])
                    for a in raw["apdus"]], raw.get("notes", []))


def stored_json(text: str | None) -> dict | None:
    """A pending batch as the API returns it: the JSON Batch.dumps stored, as is."""
    return json.loads(text) if text else None


def card_data(batch: Batch, responses: list[bytes]) -> list[bytes]:
    """Check the responses line up with the batch and all ended in 9000; return the data
    part of each. A non-9000 status becomes a card_error naming the command and SW."""
    if len(responses) > len(batch.apdus):
        raise ApiError("card_response_malformed",
                       f"{len(responses)} responses posted for a batch of {len(batch.apdus)} APDUs")
    data = []
    for step, response in zip(batch.apdus, responses):
        if len(response) < 2:
            raise ApiError("card_response_malformed",
                           f"the response to {step.name} lacks the status word")
        sw = int.from_bytes(response[-2:], "big")
        if sw != SW_OK:
            raise ApiError("card_error", f"the card answered {step.name} with {sw:04X}: "
                                         f"{status_word_meaning(sw)}")
        data.append(response[:-2])
    if len(data) < len(batch.apdus):
        raise ApiError("card_response_malformed",
                       f"only {len(data)} of {len(batch.apdus)} responses were posted and all "
                       "succeeded; post one response per APDU")
    return data
