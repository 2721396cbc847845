"""ATTEST (80 58 00 slot): the card's attestation statement (docs/apdu.md, ATTEST).

    statement = 70 { 80 version, 8A card id, 81 applet version, 82 slot, 83 algorithm,
                     84 policy, 85 SHA-256(public key DO), 86 challenge, 87 counter }
    response  = statement || 9E signature,  signature = RSA PKCS#1 v1.5 SHA-256 over
                "CSATT1" || statement, made by the card's attestation key.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import tlv
from .command import Command
from .constants import CHALLENGE_MAX, CHALLENGE_MIN, CLA_PROPRIETARY, Slot

ATTEST_INS = 0x58
STATEMENT_PREFIX = b"CSATT1"
STATEMENT_VERSION = 1
TAG_STATEMENT, TAG_SIGNATURE = 0x70, 0x9E
TAG_VERSION, TAG_CARD_ID, TAG_APPLET_VERSION = 0x80, 0x8A, 0x81
TAG_SLOT, TAG_ALGORITHM, TAG_POLICY, TAG_KEY_HASH = 0x82, 0x83, 0x84, 0x85
TAG_CHALLENGE, TAG_COUNTER = 0x86, 0x87
CARD_ID_MIN, CARD_ID_MAX = 8, 16


def attest_command(slot: int, challenge: bytes) -> Command:
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise ValueError(f"challenge must be {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes")
    return Command(CLA_PROPRIETARY, ATTEST_INS, 0x00, int(Slot(slot)), bytes(challenge), ne=65535,
                   name="ATTEST")


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
    encoded: bytes  # the whole 70 TLV as received

    def signed_data(self) -> bytes:
        return STATEMENT_PREFIX + self.encoded


def public_key_digest(public_key_do: bytes) -> bytes:
    """SHA-256 of the exact 7F49 bytes READ PUBLIC KEY returns."""
    return hashlib.sha256(bytes(public_key_do)).digest()


def encode_statement(*, card_id: bytes, applet_version: tuple[int, int], slot: int, algorithm: int,
                     policy: int, public_key_sha256: bytes, challenge: bytes, counter: int,
                     version: int = STATEMENT_VERSION) -> bytes:
    body = b"".join([
        tlv.encode(TAG_VERSION, bytes([version])),
        tlv.encode(TAG_CARD_ID, card_id),
        tlv.encode(TAG_APPLET_VERSION, bytes(applet_version)),
        tlv.encode(TAG_SLOT, bytes([slot])),
        tlv.encode(TAG_ALGORITHM, bytes([algorithm])),
        tlv.encode(TAG_POLICY, bytes([policy])),
        tlv.encode(TAG_KEY_HASH, public_key_sha256),
        tlv.encode(TAG_CHALLENGE, challenge),
        tlv.encode(TAG_COUNTER, counter.to_bytes(4, "big")),
    ])
    return tlv.encode(TAG_STATEMENT, body)


def _fixed(items: list[tlv.TLV], tag: int, length: int) -> bytes:
    value = tlv.require(items, tag, "attestation statement")
    if len(value) != length:
        raise tlv.TLVError(f"attestation statement: {tag:02X} has {len(value)} bytes, expected {length}")
    return value


def parse_attest_response(data: bytes) -> tuple[AttestationStatement, bytes]:
    """(statement, signature) from ATTEST's response data; TLVError if malformed."""
    items = tlv.decode(data)
    if len(items) != 2 or items[0].tag != TAG_STATEMENT or items[1].tag != TAG_SIGNATURE:
        raise tlv.TLVError("ATTEST response must be 70 statement followed by 9E signature")
    inner = items[0].children()
    version = _fixed(inner, TAG_VERSION, 1)[0]
    if version != STATEMENT_VERSION:
        raise tlv.TLVError(f"attestation statement version {version} is not supported")
    card_id = tlv.require(inner, TAG_CARD_ID, "attestation statement")
    if not CARD_ID_MIN <= len(card_id) <= CARD_ID_MAX:
        raise tlv.TLVError(f"attestation statement: card id of {len(card_id)} bytes")
    challenge = tlv.require(inner, TAG_CHALLENGE, "attestation statement")
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise tlv.TLVError(f"attestation statement: challenge of {len(challenge)} bytes")
    major, minor = _fixed(inner, TAG_APPLET_VERSION, 2)
    statement = AttestationStatement(
        version=version, card_id=card_id, applet_version=(major, minor),
        slot=_fixed(inner, TAG_SLOT, 1)[0], algorithm=_fixed(inner, TAG_ALGORITHM, 1)[0],
        policy=_fixed(inner, TAG_POLICY, 1)[0], public_key_sha256=_fixed(inner, TAG_KEY_HASH, 32),
        challenge=challenge, counter=int.from_bytes(_fixed(inner, TAG_COUNTER, 4), "big"),
        encoded=data[: items[0].size])
    return statement, items[1].value
