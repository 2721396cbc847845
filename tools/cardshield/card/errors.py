"""Exceptions of the card layer. Each says what went wrong and how to fix it; none ever
carries APDU data (it may hold a PIN)."""

from __future__ import annotations

from cardshield.card.apdu import status_word_meaning
from cardshield.errors import UserError


class CardShieldCardError(UserError):
    """Base of every error raised while talking to a reader or a card."""


class PcscUnavailableError(CardShieldCardError):
    """No PC/SC service: pcscd is not running or PCSCLITE_CSOCK_NAME points nowhere."""


class NoReaderError(CardShieldCardError):
    """The requested reader does not exist (or none was named and the choice is ambiguous)."""

    def __init__(self, message: str, readers: list[str]):
        listing = "\n".join(f"  [{i}] {name}" for i, name in enumerate(readers)) or "  (no readers)"
        super().__init__(f"{message}\nreaders present:\n{listing}")
        self.readers = readers


class NoCardError(CardShieldCardError):
    """The reader exists but holds no (responsive) card."""

    def __init__(self, reader: str, detail: str = "no card in the reader"):
        super().__init__(f"{reader}: {detail}")
        self.reader = reader


class CardRemovedError(CardShieldCardError):
    """The card was removed or powered off; the command may or may not have run."""


class CardResetError(CardShieldCardError):
    """The card was reset (by another application or a tear); session state is lost.
    Reconnect and re-select before continuing."""


class TransportError(CardShieldCardError):
    """Any other PC/SC failure (the card went mute mid-command, protocol error, ...)."""


class CardError(CardShieldCardError):
    """The card answered with a status word other than the one expected."""

    def __init__(self, sw: int, command: str = "", expected: int = 0x9000):
        self.sw = sw
        self.meaning = status_word_meaning(sw)
        self.command = command
        where = f"{command}: " if command else ""
        super().__init__(f"{where}card returned {sw:04X} ({self.meaning}), expected {expected:04X}")

    @property
    def tries_left(self) -> int | None:
        """For 63Cx after VERIFY and friends (ISO 7816-4 11.5.6): x tries remain."""
        if self.sw & 0xFFF0 == 0x63C0:
            return self.sw & 0x0F
        return None
