"""ETSI TS 102 225 secured command packets (SCP80) for an OTA platform.

Byte layout of the command packet as carried in SMS-PP (3GPP TS 31.115 4.2), with
ciphering and a cryptographic checksum (docs/personalization.md, "SCP80 export"):

    CPL(2) CHL(1) SPI(2) KIc(1) KID(1) TAR(3) | CNTR(5) PCNTR(1) CC(8) DATA PADDING
                                               '------ AES-CBC under KIc, IV 0 ------'
    CHL = 0x15 (21: SPI..PCNTR is 13 bytes, plus an 8-byte CC)
    CC  = AES-CMAC(KID, CPL CHL SPI KIc KID TAR CNTR PCNTR DATA PADDING)[0:8]
    PCNTR = number of zero padding bytes making CNTR..PADDING a multiple of 16
    KIc = key version << 4 | 0x2 (AES, CBC);  KID = key version << 4 | 0x2 (AES CMAC)

TS 102 225 5.1.1 (SPI), 5.1.2 (KIc), 5.1.3 (KID), 5.1.4 (counter management).
The layout was cross-checked against the AES-128 vector of the open-source pySim
project (tests/unittests/test_ota.py, "AES128-SJA5-CIPHERED-CC"); see tests/perso.

The card answers with a Proof of Receipt (response packet, TS 102 225 5.2, TS 31.115 4.3),
which `decode_por` checks and opens:

    02 71 00 | RPL(2) RHL(1) TAR(3) | CNTR(5) PCNTR(1) STATUS(1) CC(8) DATA PADDING
      UDH                              '------ AES-CBC under KIc, IV 0 (SPI2 b5) ------'
    CC = AES-CMAC(KID, UDH RPL RHL TAR CNTR PCNTR STATUS DATA PADDING)[0:8]
    DATA (compact format, TS 102 226 5.1.2): number of commands, last status word, its data
"""
from __future__ import annotations

from dataclasses import dataclass

from ..gp.crypto import AES_BLOCK as BLOCK
from ..gp.crypto import aes_cbc, aes_cbc_decrypt, aes_cmac, aes_cmac_verify

ZERO_IV = bytes(BLOCK)  # TS 102 225 5.1.2: initial chaining value all zeros

CC_LEN = 8
CHL = 13 + CC_LEN
ALGO_AES = 0x2  # KIc: AES in CBC mode; KID: AES in CMAC mode (b1-b2 = 10, b3-b4 = 00)

# SPI first octet (TS 102 225 5.1.1): b1-b2 = 10 cryptographic checksum,
# b3 = 1 ciphering, b4-b5 = 10 "process if and only if CNTR is higher than the RE's".
SPI1_CC_CIPHERED_COUNTER_HIGHER = 0x16
# SPI second octet: b1-b2 = 01 PoR required, b3-b4 = 10 PoR with CC, b5 = 1 PoR ciphered,
# b6 = 0 PoR in SMS-DELIVER-REPORT.
SPI2_POR_CC_CIPHERED = 0x19
DEFAULT_SPI = bytes([SPI1_CC_CIPHERED_COUNTER_HIGHER, SPI2_POR_CC_CIPHERED])

# TS 31.115 4.2: Command Packet Identifier as UDH information element 70, length 0.
IEI_CPI = 0x70
IEI_CONCAT = 0x00
SMS_USER_DATA_MAX = 140


def key_identifier(version: int) -> int:
    if not 1 <= version <= 0x0F:
        raise ValueError("SCP80 key version is 4 bits: 1..15")
    return (version << 4) | ALGO_AES


@dataclass(frozen=True)
class CommandPacket:
    spi: bytes
    kic: int
    kid: int
    tar: bytes
    counter: int
    packet: bytes  # CPL .. end (ciphered part included)

    def sms_segments(self, reference: int = 0) -> list[bytes]:
        """TP-User-Data for SMS-PP: UDH 02 70 00 || packet, or concatenated segments.

        Concatenation (3GPP TS 23.040 9.2.3.24.1, IEI 00, 8-bit reference) puts the
        command packet identifier (IEI 70) in the first segment only (TS 31.115 4.1).
        """
        if 3 + len(self.packet) <= SMS_USER_DATA_MAX:
            return [bytes([2, IEI_CPI, 0]) + self.packet]
        first_room = SMS_USER_DATA_MAX - 8
        other_room = SMS_USER_DATA_MAX - 6
        chunks = [self.packet[:first_room]]
        rest = self.packet[first_room:]
        chunks += [rest[i : i + other_room] for i in range(0, len(rest), other_room)]
        if len(chunks) > 255:
            raise ValueError("command packet too long for concatenated SMS")
        out = []
        for seq, chunk in enumerate(chunks, start=1):
            concat = bytes([IEI_CONCAT, 3, reference & 0xFF, len(chunks), seq])
            ies = concat + (bytes([IEI_CPI, 0]) if seq == 1 else b"")
            out.append(bytes([len(ies)]) + ies + chunk)
        return out


