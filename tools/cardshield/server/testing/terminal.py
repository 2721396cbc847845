"""The terminal's part of a batch, for tests and benchmarks: relay each APDU, make sure
the PIN was verified locally before a pin_required one, stop at the first error, and post
the responses back. The real relay agent lives in cardshield.terminal."""
from __future__ import annotations

from typing import Callable


def relay_batch(batch: dict, transmit: Callable[[bytes], bytes],
                ensure_pin: Callable[[], None] | None = None) -> list[str]:
    responses = []
    for item in batch["apdus"]:
        if item["pin_required"] and ensure_pin is not None:
            ensure_pin()
        response = transmit(bytes.fromhex(item["apdu"]))
        responses.append(response.hex().upper())
        if response[-2:] != b"\x90\x00":
            break
    return responses
