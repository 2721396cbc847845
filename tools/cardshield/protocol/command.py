"""A command APDU value and its encodings (ISO/IEC 7816-4 clause 5.1).

One Command is what the application means ("PUT DATA of this certificate"); how it travels
is a separate choice: one short APDU, ISO command chaining (clause 5.1.1.1, CLA bit 0x10)
split into short APDUs, or one extended-length APDU. The applet accepts all three for
every command that carries data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .constants import CLA_CHAINING

SHORT_MAX_DATA = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_DATA = 65535
EXTENDED_MAX_NE = 65536


@dataclass(frozen=True)
class Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    #: expected response length Ne; None: no Le field (no response data expected).
    #: 256 (short) or 65536 (extended) mean "as much as available".
    ne: int | None = None
    #: a short human name for traces and error messages
    name: str = ""
    #: True when the data is a secret (PIN, PUK): traces must show only the header
    sensitive: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        for label, value in (("CLA", self.cla), ("INS", self.ins), ("P1", self.p1), ("P2", self.p2)):
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{self.name or 'command'}: {label} {value!r} is not a byte")
        if self.cla & CLA_CHAINING:
            raise ValueError("build commands unchained; chained() sets the chaining bit itself")
        if self.ne is not None and not 1 <= self.ne <= EXTENDED_MAX_NE:
            raise ValueError(f"{self.name or 'command'}: Ne {self.ne} outside 1..65536")

    def __repr__(self) -> str:
        data = "<secret>" if self.sensitive else self.data.hex().upper()
        return (
            f"Command({self.name or 'apdu'} {self.cla:02X} {self.ins:02X} {self.p1:02X} "
            f"{self.p2:02X} data={data} ne={self.ne})"
        )

    @property
    def header(self) -> bytes:
        return bytes([self.cla, self.ins, self.p1, self.p2])

    def fits_short(self) -> bool:
        return len(self.data) <= SHORT_MAX_DATA and (self.ne is None or self.ne <= SHORT_MAX_NE)

    def short(self) -> bytes:
        """One short APDU; raises if the data or Ne need chaining or extended length."""
        if len(self.data) > SHORT_MAX_DATA:
            raise ValueError(
                f"{self.name}: {len(self.data)} data bytes do not fit a short APDU; "
                "use chained() or extended()"
            )
        return _short(self.header, self.data, self.ne)

    def extended(self) -> bytes:
        """One extended-length APDU (ISO/IEC 7816-4 clause 5.1: Lc 00 xx xx, Le xx xx)."""
        if len(self.data) > EXTENDED_MAX_DATA:
            raise ValueError(f"{self.name}: {len(self.data)} bytes exceed an extended APDU")
        out = bytearray(self.header)
        if self.data:
            out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
        if self.ne is not None:
            le = 0 if self.ne == EXTENDED_MAX_NE else self.ne
            out += (b"" if self.data else b"\x00") + le.to_bytes(2, "big")
        elif not self.data:
            # a case-1 command has no length field at all; short and extended coincide
            pass
        return bytes(out)

    def chained(self, chunk: int = SHORT_MAX_DATA) -> list[bytes]:
        """Short APDUs carrying the data in ISO command chaining; all but the last have
        CLA bit 0x10 and no Le. A command whose data fits one APDU is sent unchained."""
        if not 1 <= chunk <= SHORT_MAX_DATA:
            raise ValueError(f"chunk size {chunk} outside 1..255")
        if len(self.data) <= chunk:
            return [self.short()]
        parts = [self.data[i : i + chunk] for i in range(0, len(self.data), chunk)]
        chained_header = bytes([self.cla | CLA_CHAINING, self.ins, self.p1, self.p2])
        apdus = [_short(chained_header, part, None) for part in parts[:-1]]
        apdus.append(_short(self.header, parts[-1], min(self.ne, SHORT_MAX_NE) if self.ne else None))
        return apdus


def _short(header: bytes, data: bytes, ne: int | None) -> bytes:
    out = bytearray(header)
    if data:
        out += bytes([len(data)]) + data
    if ne is not None:
        out.append(0 if ne >= SHORT_MAX_NE else ne)
    return bytes(out)
