"""Canonical encodings of what the card signs (docs/apdu.md, "Signed data").

Transaction signing binds amount, currency, payee, order reference and a one-time server
nonce (PSD2 dynamic linking) plus the card's own counter:

    signed  = "CSTX1"  || 81 amount || 82 currency || 83 payee || 84 order ref || 85 nonce
                       || 86 04 counter
    request = "CSRQ1"  || 81 .. 85               (the server's optional request signature, 8E)
    proof   = "CSPOP1" || challenge              (PROVE POSSESSION, enrollment step 507-510)

All lengths in 81..85 are below 128, so each field is tag || one length byte || value; the
card refuses any other encoding, which makes the byte string unique for a transaction.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from . import tlv
from .constants import (
    CHALLENGE_MAX,
    CHALLENGE_MIN,
    POSSESSION_MAGIC,
    REQUEST_MAGIC,
    TRANSACTION_MAGIC,
)

TAG_AMOUNT, TAG_CURRENCY, TAG_PAYEE, TAG_ORDER_REF, TAG_NONCE = 0x81, 0x82, 0x83, 0x84, 0x85
TAG_COUNTER, TAG_SERVER_SIGNATURE, TAG_SIGNATURE = 0x86, 0x8E, 0x9E
MAX_COUNTER = 0xFFFFFFFF


@dataclass(frozen=True)
class Transaction:
    """A payment as the card sees it. amount is in minor units (cents) of currency."""

    amount: int
    currency: str
    payee: str
    order_ref: str
    nonce: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.amount < 1 << 64:
            raise ValueError(f"amount {self.amount} must be 0 .. 2^64-1 minor units")
        if len(self.currency) != 3 or any(c not in string.ascii_uppercase for c in self.currency):
            raise ValueError(f"currency {self.currency!r} must be an ISO 4217 code like 'EUR'")
        for label, text in (("payee", self.payee), ("order_ref", self.order_ref)):
            size = len(text.encode("utf-8"))
            if not 1 <= size <= 64:
                raise ValueError(f"{label} must be 1..64 bytes in UTF-8, got {size}")
        if not 16 <= len(self.nonce) <= 32:
            raise ValueError(f"server nonce must be 16..32 bytes, got {len(self.nonce)}")

    def tlvs(self) -> bytes:
        """The 81..85 data objects exactly as sent to and signed by the card."""
        amount = self.amount.to_bytes(max(1, (self.amount.bit_length() + 7) // 8), "big")
        return (
            tlv.encode(TAG_AMOUNT, amount)
            + tlv.encode(TAG_CURRENCY, self.currency.encode("ascii"))
            + tlv.encode(TAG_PAYEE, self.payee.encode("utf-8"))
            + tlv.encode(TAG_ORDER_REF, self.order_ref.encode("utf-8"))
            + tlv.encode(TAG_NONCE, bytes(self.nonce))
        )

    @classmethod
    def from_tlvs(cls, data: bytes) -> "Transaction":
        """Parse 81..85 as the card does (order and lengths enforced)."""
        items = tlv.decode(data)
        tags = [item.tag for item in items]
        if tags != [TAG_AMOUNT, TAG_CURRENCY, TAG_PAYEE, TAG_ORDER_REF, TAG_NONCE]:
            raise tlv.TLVError(f"transaction must be 81,82,83,84,85 in order, got {tags}")
        tx = cls(
            amount=int.from_bytes(items[0].value, "big"),
            currency=items[1].value.decode("ascii"),
            payee=items[2].value.decode("utf-8"),
            order_ref=items[3].value.decode("utf-8"),
            nonce=items[4].value,
        )
        if not 1 <= len(items[0].value) <= 8:
            raise tlv.TLVError("amount must be 1..8 bytes")
        return tx


def counter_bytes(counter: int) -> bytes:
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError(f"counter {counter} outside 0..2^32-1")
    return counter.to_bytes(4, "big")


def signed_transaction_data(transaction_tlvs: bytes, counter: int) -> bytes:
    """The exact bytes the card signs with SHA256withRSA (or ECDSA) in SIGN TRANSACTION."""
    return TRANSACTION_MAGIC + bytes(transaction_tlvs) + bytes([TAG_COUNTER, 4]) + counter_bytes(counter)


def request_data(transaction_tlvs: bytes) -> bytes:
    """The exact bytes the server signs (PKCS#1 v1.5, SHA-256) to authorise a request (8E)."""
    return REQUEST_MAGIC + bytes(transaction_tlvs)


def possession_data(challenge: bytes) -> bytes:
    """The exact bytes the card signs in PROVE POSSESSION."""
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise ValueError(f"challenge must be {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes, got {len(challenge)}")
    return POSSESSION_MAGIC + bytes(challenge)


@dataclass(frozen=True)
class TransactionSignature:
    counter: int
    signature: bytes


def parse_sign_transaction_response(data: bytes) -> TransactionSignature:
    """SIGN TRANSACTION response: 86 04 counter || 9E L signature."""
    items = tlv.decode(data)
    if [item.tag for item in items] != [TAG_COUNTER, TAG_SIGNATURE]:
        raise tlv.TLVError(f"SIGN TRANSACTION response must be 86 || 9E, got {data[:8].hex()}...")
    if len(items[0].value) != 4:
        raise tlv.TLVError("signature counter must be 4 bytes")
    return TransactionSignature(int.from_bytes(items[0].value, "big"), items[1].value)
