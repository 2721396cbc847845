"""Command and response APDUs (ISO/IEC 7816-4 clause 5) and status-word meanings.

Pure data, no I/O: the transport sends what `CommandAPDU.encode()` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

SHORT_MAX_LC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_LC = 65535
EXTENDED_MAX_NE = 65536

CLA_CHAINING = 0x10  # ISO 7816-4 5.4.1: "command chaining", not the last command of a chain
INS_GET_RESPONSE = 0xC0

# INS codes whose data is a secret in every CardShield and ISO context. Defence in depth:
# callers also mark APDUs sensitive explicitly (CommandAPDU.sensitive).
ISO_SECRET_INS = frozenset({0x20, 0x24, 0x2C})  # VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
# Proprietary class (CLA b8 set): PERSONALIZE (E0), GP PUT KEY (D8), GP STORE DATA / ISSUE (E2).
PROPRIETARY_SECRET_INS = frozenset({0xE0, 0xD8, 0xE2})


class APDUFormatError(ValueError):
    """Bytes or fields that do not form a valid APDU."""


@dataclass(frozen=True)
class CommandAPDU:
    """A command APDU. `ne` is the maximum expected response length (Ne), None for no Le
    field. `extended` forces (True) or forbids (False) extended length fields; None picks
    short fields when they suffice. `sensitive` masks the data in traces."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None
    extended: bool | None = None
    sensitive: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise APDUFormatError(f"{name.upper()}={value!r} is not a byte")
        if self.cla == 0xFF:
            raise APDUFormatError("CLA FF is invalid (ISO 7816-4 5.4.1; PC/SC reserves it for the reader)")
        if self.ins & 0xF0 in (0x60, 0x90):
            raise APDUFormatError(f"INS {self.ins:02X} is invalid (6X and 9X are status bytes, ISO 7816-3)")
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) > EXTENDED_MAX_LC:
            raise APDUFormatError(f"{len(self.data)} bytes of data exceed Lc's maximum of {EXTENDED_MAX_LC}")
        if self.ne is not None and not 0 < self.ne <= EXTENDED_MAX_NE:
            raise APDUFormatError(f"Ne={self.ne} outside 1..{EXTENDED_MAX_NE}")
        if self.extended is False and not self.fits_short:
            raise APDUFormatError(
                f"{len(self.data)} data bytes / Ne={self.ne} need extended length; use chaining instead"
            )

    @property
    def fits_short(self) -> bool:
        return len(self.data) <= SHORT_MAX_LC and (self.ne is None or self.ne <= SHORT_MAX_NE)

    @property
    def is_extended(self) -> bool:
        return bool(self.extended) or not self.fits_short

    @property
    def is_secret(self) -> bool:
        """Whether traces must hide the data: marked, or an INS known to carry secrets."""
        if self.sensitive or self.ins in ISO_SECRET_INS:
            return True
        return bool(self.cla & 0x80) and self.ins in PROPRIETARY_SECRET_INS

    @property
    def case(self) -> int:
        """ISO 7816-3 12.1.3 case: 1 no data no Le, 2 Le only, 3 data only, 4 both."""
        return 1 + (self.ne is not None) + 2 * bool(self.data)

    def encode(self) -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        lc, le = len(self.data), self.ne
        if not self.is_extended:
            body = bytes((lc,)) + self.data if lc else b""
            if le is not None:
                body += bytes((le % 256,))  # 256 encodes as 00
            return header + body
        # Extended: one 00 byte, then 2-byte Lc and/or 2-byte Le (7816-4 5.1).
        body = b"\x00"
        if lc:
            body += lc.to_bytes(2, "big") + self.data
        if le is not None:
            body += (le % 65536).to_bytes(2, "big")  # 65536 encodes as 0000
        return header + body

    def with_ne(self, ne: int | None) -> CommandAPDU:
        return replace(self, ne=ne)

    def with_short_le(self) -> CommandAPDU:
        """This command asking for at most 256 bytes, the most a short Le field can
        (7816-4 5.1): sent in short APDUs, a longer answer comes as 61xx and GET RESPONSE
        (5.3.4)."""
        return self.with_ne(min(self.ne, SHORT_MAX_NE) if self.ne else None)

    def chain(self, chunk: int = SHORT_MAX_LC) -> list[CommandAPDU]:
        """Split the data into a command chain (7816-4 5.1.1.1): CLA b5 set on every
        command but the last; Ne only on the last."""
        if not 0 < chunk <= SHORT_MAX_LC:
            raise APDUFormatError(f"chain chunk {chunk} outside 1..{SHORT_MAX_LC}")
        if self.cla & CLA_CHAINING:
            raise APDUFormatError("the command already has the chaining bit set")
        if len(self.data) <= chunk:
            return [replace(self, extended=None if self.fits_short else self.extended)]
        pieces = [self.data[i : i + chunk] for i in range(0, len(self.data), chunk)]
        last = len(pieces) - 1
        return [
            replace(
                self,
                cla=self.cla | (CLA_CHAINING if i < last else 0),
                data=piece,
                ne=self.ne if i == last else None,
                extended=None,  # each piece fits short fields; Ne on the last may need extended
            )
            for i, piece in enumerate(pieces)
        ]

    def trace(self) -> str:
        head = f"{self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}"
        if self.data:
            shown = f"[{len(self.data)} bytes masked]" if self.is_secret else self.data.hex().upper()
            head += f" Lc={len(self.data)} {shown}"
        if self.ne is not None:
            head += f" Le={self.ne}"
        return head + (" (extended)" if self.is_extended else "")

    @classmethod
    def decode(cls, raw: bytes) -> CommandAPDU:
        """Parse an encoded command (all seven cases of 7816-4 5.1)."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise APDUFormatError(f"a command APDU has at least 4 bytes, got {len(raw)}")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, ne=body[0] or 256)
        if body[0] != 0 or n < 3:  # short
            lc = body[0]
            if lc == 0 or n not in (1 + lc, 2 + lc):
                raise APDUFormatError(f"short APDU: Lc={lc} does not match {n - 1} body bytes")
            ne = (body[1 + lc] or 256) if n == 2 + lc else None
            return cls(cla, ins, p1, p2, body[1 : 1 + lc], ne, extended=False)
        if n == 3:
            return cls(cla, ins, p1, p2, ne=int.from_bytes(body[1:3], "big") or 65536, extended=True)
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0 or n not in (3 + lc, 5 + lc):
            raise APDUFormatError(f"extended APDU: Lc={lc} does not match {n - 3} body bytes")
        ne = (int.from_bytes(body[3 + lc : 5 + lc], "big") or 65536) if n == 5 + lc else None
        return cls(cla, ins, p1, p2, body[3 : 3 + lc], ne, extended=True)


@dataclass(frozen=True)
class ResponseAPDU:
    data: bytes
    sw: int

    @classmethod
    def from_bytes(cls, raw: bytes | list[int]) -> ResponseAPDU:
        raw = bytes(raw)
        if len(raw) < 2:
            raise APDUFormatError(f"a response APDU ends with SW1 SW2, got {len(raw)} bytes")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    @property
    def meaning(self) -> str:
        return status_word_meaning(self.sw)

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    def trace(self, secret: bool = False) -> str:
        shown = ""
        if self.data:
            shown = f"[{len(self.data)} bytes masked] " if secret else self.data.hex().upper() + " "
        return f"{shown}{self.sw:04X} ({self.meaning})"


# ISO/IEC 7816-4:2020 5.6, table 6 and following (SW1 SW2 interpretation).
_EXACT: dict[int, str] = {
    0x9000: "success",
    0x6200: "warning: state of non-volatile memory unchanged",
    0x6281: "warning: part of returned data may be corrupted",
    0x6282: "warning: end of file or record reached before reading Ne bytes",
    0x6283: "warning: selected file deactivated",
    0x6284: "warning: file control information not formatted per 7816-4",
    0x6285: "warning: selected file in termination state",
    0x6286: "warning: no input data available from a sensor",
    0x6300: "warning: state of non-volatile memory changed (no information given)",
    0x6381: "warning: file filled up by the last write",
    0x6400: "execution error: state of non-volatile memory unchanged",
    0x6401: "execution error: immediate response required by the card",
    0x6500: "execution error: state of non-volatile memory changed",
    0x6581: "execution error: memory failure",
    0x6700: "wrong length",
    0x6800: "functions in CLA not supported",
    0x6881: "logical channel not supported",
    0x6882: "secure messaging not supported",
    0x6883: "last command of the chain expected",
    0x6884: "command chaining not supported",
    0x6900: "command not allowed",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6984: "reference data not usable",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6987: "expected secure messaging data objects missing",
    0x6988: "incorrect secure messaging data objects",
    0x6999: "applet selection failed",
    0x6A00: "wrong parameters P1-P2",
    0x6A80: "incorrect parameters in the command data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A84: "not enough memory space in the file",
    0x6A85: "Nc inconsistent with TLV structure",
    0x6A86: "incorrect parameters P1-P2",
    0x6A87: "Nc inconsistent with parameters P1-P2",
    0x6A88: "referenced data or reference data not found",
    0x6A89: "file already exists",
    0x6A8A: "DF name already exists",
    0x6B00: "wrong parameters P1-P2 (offset outside the EF)",
    0x6D00: "instruction code not supported or invalid",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}


def status_word_meaning(sw: int) -> str:
    if sw in _EXACT:
        return _EXACT[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more response bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le: exactly {sw2 or 256} bytes available"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed, {sw2 & 0x0F} tries left"
    if sw1 == 0x62 and 0x02 <= sw2 <= 0x80:
        return f"warning: {sw2} bytes of triggering data"
    if sw1 == 0x64 and 0x02 <= sw2 <= 0x80:
        return f"execution error: {sw2} bytes of triggering data"
    if sw1 == 0x9F or sw1 == 0x91:
        return f"success, {sw2} more bytes (proprietary)"
    families = {
        0x62: "warning: non-volatile memory unchanged",
        0x63: "warning: non-volatile memory changed",
        0x64: "execution error: non-volatile memory unchanged",
        0x65: "execution error: non-volatile memory changed",
        0x66: "security-related issue",
        0x68: "function in CLA not supported",
        0x69: "command not allowed",
        0x6A: "wrong parameters",
    }
    if sw1 in families:
        return f"{families[sw1]} (SW2={sw2:02X})"
    return "unknown status word"
