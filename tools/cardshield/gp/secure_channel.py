"""What SCP02 and SCP03 sessions have in common (GP Card Specification v2.3 §10).

A session wraps short command APDUs (CLA INS P1 P2 [Lc data] [Le]) and unwraps
responses. Security level bits of EXTERNAL AUTHENTICATE P1 (GPCS Table 11-19).
"""
from __future__ import annotations

from dataclasses import dataclass

from cardshield.card.apdu import CommandAPDU

C_MAC = 0x01
C_DECRYPTION = 0x02
R_MAC = 0x10
R_ENCRYPTION = 0x20

CLA_SECURE_MESSAGING = 0x04  # ISO 7816-4 5.4.1: proprietary SM, header authenticated


@dataclass(frozen=True)
class InitUpdateResponse:
    """Fields of the INITIALIZE UPDATE response (GPCS 11.12.3, Amendment D 7.1.1)."""

    key_diversification_data: bytes  # 10 bytes (KDD)
    key_version: int
    scp: int  # 0x02 or 0x03
    i_param: int | None  # SCP03 carries it here; SCP02 gets it from card data
    sequence_counter: bytes  # SCP02: 2 bytes; SCP03: 3 bytes or b""
    card_challenge: bytes
    card_cryptogram: bytes

    @classmethod
    def parse(cls, data: bytes) -> "InitUpdateResponse":
        if len(data) < 13:
            raise ValueError(f"INITIALIZE UPDATE response too short ({len(data)} bytes)")
        kdd, kvn, scp = data[:10], data[10], data[11]
        if scp == 0x02:
            if len(data) != 28:
                raise ValueError(f"SCP02 INITIALIZE UPDATE response must be 28 bytes, got {len(data)}")
            return cls(kdd, kvn, scp, None, data[12:14], data[14:20], data[20:28])
        if scp == 0x03:
            # Amendment D 7.1.1: S8 mode 29 bytes, S16 mode (i b1 set) 45; +3 with the sequence
            # counter of a pseudo-random challenge
            i = data[12]
            n = 16 if i & 0x01 else 8
            expected = 13 + 2 * n
            if len(data) not in (expected, expected + 3):
                mode = "S16" if n == 16 else "S8"
                raise ValueError(f"SCP03 {mode} INITIALIZE UPDATE response must be {expected} or {expected + 3}"
                                 f" bytes, got {len(data)}")
            return cls(kdd, kvn, scp, i, data[13 + 2 * n:], data[13:13 + n], data[13 + n:13 + 2 * n])
        raise ValueError(f"card offers secure channel protocol {scp:02X}; only SCP02 and SCP03 are supported")


def build_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes, ne: int | None) -> bytes:
    """One short APDU (ISO 7816-3 12.1; encoder: cardshield.card.apdu): secure messaging
    works on short commands. ne=None: no Le; 256: Le 00."""
    return CommandAPDU(cla, ins, p1, p2, data, ne, extended=False).encode()


def split_apdu(apdu: bytes) -> tuple[int, int, int, int, bytes, int | None]:
    """Inverse of build_apdu for short APDUs: (cla, ins, p1, p2, data, ne)."""
    command = CommandAPDU.decode(apdu)
    if command.is_extended:
        raise ValueError("secure messaging here wraps short APDUs only; got an extended one")
    return command.cla, command.ins, command.p1, command.p2, command.data, command.ne


class SecureChannel:
    """Interface of an authenticated session; concrete classes in scp02.py / scp03.py."""

    security_level: int = 0
    mac_length: int = 8  # C-MAC and host cryptogram bytes (16 in SCP03 S16 mode)

    def host_cryptogram(self) -> bytes:
        raise NotImplementedError

    def card_cryptogram_matches(self, cryptogram: bytes) -> bool:
        raise NotImplementedError

    def wrap(self, cla: int, ins: int, p1: int, p2: int, data: bytes, ne: int | None) -> bytes:
        raise NotImplementedError

    def unwrap(self, data: bytes, sw: int) -> bytes:
        return data

    def key_component(self, key: bytes) -> bytes:
        """One key of PUT KEY's data in this protocol's format (type, encrypted value, KCV)."""
        raise NotImplementedError

    def external_authenticate(self, security_level: int) -> bytes:
        """The EXTERNAL AUTHENTICATE APDU (GPCS 11.8 / Amendment D 7.2).

        It is always C-MACed and never encrypted; the requested level applies
        to the commands that follow it.
        """
        if not security_level & C_MAC:
            raise ValueError("security level must include C-MAC")
        if security_level & ~(C_MAC | C_DECRYPTION | R_MAC | R_ENCRYPTION):
            raise ValueError(f"unknown security level bits {security_level:02X}")
        self.security_level = C_MAC
        apdu = self.wrap(0x80, 0x82, security_level, 0x00, self.host_cryptogram(), None)
        self.security_level = security_level
        return apdu
