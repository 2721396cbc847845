"""The bank's request key: the server signature 8E of SIGN TRANSACTION (docs/apdu.md),
over "CSRQ1" || 81..85, that a card whose payment slot requires server-signed requests
checks before it signs.

Two key types, loaded into the card by PERSONALIZE P1=04 and reported by the FCI (tag 85,
flags 04 and 40):

    rsa-2048   RSASSA-PKCS1-v1_5 with SHA-256, 256 bytes (cards without EC, e.g. SIM cards)
    ec-p256    ECDSA P-256 with SHA-256, plain r || s (BSI TR-03111 5.2.1), 64 bytes: 192
               bytes fewer per payment (the card rebuilds the DER form its API verifies)

No I/O; the server (cardshield.server.bank_signature), the personalization compiler, the
SoftCard and the benchmarks share these functions.
"""

from __future__ import annotations

import enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .constants import Algorithm, AlgorithmSupport
from .keys import encode_public_key
from .transaction import request_data

RSA_BITS = 2048
#: an ECDSA P-256 signature as 8E carries it: r || s, 32 bytes each
ECDSA_P256_PLAIN_BYTES = 64
_COORDINATE = ECDSA_P256_PLAIN_BYTES // 2

BankPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
BankPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class BankKeyType(str, enum.Enum):
    """A bank key type by its name in scripts, settings and the command line."""

    RSA_2048 = "rsa-2048"
    EC_P256 = "ec-p256"

    @property
    def label(self) -> str:
        return "RSA-2048" if self is BankKeyType.RSA_2048 else "EC P-256"

    @property
    def algorithm(self) -> Algorithm:
        """The card's algorithm byte (FCI, attestation) for this key type."""
        return Algorithm.RSA_2048 if self is BankKeyType.RSA_2048 else Algorithm.EC_P256

    @classmethod
    def of_algorithm(cls, algorithm: int) -> "BankKeyType":
        """RSA_2048 (01) or EC_P256 (11); ValueError for any other algorithm byte."""
        if algorithm == Algorithm.RSA_2048:
            return cls.RSA_2048
        if algorithm == Algorithm.EC_P256:
            return cls.EC_P256
        raise ValueError(f"algorithm {algorithm:#04x} is no bank key type (01 RSA-2048, 11 EC P-256)")

    @classmethod
    def of_key(cls, key: BankPrivateKey | BankPublicKey) -> "BankKeyType":
        """The type of a key; ValueError naming what is wrong for any other key."""
        if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            if key.key_size != RSA_BITS:
                raise ValueError(f"an RSA bank key must be RSA-{RSA_BITS}, not RSA-{key.key_size}")
            return cls.RSA_2048
        if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"an EC bank key must be on P-256 (secp256r1), not {key.curve.name}")
            return cls.EC_P256
        raise ValueError(f"a bank key is RSA-{RSA_BITS} or EC P-256, not {type(key).__name__}")


def bank_key_type_for(algorithms: AlgorithmSupport) -> BankKeyType:
    """The bank key an issuer gives a card with these algorithms (FCI tag 82): EC P-256
    where the card has ECDSA P-256 (a shorter payment), RSA-2048 on the others."""
    return BankKeyType.EC_P256 if AlgorithmSupport.EC_P256 in algorithms else BankKeyType.RSA_2048


def generate_bank_key(key_type: BankKeyType) -> BankPrivateKey:
    if key_type is BankKeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def encode_bank_public_key(key: BankPublicKey) -> bytes:
    """PERSONALIZE P1=04's data: 7F49{81,82} (RSA-2048) or 7F49{86} (P-256)."""
    BankKeyType.of_key(key)
    return encode_public_key(key)


def sign_request(key: BankPrivateKey, transaction_tlvs: bytes) -> bytes:
    """The 8E value over "CSRQ1" || 81..85 with the bank's key, in the form the card checks."""
    message = request_data(transaction_tlvs)
    if BankKeyType.of_key(key) is BankKeyType.EC_P256:
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_COORDINATE, "big") + s.to_bytes(_COORDINATE, "big")
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def verify_request(key: BankPublicKey, transaction_tlvs: bytes, signature: bytes) -> bool:
    """What the card does with 8E (for software models of the card and tests)."""
    message = request_data(transaction_tlvs)
    try:
        if BankKeyType.of_key(key) is BankKeyType.EC_P256:
            if len(signature) != ECDSA_P256_PLAIN_BYTES:
                return False
            r, s = (int.from_bytes(signature[i:i + _COORDINATE], "big") for i in (0, _COORDINATE))
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(bytes(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


__all__ = ["BankKeyType", "BankPrivateKey", "BankPublicKey", "ECDSA_P256_PLAIN_BYTES", "bank_key_type_for",
           "encode_bank_public_key", "generate_bank_key", "sign_request", "verify_request"]
