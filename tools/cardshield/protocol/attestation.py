"""Card attestation (docs/apdu.md, "ATTEST"): the statement a card signs with its
attestation key about one of its slot keys, and the command that asks for it.

The attestation key is generated on the card during secured personalization (PERSONALIZE
P1=05) and certified by the issuer's attestation CA; only ATTEST uses it. The statement is
one BER-TLV, version 1:

    70 L { 80 01 01            format version
           8A n card id        (8-16 bytes, the FCI's tag 8A)
           81 02 applet version (major, minor)
           82 01 slot
           83 01 algorithm     (FCI slot algorithm byte)
           84 01 policy        (slot policy bits)
           85 20 SHA-256 of the slot's public key DO (the 7F49 READ PUBLIC KEY returns)
           86 n  challenge     (16-64 bytes, as received)
           87 04 signature counter }

    response  = statement || 9E L signature
    signature = RSA PKCS#1 v1.5 SHA-256 over "CSATT1" || statement
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import tlv
from .command import Command
from .commands import ALL_EXTENDED, _slot
from .constants import CHALLENGE_MAX, CHALLENGE_MIN, CLA_PROPRIETARY, Ins

ATTEST_INS = Ins.ATTEST
#: domain separation tag: no other card signature starts with these bytes
STATEMENT_PREFIX = b"CSATT1"
STATEMENT_VERSION = 1

TAG_STATEMENT = 0x70
TAG_VERSION, TAG_CARD_ID, TAG_APPLET_VERSION = 0x80, 0x8A, 0x81
TAG_SLOT, TAG_ALGORITHM, TAG_POLICY, TAG_KEY_HASH = 0x82, 0x83, 0x84, 0x85
TAG_CHALLENGE, TAG_COUNTER, TAG_SIGNATURE = 0x86, 0x87, 0x9E
#: the statement's data objects, in the one order the card writes them
_FIELD_ORDER = (TAG_VERSION, TAG_CARD_ID, TAG_APPLET_VERSION, TAG_SLOT, TAG_ALGORITHM,
                TAG_POLICY, TAG_KEY_HASH, TAG_CHALLENGE, TAG_COUNTER)
CARD_ID_MIN, CARD_ID_MAX = 8, 16


def attest_command(slot: int, challenge: bytes) -> Command:
    """ATTEST 80 58 00 0n: the attestation statement about slot n's key, over a fresh
    server challenge (16-64 bytes)."""
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise ValueError(f"challenge must be {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes, got {len(challenge)}")
    return Command(CLA_PROPRIETARY, ATTEST_INS, 0x00, _slot(slot), bytes(challenge), ne=ALL_EXTENDED,
                   name="ATTEST")


def public_key_digest(public_key_do: bytes) -> bytes:
    """SHA-256 of the exact 7F49 data object bytes READ PUBLIC KEY returns (statement tag 85)."""
    return hashlib.sha256(bytes(public_key_do)).digest()


@dataclass(frozen=True)
class AttestationStatement:
    version: int
    card_id: bytes
    applet_version: tuple[int, int]
    slot: int
    algorithm: int
    policy: int
    public_key_sha256: bytes
    challenge: bytes
    counter: int
    #: the whole 70 TLV as received: what the signature covers (after the prefix)
    encoded: bytes

    def signed_data(self) -> bytes:
        return STATEMENT_PREFIX + self.encoded


def encode_statement(*, card_id: bytes, applet_version: tuple[int, int], slot: int, algorithm: int,
                     policy: int, public_key_do: bytes, challenge: bytes, counter: int,
                     version: int = STATEMENT_VERSION) -> bytes:
    """The 70 TLV exactly as the card writes it (for the SoftCard and tests)."""
    if not CARD_ID_MIN <= len(card_id) <= CARD_ID_MAX:
        raise ValueError(f"card id must be {CARD_ID_MIN}..{CARD_ID_MAX} bytes, got {len(card_id)}")
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise ValueError(f"challenge must be {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes, got {len(challenge)}")
    if not 0 <= counter <= 0xFFFFFFFF:
        raise ValueError(f"counter {counter} outside 0..2^32-1")
    body = (
        tlv.encode(TAG_VERSION, bytes([version]))
        + tlv.encode(TAG_CARD_ID, bytes(card_id))
        + tlv.encode(TAG_APPLET_VERSION, bytes(applet_version))
        + tlv.encode(TAG_SLOT, bytes([slot]))
        + tlv.encode(TAG_ALGORITHM, bytes([algorithm]))
        + tlv.encode(TAG_POLICY, bytes([policy]))
        + tlv.encode(TAG_KEY_HASH, public_key_digest(public_key_do))
        + tlv.encode(TAG_CHALLENGE, bytes(challenge))
        + tlv.encode(TAG_COUNTER, counter.to_bytes(4, "big"))
    )
    return tlv.encode(TAG_STATEMENT, body)


def _fixed(value: bytes, sizes: range, tag: int) -> bytes:
    if len(value) not in sizes:
        raise tlv.TLVError(f"attestation statement: data object {tag:02X} has {len(value)} bytes, "
                           f"expected {sizes.start}..{sizes.stop - 1}")
    return value


def parse_attest_response(data: bytes) -> tuple[AttestationStatement, bytes]:
    """ATTEST response data -> (statement, signature). Strict: exactly 70 || 9E, the
    statement's data objects once each in the card's order with their fixed sizes, version 1.
    Raises tlv.TLVError naming what is wrong. The signature is not checked here
    (cardshield.attestation verifies it against the card's attestation certificate)."""
    items = tlv.decode(data)
    if [item.tag for item in items] != [TAG_STATEMENT, TAG_SIGNATURE]:
        raise tlv.TLVError("ATTEST response must be a 70 statement followed by a 9E signature")
    statement, signature = items
    fields = statement.children()
    tags = tuple(item.tag for item in fields)
    if tags != _FIELD_ORDER:
        raise tlv.TLVError("attestation statement data objects must be "
                           f"{' '.join(f'{t:02X}' for t in _FIELD_ORDER)}, got {' '.join(f'{t:02X}' for t in tags)}")
    value = {item.tag: item.value for item in fields}
    version = _fixed(value[TAG_VERSION], range(1, 2), TAG_VERSION)[0]
    if version != STATEMENT_VERSION:
        raise tlv.TLVError(f"attestation statement version {version} is not supported (expected 1)")
    applet_version = _fixed(value[TAG_APPLET_VERSION], range(2, 3), TAG_APPLET_VERSION)
    parsed = AttestationStatement(
        version=version,
        card_id=_fixed(value[TAG_CARD_ID], range(CARD_ID_MIN, CARD_ID_MAX + 1), TAG_CARD_ID),
        applet_version=(applet_version[0], applet_version[1]),
        slot=_fixed(value[TAG_SLOT], range(1, 2), TAG_SLOT)[0],
        algorithm=_fixed(value[TAG_ALGORITHM], range(1, 2), TAG_ALGORITHM)[0],
        policy=_fixed(value[TAG_POLICY], range(1, 2), TAG_POLICY)[0],
        public_key_sha256=_fixed(value[TAG_KEY_HASH], range(32, 33), TAG_KEY_HASH),
        challenge=_fixed(value[TAG_CHALLENGE], range(CHALLENGE_MIN, CHALLENGE_MAX + 1), TAG_CHALLENGE),
        counter=int.from_bytes(_fixed(value[TAG_COUNTER], range(4, 5), TAG_COUNTER), "big"),
        encoded=bytes(data[statement.offset : statement.offset + statement.size]),
    )
    if not signature.value:
        raise tlv.TLVError("ATTEST response: the 9E signature is empty")
    return parsed, signature.value


__all__ = [
    "ATTEST_INS", "AttestationStatement", "STATEMENT_PREFIX", "STATEMENT_VERSION", "attest_command",
    "encode_statement", "parse_attest_response", "public_key_digest",
]
