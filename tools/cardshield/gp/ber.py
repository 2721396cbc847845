"""Lenient BER-TLV for what cards answer (ISO/IEC 7816-4 5.2, X.690 8.1).

Card management responses come from many vendors' firmware: tags of up to four bytes
(proprietary ones such as DF7F01 or BF0C), lengths in any definite form up to four
bytes, and padding (00 or FF between or after objects, ISO 7816-4 5.2.1). This parser
accepts all of that and still refuses what cannot be read: a length beyond the data.

The CardShield applet's own protocol keeps the strict parser (cardshield.protocol.tlv),
which accepts only the encodings the applet produces.
"""
from __future__ import annotations

from dataclasses import dataclass

from cardshield.protocol.tlv import TLVError

PADDING = (0x00, 0xFF)
MAX_TAG_BYTES = 4
MAX_LENGTH_BYTES = 4


@dataclass(frozen=True)
class BerObject:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)

    def children(self) -> list["BerObject"]:
        return decode(self.value)

    def find(self, tag: int) -> bytes | None:
        return find(self.children(), tag)


def _tag(data: bytes, pos: int) -> tuple[int, int]:
    start = pos
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # X.690 8.1.2.4: subsequent bytes while b8 is set
        while True:
            if pos >= len(data):
                raise TLVError(f"tag at offset {start} is truncated")
            tag = (tag << 8) | data[pos]
            pos += 1
            if not data[pos - 1] & 0x80:
                break
            if pos - start >= MAX_TAG_BYTES:
                raise TLVError(f"tag at offset {start} is longer than {MAX_TAG_BYTES} bytes")
    return tag, pos


def _length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TLVError(f"length expected at offset {pos}")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > MAX_LENGTH_BYTES:
        raise TLVError(f"length form {first:02X} at offset {pos - 1} (indefinite or too long)")
    if pos + count > len(data):
        raise TLVError(f"length at offset {pos - 1} is truncated")
    return int.from_bytes(data[pos:pos + count], "big"), pos + count


def decode(data: bytes) -> list[BerObject]:
    """The objects at one level, padding bytes skipped."""
    data = bytes(data)
    out: list[BerObject] = []
    pos = 0
    while pos < len(data):
        if data[pos] in PADDING:
            pos += 1
            continue
        start = pos
        tag, pos = _tag(data, pos)
        length, pos = _length(data, pos)
        if pos + length > len(data):
            raise TLVError(f"object {tag:X} at offset {start} announces {length} bytes, {len(data) - pos} remain")
        out.append(BerObject(tag, data[pos:pos + length]))
        pos += length
    return out


def find(data: bytes | list[BerObject], tag: int) -> bytes | None:
    """Value of the first object with this tag at this level, or None."""
    items = decode(data) if isinstance(data, (bytes, bytearray)) else data
    return next((item.value for item in items if item.tag == tag), None)


def unwrap(data: bytes, tag: int) -> bytes:
    """The value of `tag` if data is that one template, else data itself (cards differ on
    whether GET DATA answers include the outer tag)."""
    items = decode(data)
    if len(items) == 1 and items[0].tag == tag:
        return items[0].value
    return data
