"""SCP02 (GP Card Specification v2.3 Appendix E), i=15 and i=55.

Both i values mean: explicit initiation, C-MAC on the modified APDU, ICV zero
for the first MAC then encrypted with single DES before reuse, three keys; i=55
adds a pseudo-random card challenge, which changes nothing on the host side.
"""
from __future__ import annotations

import hmac

from . import crypto
from .secure_channel import (C_DECRYPTION, C_MAC, CLA_SECURE_MESSAGING, SecureChannel,
                             build_apdu)

# Derivation constants (GPCS E.4.1)
CONST_C_MAC = b"\x01\x01"
CONST_R_MAC = b"\x01\x02"
CONST_DEK = b"\x01\x81"
CONST_ENC = b"\x01\x82"

I_ICV_ENCRYPTION = 0x10
I_MAC_ON_UNMODIFIED = 0x02
DEFAULT_I = 0x55


def session_key(static_key: bytes, constant: bytes, sequence_counter: bytes) -> bytes:
    """3DES-CBC (ICV zero) of constant || sequence counter || 00*12 (GPCS E.4.1)."""
    return crypto.des3_cbc(static_key, constant + sequence_counter + bytes(12))


class SCP02Session(SecureChannel):
    def __init__(self, enc: bytes, mac: bytes, dek: bytes, host_challenge: bytes,
                 sequence_counter: bytes, card_challenge: bytes, i_param: int = DEFAULT_I):
        self.s_enc = session_key(enc, CONST_ENC, sequence_counter)
        self.s_mac = session_key(mac, CONST_C_MAC, sequence_counter)
        self.s_rmac = session_key(mac, CONST_R_MAC, sequence_counter)
        self.s_dek = session_key(dek, CONST_DEK, sequence_counter)
        self.host_challenge = host_challenge
        self.sequence_counter = sequence_counter
        self.card_challenge = card_challenge
        self.i_param = i_param
        self.icv = bytes(8)
        self.security_level = 0

    def card_cryptogram(self) -> bytes:
        # GPCS E.4.2.1: host challenge || sequence counter || card challenge
        return crypto.des3_full_mac(self.s_enc,
                                    self.host_challenge + self.sequence_counter + self.card_challenge)

    def host_cryptogram(self) -> bytes:
        # GPCS E.4.2.2: sequence counter || card challenge || host challenge
        return crypto.des3_full_mac(self.s_enc,
                                    self.sequence_counter + self.card_challenge + self.host_challenge)

    def card_cryptogram_matches(self, cryptogram: bytes) -> bool:
        return hmac.compare_digest(self.card_cryptogram(), cryptogram)

    def command_mac(self, mac_input: bytes) -> bytes:
        """C-MAC (GPCS E.4.4): retail MAC with S-MAC, chained through the ICV."""
        mac = crypto.retail_mac(self.s_mac, mac_input, self.icv)
        self.icv = (crypto.des_ecb(self.s_mac[:8], mac) if self.i_param & I_ICV_ENCRYPTION else mac)
        return mac

    def wrap(self, cla: int, ins: int, p1: int, p2: int, data: bytes, ne: int | None) -> bytes:
        if not self.security_level & C_MAC:
            return build_apdu(cla, ins, p1, p2, data, ne)
        sm_cla = cla | CLA_SECURE_MESSAGING
        if self.i_param & I_MAC_ON_UNMODIFIED:
            header = bytes([cla, ins, p1, p2, len(data)])
        else:
            header = bytes([sm_cla, ins, p1, p2, len(data) + 8])
        mac = self.command_mac(header + data)
        if self.security_level & C_DECRYPTION and data:
            # GPCS E.4.6: encrypt after MACing the plaintext, padding always added
            data = crypto.des3_cbc(self.s_enc, crypto.pad80(data, 8))
        return build_apdu(sm_cla, ins, p1, p2, data + mac, ne)

    def encrypt_sensitive(self, data: bytes) -> bytes:
        """Key data encryption with the session DEK (GPCS E.4.7), 3DES-ECB."""
        return crypto.des3_ecb(self.s_dek, data)

    def key_component(self, key: bytes) -> bytes:
        """PUT KEY key data for a double-length DES key (GPCS 11.8.2.3): type 80, length 10,
        the key encrypted with the session DEK, 03 and its KCV."""
        if len(key) != 16:
            raise ValueError("SCP02 key sets are double-length 3DES keys (16 bytes)")
        return b"\x80\x10" + self.encrypt_sensitive(key) + b"\x03" + crypto.kcv_des3(key)
