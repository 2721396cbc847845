"""Per-card personalization key set, diversified from the issuer master key.

NIST SP 800-108r1 key derivation in counter mode with AES-CMAC as the PRF
(one 128-bit output block, so the counter i is always 1):

    K = AES-CMAC(MK, [i]_8 || Label || 0x00 || Context || [L]_16)
    Label   = ASCII "CSPERSO-ENC" or "CSPERSO-MAC"
    Context = key version (1 byte) || card id (the bytes the card reports in its FCI)
    L       = 0x0080 (128 bits)

The master key never has to leave its store: derivation only asks the store for
AES-CMAC(MK, message) (see keystore.py, the HSM hook computes it inside the HSM).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..gp.crypto import aes_cmac
from ..protocol import tlv

TAG_KEY_SET, TAG_CARD_ID = 0xC0, 0xC1  # install parameters (docs/apdu.md)
LABEL_ENC = b"CSPERSO-ENC"
LABEL_MAC = b"CSPERSO-MAC"
OUTPUT_BITS = 128
CARD_ID_MIN, CARD_ID_MAX = 8, 16

MasterCmac = Callable[[bytes], bytes]
"""AES-CMAC under the issuer master key: message -> 16-byte tag."""


@dataclass(frozen=True)
class PersoKeySet:
    """The key set the card receives in install parameter tag C0."""

    version: int
    enc: bytes
    mac: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.version <= 0xFF:
            raise ValueError("key version must be 1..255")
        if len(self.enc) != 16 or len(self.mac) != 16:
            raise ValueError("K-ENC and K-MAC are AES-128 keys (16 bytes)")

    def install_parameter(self) -> bytes:
        """Value of install-parameter tag C0: version || K-ENC || K-MAC."""
        return bytes([self.version]) + self.enc + self.mac

    def __repr__(self) -> str:  # keys never end up in logs or tracebacks
        return f"PersoKeySet(version={self.version}, enc=<hidden>, mac=<hidden>)"


def check_card_id(card_id: bytes) -> bytes:
    if not CARD_ID_MIN <= len(card_id) <= CARD_ID_MAX:
        raise ValueError(
            f"card id must be {CARD_ID_MIN}-{CARD_ID_MAX} bytes, got {len(card_id)}"
        )
    return card_id


def kdf_input(label: bytes, version: int, card_id: bytes) -> bytes:
    """SP 800-108 fixed input data for one 128-bit block (counter i = 1)."""
    context = bytes([version]) + check_card_id(card_id)
    return b"\x01" + label + b"\x00" + context + OUTPUT_BITS.to_bytes(2, "big")


def diversify(master_cmac: MasterCmac, version: int, card_id: bytes) -> PersoKeySet:
    """Derive the card's K-ENC and K-MAC from the master key (held by master_cmac)."""
    return PersoKeySet(
        version=version,
        enc=master_cmac(kdf_input(LABEL_ENC, version, card_id)),
        mac=master_cmac(kdf_input(LABEL_MAC, version, card_id)),
    )


def software_master(master_key: bytes) -> MasterCmac:
    """A MasterCmac over a master key held in this process (env / file key store)."""
    if len(master_key) != 16:
        raise ValueError("the issuer master key is AES-128 (16 bytes)")
    return lambda message: aes_cmac(master_key, message)


def install_parameters(keys: PersoKeySet, card_id: bytes) -> bytes:
    """Applet install data (GlobalPlatform C9 value): C0 key set, C1 card identity.
    Secret: hand it to the installer only inside a C-DECRYPTION secure channel."""
    return tlv.encode(TAG_KEY_SET, keys.install_parameter()) + tlv.encode(TAG_CARD_ID, check_card_id(card_id))
