"""BER-TLV encoding and decoding (ISO/IEC 7816-4 clause 5.2, X.690 length rules).

Only what the CardShield applet speaks: tags of one or two bytes, definite lengths of at
most three bytes (up to 65535). Encoding always uses the shortest length form, which is
also what the card requires for the transaction fields it signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


class TLVError(ValueError):
    """Raised for malformed BER-TLV input; the message says what is wrong and where."""


def encode_length(length: int) -> bytes:
    if length < 0:
        raise TLVError(f"negative TLV length {length}")
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return bytes([0x82, length >> 8, length & 0xFF])
    raise TLVError(f"TLV length {length} exceeds 65535, which the card cannot handle")


def encode_tag(tag: int) -> bytes:
    if 0 < tag <= 0xFF:
        if tag & 0x1F == 0x1F:
            raise TLVError(f"tag {tag:02X} announces a second byte; pass the two-byte tag")
        return bytes([tag])
    if 0xFF < tag <= 0xFFFF:
        if (tag >> 8) & 0x1F != 0x1F:
            raise TLVError(f"tag {tag:04X}: first byte does not announce a two-byte tag")
        return tag.to_bytes(2, "big")
    raise TLVError(f"tag {tag:#x} is not a one- or two-byte BER tag")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV: tag || shortest BER length || value."""
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


@dataclass(frozen=True)
class TLV:
    tag: int
    value: bytes
    #: offset of the tag byte in the decoded buffer, and the whole encoding's length
    offset: int
    size: int

    @property
    def constructed(self) -> bool:
        first = self.tag >> 8 if self.tag > 0xFF else self.tag
        return bool(first & 0x20)

    def children(self) -> list["TLV"]:
        return decode(self.value)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TLVError(f"TLV truncated: tag expected at offset {pos}")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        if pos >= len(data):
            raise TLVError(f"TLV truncated: second tag byte expected at offset {pos}")
        if data[pos] & 0x80:
            raise TLVError(f"tags longer than two bytes are not used (offset {pos - 1})")
        tag = (tag << 8) | data[pos]
        pos += 1
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TLVError(f"TLV truncated: length expected at offset {pos}")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 2:
        raise TLVError(f"unsupported BER length form {first:02X} at offset {pos - 1}")
    if pos + count > len(data):
        raise TLVError(f"TLV truncated inside the length at offset {pos - 1}")
    return int.from_bytes(data[pos : pos + count], "big"), pos + count


def iter_tlv(data: bytes) -> Iterator[TLV]:
    pos = 0
    data = bytes(data)
    while pos < len(data):
        start = pos
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if pos + length > len(data):
            raise TLVError(
                f"TLV {tag:X} at offset {start} announces {length} bytes, "
                f"only {len(data) - pos} remain"
            )
        yield TLV(tag, data[pos : pos + length], start, pos + length - start)
        pos += length


def decode(data: bytes) -> list[TLV]:
    """Decode a concatenation of TLVs (one level)."""
    return list(iter_tlv(data))


def find(data: bytes | list[TLV], tag: int) -> bytes | None:
    """Value of the first TLV with this tag at this level, or None."""
    items = decode(data) if isinstance(data, (bytes, bytearray)) else data
    for item in items:
        if item.tag == tag:
            return item.value
    return None


def require(data: bytes | list[TLV], tag: int, context: str) -> bytes:
    value = find(data, tag)
    if value is None:
        raise TLVError(f"{context}: data object {tag:X} is missing")
    return value
