"""SCP03 (GP Card Specification v2.3 Amendment D v1.1.1/1.2), S8 and S16 modes.

Session keys and cryptograms come from the NIST SP 800-108 counter-mode KDF
with AES-CMAC as PRF (Amendment D 6.2.1/6.2.2); MACs chain through a 16-byte
chaining value; C-ENC uses an ICV made from the encryption counter (6.2.6).
S16 mode (i parameter b1) doubles challenges, cryptograms and MACs to 16 bytes.
"""
from __future__ import annotations

import hmac

from . import crypto
from .secure_channel import (C_DECRYPTION, C_MAC, CLA_SECURE_MESSAGING, R_ENCRYPTION, R_MAC,
                             SecureChannel, build_apdu)

# Derivation constants (Amendment D Table 6-1)
DERIVE_CARD_CRYPTOGRAM = 0x00
DERIVE_HOST_CRYPTOGRAM = 0x01
DERIVE_CARD_CHALLENGE = 0x02
DERIVE_S_ENC = 0x04
DERIVE_S_MAC = 0x06
DERIVE_S_RMAC = 0x07

I_S16 = 0x01
I_PSEUDO_RANDOM_CHALLENGE = 0x10
I_RMAC = 0x20
I_RENC = 0x40


def kdf(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """Amendment D 6.2.2: label (11 x 00 || constant) || 00 || L || i || context."""
    out = b""
    counter = 1
    while len(out) * 8 < bits:
        block = bytes(11) + bytes([constant, 0]) + bits.to_bytes(2, "big") + bytes([counter]) + context
        out += crypto.aes_cmac(key, block)
        counter += 1
    return out[:bits // 8]


def pseudo_random_card_challenge(enc: bytes, sequence_counter: bytes, sd_aid: bytes, s16: bool = False) -> bytes:
    """Amendment D 6.2.2.1: card challenge from the static ENC key."""
    return kdf(enc, DERIVE_CARD_CHALLENGE, sequence_counter + sd_aid, 128 if s16 else 64)


class SCP03Session(SecureChannel):
    def __init__(self, enc: bytes, mac: bytes, dek: bytes, host_challenge: bytes,
                 card_challenge: bytes, s16: bool = False):
        self.mac_length = 16 if s16 else 8
        if len(host_challenge) != self.mac_length or len(card_challenge) != self.mac_length:
            raise ValueError(f"SCP03 {'S16' if s16 else 'S8'} challenges are {self.mac_length} bytes")
        context = host_challenge + card_challenge
        self.context = context
        bits = len(enc) * 8
        self.s_enc = kdf(enc, DERIVE_S_ENC, context, bits)
        self.s_mac = kdf(mac, DERIVE_S_MAC, context, bits)
        self.s_rmac = kdf(mac, DERIVE_S_RMAC, context, bits)
        self.dek = dek  # SCP03 encrypts key data with the static DEK
        self.chaining = bytes(16)
        self.encryption_counter = 0
        self.security_level = 0

    def card_cryptogram(self) -> bytes:
        return kdf(self.s_mac, DERIVE_CARD_CRYPTOGRAM, self.context, self.mac_length * 8)

    def host_cryptogram(self) -> bytes:
        return kdf(self.s_mac, DERIVE_HOST_CRYPTOGRAM, self.context, self.mac_length * 8)

    def card_cryptogram_matches(self, cryptogram: bytes) -> bool:
        return hmac.compare_digest(self.card_cryptogram(), cryptogram)

    def _command_icv(self) -> bytes:
        return crypto.aes_ecb(self.s_enc, self.encryption_counter.to_bytes(16, "big"))

    def _response_icv(self) -> bytes:
        return crypto.aes_ecb(self.s_enc, b"\x80" + self.encryption_counter.to_bytes(15, "big"))

    def wrap(self, cla: int, ins: int, p1: int, p2: int, data: bytes, ne: int | None) -> bytes:
        if not self.security_level & C_MAC:
            return build_apdu(cla, ins, p1, p2, data, ne)
        sm_cla = cla | CLA_SECURE_MESSAGING
        if self.security_level & C_DECRYPTION:
            # 6.2.6: the counter is incremented for every command, with or without data
            self.encryption_counter += 1
            if data:
                data = crypto.aes_cbc(self.s_enc, crypto.pad80(data, 16), self._command_icv())
        mac_input = self.chaining + bytes([sm_cla, ins, p1, p2, len(data) + self.mac_length]) + data
        self.chaining = crypto.aes_cmac(self.s_mac, mac_input)
        return build_apdu(sm_cla, ins, p1, p2, data + self.chaining[:self.mac_length], ne)

    def unwrap(self, data: bytes, sw: int) -> bytes:
        """Check the R-MAC (6.2.5) and decrypt R-ENC data (6.2.7)."""
        if not self.security_level & R_MAC:
            return data
        n = self.mac_length
        if len(data) < n:
            # 6.2.5: a response carrying an error status has no R-MAC
            if sw == 0x9000:
                raise ValueError("response lacks its R-MAC")
            return data
        body, rmac = data[:-n], data[-n:]
        if not crypto.aes_cmac_verify(self.s_rmac, self.chaining + body + sw.to_bytes(2, "big"), rmac):
            raise ValueError("R-MAC of the card's response does not verify")
        if self.security_level & R_ENCRYPTION and body:
            body = crypto.unpad80(crypto.aes_cbc_decrypt(self.s_enc, body, self._response_icv()))
        return body

    def encrypt_sensitive(self, data: bytes) -> bytes:
        return crypto.aes_cbc(self.dek, data, bytes(16))

    def key_component(self, key: bytes) -> bytes:
        """PUT KEY key data for an AES key (Amendment D 7.2.2): type 88, length, key length
        byte, the key encrypted with the static DEK (AES-CBC, ICV zero), 03 and its KCV."""
        encrypted = bytes([len(key)]) + self.encrypt_sensitive(key)
        return bytes([0x88, len(encrypted)]) + encrypted + b"\x03" + crypto.kcv_aes(key)
