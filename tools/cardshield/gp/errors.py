"""GlobalPlatform refusals as errors that say what is wrong and what to do."""
from __future__ import annotations

from cardshield.card.apdu import status_word_meaning
from cardshield.card.errors import CardShieldCardError


class GPError(CardShieldCardError):
    """A card management operation failed; the message is meant for the user."""

    def __init__(self, message: str, sw: int | None = None):
        super().__init__(message)
        self.sw = sw


class GPKeyError(GPError):
    """Card keys missing, malformed or not allowed for this card."""


class AuthenticationFailed(GPError):
    """The card refused the keys (INITIALIZE UPDATE 6300 or a wrong card cryptogram)."""

    def __init__(self, message: str, sw: int | None = None, retries_left: int | None = None):
        super().__init__(message, sw)
        self.retries_left = retries_left


class CardLocked(GPError):
    """The security domain refuses all authentication (6983): the card is locked."""


class NotEnoughMemory(GPError):
    pass


class AlreadyInstalled(GPError):
    pass


class LoadFileError(GPError):
    """The CAP / load file is unusable (malformed, wrong Java Card version, dev file on a real card)."""


# What a status word means for card management (GPCS v2.3 11.x "Error conditions"), where
# that says more than its ISO 7816-4 meaning (cardshield.card.apdu)
_GP_MEANINGS = {
    0x6581: "memory failure on the card",
    0x6982: "security status not satisfied (secure channel missing or too weak)",
    0x6A80: "incorrect values in the command data",
    0x6A81: "function not supported (card life cycle or privileges)",
    0x6A82: "application / file not found",
    0x6A84: "not enough memory space on the card",
}


def describe_sw(sw: int) -> str:
    return _GP_MEANINGS.get(sw) or status_word_meaning(sw)


def check_sw(sw: int, operation: str, hints: dict[int, str] | None = None) -> None:
    """Raise a GPError naming the operation, the status word and a way forward."""
    if sw == 0x9000:
        return
    hint = (hints or {}).get(sw)
    message = f"{operation} refused by the card: SW {sw:04X} ({describe_sw(sw)})"
    if hint:
        message += f". {hint.rstrip('.')}."
    if sw == 0x6A84:
        raise NotEnoughMemory(message, sw)
    raise GPError(message, sw)
