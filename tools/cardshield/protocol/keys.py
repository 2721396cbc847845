"""Public key data objects: 7F49 (ISO/IEC 7816-8 clause 5.1, as in GENERATE ASYMMETRIC
KEY PAIR responses) to and from `cryptography` public keys."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import tlv

TAG_PUBLIC_KEY = 0x7F49
TAG_MODULUS, TAG_EXPONENT, TAG_EC_POINT = 0x81, 0x82, 0x86

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _unsigned(value: bytes) -> int:
    return int.from_bytes(value, "big")


def parse_public_key(data: bytes) -> PublicKey:
    """7F49{81 modulus, 82 exponent} -> RSA key; 7F49{86 uncompressed point} -> P-256 key."""
    outer = tlv.decode(data)
    if len(outer) != 1 or outer[0].tag != TAG_PUBLIC_KEY:
        raise tlv.TLVError("public key must be a single 7F49 data object")
    inner = outer[0].children()
    point = tlv.find(inner, TAG_EC_POINT)
    if point is not None:
        if len(point) != 65 or point[0] != 0x04:
            raise tlv.TLVError("EC point must be 65 bytes, uncompressed (04 || X || Y)")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    modulus = _unsigned(tlv.require(inner, TAG_MODULUS, "RSA public key"))
    exponent = _unsigned(tlv.require(inner, TAG_EXPONENT, "RSA public key"))
    if modulus.bit_length() < 1024:
        raise tlv.TLVError(f"RSA modulus of {modulus.bit_length()} bits is not a card key")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def encode_rsa_public_key(key: rsa.RSAPublicKey) -> bytes:
    """7F49{81 modulus, 82 exponent} with the modulus at full key length (no sign byte)."""
    numbers = key.public_numbers()
    modulus = numbers.n.to_bytes((key.key_size + 7) // 8, "big")
    exponent = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return tlv.encode(TAG_PUBLIC_KEY, tlv.encode(TAG_MODULUS, modulus) + tlv.encode(TAG_EXPONENT, exponent))


def encode_ec_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """7F49{86 04 || X || Y}: a P-256 key as the card's READ PUBLIC KEY writes it."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"only P-256 keys have a card encoding, not {key.curve.name}")
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return tlv.encode(TAG_PUBLIC_KEY, tlv.encode(TAG_EC_POINT, point))


def encode_public_key(key: PublicKey) -> bytes:
    """The 7F49 data object of an RSA or P-256 public key."""
    if isinstance(key, rsa.RSAPublicKey):
        return encode_rsa_public_key(key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return encode_ec_public_key(key)
    raise ValueError(f"{type(key).__name__} is neither an RSA nor an EC public key")
