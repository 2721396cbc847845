"""The bank's signature 8E on a payment's SIGN TRANSACTION (patent step 605 with the card's
server-signed policy): "CSRQ1" || 81..85 signed with the request key of the type the card
holds (docs/apdu.md, PERSONALIZE P1=04), so that the card itself refuses a request whose
amount or payee the bank did not send.

The card's bank key type is recorded at enrollment from its FCI (tag 85, flags 04 and 40;
`cards.bank_key_algorithm`). The FCI is relayed unauthenticated, and that is enough here:
the type only chooses which of the bank's keys signs, the card verifies with the key it
holds, and a wrong claim makes the card refuse the payment (6A80), nothing more. Cards
enrolled before EC bank keys existed have no recorded type and hold the RSA-2048 key.
"""
from __future__ import annotations

from ..protocol.bank_key import BankKeyType, sign_request
from .ca import CertificateAuthority


def card_bank_key_type(bank_key_algorithm: int | None) -> BankKeyType:
    """The bank key type of a card row (`cards.bank_key_algorithm`, the FCI's algorithm byte)."""
    if bank_key_algorithm is None:
        return BankKeyType.RSA_2048
    return BankKeyType.of_algorithm(bank_key_algorithm)


def sign_for_card(ca: CertificateAuthority, bank_key_algorithm: int | None, transaction_tlvs: bytes) -> bytes:
    """The 8E value for a card whose bank key has `bank_key_algorithm`: RSA-2048 PKCS#1 v1.5
    (256 bytes) or ECDSA P-256 r || s (64 bytes)."""
    key_type = card_bank_key_type(bank_key_algorithm)
    return sign_request(ca.request_keys[key_type], transaction_tlvs)
