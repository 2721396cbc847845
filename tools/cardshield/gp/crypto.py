"""Block-cipher primitives used by the GlobalPlatform secure channels.

GP Card Specification v2.3 Appendix B (DES: B.1, AES: B.2) and Amendment D
(SCP03). Two-key triple DES keys are expanded to 24 bytes (K1 K2 K1) and single
DES is expressed as triple DES with K1 K1 K1, which is what the cards compute.
"""
from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DES_BLOCK = 8
AES_BLOCK = 16


def _des3_key(key: bytes) -> bytes:
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError(f"DES key must be 8, 16 or 24 bytes, not {len(key)}")


def pad80(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2 (GP B.1.3/B.2.3): always adds 80."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block)


def unpad80(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise ValueError("missing 80 padding byte")
    return stripped[:-1]


def des3_ecb(key: bytes, data: bytes) -> bytes:
    enc = Cipher(TripleDES(_des3_key(key)), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def des_ecb(key8: bytes, data: bytes) -> bytes:
    return des3_ecb(key8[:8], data)


def des3_cbc(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    enc = Cipher(TripleDES(_des3_key(key)), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def des3_cbc_decrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    dec = Cipher(TripleDES(_des3_key(key)), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def des3_full_mac(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    """Full triple-DES MAC (GP B.1.2.1): last block of 3DES-CBC over padded data."""
    return des3_cbc(key, pad80(data, DES_BLOCK), iv)[-DES_BLOCK:]


def retail_mac(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (GP B.1.2.2): single DES CBC, final block 3DES."""
    padded = pad80(data, DES_BLOCK)
    chain = iv
    if len(padded) > DES_BLOCK:
        chain = Cipher(TripleDES(_des3_key(key[:8])), modes.CBC(iv)).encryptor().update(
            padded[:-DES_BLOCK])[-DES_BLOCK:]
    last = bytes(a ^ b for a, b in zip(chain, padded[-DES_BLOCK:]))
    return des3_ecb(key, last)


def aes_ecb(key: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc(key: bytes, data: bytes, iv: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, data: bytes, iv: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def aes_cmac_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    """Does `tag` (the full 16 bytes, or its leftmost 4..15 as SP 800-38B 5.2 allows) verify?
    Constant time: CMAC.verify for a full tag, hmac.compare_digest for a truncated one."""
    if not 4 <= len(tag) <= 16:
        return False
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    if len(tag) == 16:
        try:
            mac.verify(tag)
        except InvalidSignature:
            return False
        return True
    return hmac.compare_digest(mac.finalize()[: len(tag)], tag)


def kcv_des3(key: bytes) -> bytes:
    """Key check value of a DES key: 3DES-ECB of eight 00 bytes, first 3 bytes."""
    return des3_ecb(key, bytes(8))[:3]


def kcv_aes(key: bytes) -> bytes:
    """Key check value of an AES key (Amendment D 7.2.2): AES of sixteen 01 bytes."""
    return aes_ecb(key, b"\x01" * 16)[:3]