def encode_command(
    kic_key: bytes,
    kid_key: bytes,
    kic: int,
    kid: int,
    tar: bytes,
    counter: int,
    data: bytes,
    spi: bytes = DEFAULT_SPI,
) -> CommandPacket:
    """Build one ciphered, checksummed command packet (SPI must request CC + ciphering)."""
    if len(tar) != 3:
        raise ValueError("TAR is 3 bytes")
    if len(spi) != 2 or spi[0] & 0x07 != 0x06:
        raise ValueError("this encoder produces ciphered packets with a CC (SPI b1-b3 = 110)")
    cntr = counter.to_bytes(5, "big")
    pcntr = -(5 + 1 + CC_LEN + len(data)) % BLOCK
    padded = data + bytes(pcntr)
    header = bytes([CHL]) + spi + bytes([kic, kid]) + tar
    cpl = len(header) + 5 + 1 + CC_LEN + len(padded)
    checked = cpl.to_bytes(2, "big") + header + cntr + bytes([pcntr]) + padded
    cc = aes_cmac(kid_key, checked)[:CC_LEN]
    ciphered = aes_cbc(kic_key, cntr + bytes([pcntr]) + cc + padded, ZERO_IV)
    return CommandPacket(spi, kic, kid, tar, counter, cpl.to_bytes(2, "big") + header + ciphered)


@dataclass(frozen=True)
class DecodedCommand:
    spi: bytes
    kic: int
    kid: int
    tar: bytes
    counter: int
    data: bytes


class PacketError(ValueError):
    pass


def decode_command(kic_key: bytes, kid_key: bytes, packet: bytes) -> DecodedCommand:
    """Receiving-entity side: decipher, verify the CC, strip padding (reference model)."""
    if len(packet) < 2 + 1 + 2 + 2 + 3 + BLOCK:
        raise PacketError("command packet too short")
    cpl = int.from_bytes(packet[:2], "big")
    if cpl != len(packet) - 2:
        raise PacketError(f"CPL {cpl} does not match the packet length {len(packet) - 2}")
    chl, spi, kic, kid, tar = packet[2], packet[3:5], packet[5], packet[6], packet[7:10]
    if chl != CHL:
        raise PacketError(f"CHL {chl:#04x}: only 8-byte CC packets are handled")
    ciphered = packet[10:]
    if len(ciphered) % BLOCK:
        raise PacketError("ciphered part is not a multiple of the AES block")
    plain = aes_cbc_decrypt(kic_key, ciphered, ZERO_IV)
    cntr, pcntr, cc, padded = plain[:5], plain[5], plain[6 : 6 + CC_LEN], plain[6 + CC_LEN :]
    if pcntr > len(padded):
        raise PacketError("PCNTR larger than the secured data")
    checked = packet[:10] + cntr + bytes([pcntr]) + padded
    if not aes_cmac_verify(kid_key, checked, cc):
        raise PacketError("cryptographic checksum does not verify")
    data = padded[: len(padded) - pcntr]
    return DecodedCommand(spi, kic, kid, tar, int.from_bytes(cntr, "big"), data)


# TS 102 225 table 5: response status codes of a Proof of Receipt.
POR_STATUS = {
    0x00: "PoR OK",
    0x01: "RC/CC/DS failed",
    0x02: "CNTR low",
    0x03: "CNTR high",
    0x04: "CNTR blocked",
    0x05: "ciphering error",
    0x06: "unidentified security error",
    0x07: "insufficient memory to process incoming message",
    0x08: "more time needed",
    0x09: "TAR unknown",
    0x0A: "insufficient security level",
}
IEI_RPI = 0x71


@dataclass(frozen=True)
class ProofOfReceipt:
    tar: bytes
    counter: int
    status: int
    commands_executed: int | None
    last_sw: int | None
    last_data: bytes

    @property
    def status_text(self) -> str:
        return POR_STATUS.get(self.status, f"status {self.status:02X}")


def decode_por(kic_key: bytes, kid_key: bytes, user_data: bytes) -> ProofOfReceipt:
    """Check and open a ciphered, checksummed PoR received as SMS TP-User-Data."""
    if user_data[:3] != bytes([2, IEI_RPI, 0]):
        raise PacketError("not a response packet: TP-UD must start with UDH 02 71 00")
    udh, packet = user_data[:3], user_data[3:]
    if len(packet) < 6 + BLOCK:
        raise PacketError("response packet too short")
    rpl, rhl, tar = int.from_bytes(packet[:2], "big"), packet[2], packet[3:6]
    if rpl != len(packet) - 2:
        raise PacketError(f"RPL {rpl} does not match the packet length {len(packet) - 2}")
    if rhl != 10 + CC_LEN:
        raise PacketError(f"RHL {rhl:#04x}: only PoRs with an 8-byte CC are handled")
    ciphered = packet[6:]
    if len(ciphered) % BLOCK:
        raise PacketError("ciphered part is not a multiple of the AES block")
    plain = aes_cbc_decrypt(kic_key, ciphered, ZERO_IV)
    cntr, pcntr, status = plain[:5], plain[5], plain[6]
    cc, padded = plain[7 : 7 + CC_LEN], plain[7 + CC_LEN :]
    if pcntr > len(padded):
        raise PacketError("PCNTR larger than the response data")
    if not aes_cmac_verify(kid_key, udh + packet[:6] + cntr + bytes([pcntr, status]) + padded, cc):
        raise PacketError("PoR cryptographic checksum does not verify")
    data = padded[: len(padded) - pcntr]
    if len(data) >= 3:
        commands, sw, rest = data[0], int.from_bytes(data[1:3], "big"), data[3:]
    else:
        commands, sw, rest = None, None, data
    return ProofOfReceipt(tar, int.from_bytes(cntr, "big"), status, commands, sw, rest)
