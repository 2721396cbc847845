"""A command APDU value and its encodings (ISO/IEC 7816-4 clause 5.1).

One Command is what the application means ("PUT DATA of this certificate"); how it travels
is a separate choice: one short APDU, ISO command chaining (clause 5.1.1.1, CLA bit 0x10)
split into short APDUs, or one extended-length APDU. The applet accepts all three for
every command that carries data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardshield.card.apdu import CLA_CHAINING, EXTENDED_MAX_NE, SHORT_MAX_NE, CommandAPDU
from cardshield.card.apdu import SHORT_MAX_LC as SHORT_MAX_DATA

__all__ = ["Command", "EXTENDED_MAX_NE", "SHORT_MAX_DATA", "SHORT_MAX_NE"]


@dataclass(frozen=True)
class Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    #: expected response length Ne; None: no Le field (no response data expected).
    #: 256 (short) or 65535 (commands.ALL_EXTENDED) mean "as much as available"; a short
    #: form of the command asks for at most 256 and receives the rest through GET RESPONSE.
    ne: int | None = None
    #: a short human name for traces and error messages
    name: str = ""
    #: True when the data is a secret (PIN, PUK): traces must show only the header
    sensitive: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if 0 <= self.cla <= 0xFF and self.cla & CLA_CHAINING:
            raise ValueError("build commands unchained; chained() sets the chaining bit itself")
        self.apdu()  # the ISO 7816-4 encoder validates bytes, lengths and Ne (APDUFormatError)

    def __repr__(self) -> str:
        data = "<secret>" if self.sensitive else self.data.hex().upper()
        return (
            f"Command({self.name or 'apdu'} {self.cla:02X} {self.ins:02X} {self.p1:02X} "
            f"{self.p2:02X} data={data} ne={self.ne})"
        )

    @property
    def header(self) -> bytes:
        return bytes([self.cla, self.ins, self.p1, self.p2])

    def apdu(self, extended: bool | None = None) -> CommandAPDU:
        """The ISO 7816-4 encoder's view of this command (cardshield.card.apdu)."""
        return CommandAPDU(self.cla, self.ins, self.p1, self.p2, self.data, self.ne,
                           extended=extended, sensitive=self.sensitive)

    def short(self) -> bytes:
        """One short APDU (Ne at most 256, the rest through GET RESPONSE); raises if the
        data needs chaining or extended length."""
        if len(self.data) > SHORT_MAX_DATA:
            raise ValueError(
                f"{self.name}: {len(self.data)} data bytes do not fit a short APDU; "
                "use chained() or extended()"
            )
        return self.apdu().with_short_le().encode()

    def extended(self) -> bytes:
        """One extended-length APDU (ISO/IEC 7816-4 clause 5.1: Lc 00 xx xx, Le xx xx)."""
        return self.apdu(extended=True).encode()

    def chained(self, chunk: int = SHORT_MAX_DATA) -> list[bytes]:
        """Short APDUs carrying the data in ISO command chaining; all but the last have
        CLA bit 0x10 and no Le. A command whose data fits one APDU is sent unchained."""
        return [piece.encode() for piece in self.apdu().with_short_le().chain(chunk)]
