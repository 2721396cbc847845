"""SCP80 command packets (ETSI TS 102 225 / 3GPP TS 31.115), cross-checked against the
AES-128 vector published in the pySim project (tests/unittests/test_ota.py,
"AES128-SJA5-CIPHERED-CC": KIc 2001..0F, KID 2011..0F, SPI 06 19, TAR B00011)."""
import pytest

from cardshield.perso import keys, scp80
from cardshield.protocol import commands

from . import vectors as v

PYSIM_KIC = bytes.fromhex("200102030405060708090a0b0c0d0e0f")
PYSIM_KID = bytes.fromhex("201102030405060708090a0b0c0d0e0f")
PYSIM_PACKET = "00281506192222b00011e87cceebb2d93083011ce294f93fc4d8de80da1abae8c37ca3e72ec4432e5058"


def test_matches_pysim_published_aes_vector():
    p = scp80.encode_command(PYSIM_KIC, PYSIM_KID, 0x22, 0x22, bytes.fromhex("B00011"), 0,
                             bytes.fromhex("00a40004023f00"), spi=bytes.fromhex("0619"))
    assert p.packet.hex() == PYSIM_PACKET
    # pySim's SMS-DELIVER TPDU for this vector carries user data 02 70 00 || packet
    assert p.sms_segments()[0].hex() == "027000" + PYSIM_PACKET


def test_decodes_pysim_vector():
    d = scp80.decode_command(PYSIM_KIC, PYSIM_KID, bytes.fromhex(PYSIM_PACKET))
    assert (d.spi, d.kic, d.kid, d.tar, d.counter) == (b"\x06\x19", 0x22, 0x22, b"\xb0\x00\x11", 0)
    assert d.data == bytes.fromhex("00a40004023f00")


def test_cardshield_vector_structure():
    ks = keys.diversify(keys.software_master(v.MASTER_KEY), v.KEY_VERSION, v.CARD_ID)
    apdu = commands.personalize_pin("123456").short()
    p = scp80.encode_command(ks.enc, ks.mac, 0x12, 0x12, bytes.fromhex("435301"), 1, apdu)
    raw = p.packet
    assert raw.hex().upper() == v.SCP80_SET_PIN
    assert int.from_bytes(raw[:2], "big") == len(raw) - 2  # CPL
    assert raw[2] == 0x15  # CHL: SPI..PCNTR (13) + CC (8)
    assert raw[3:5] == bytes([0x16, 0x19])  # CC, ciphered, counter must be higher; PoR CC+ciphered
    assert raw[5] == raw[6] == 0x12  # key version 1, AES-CBC / AES-CMAC
    assert raw[7:10] == bytes.fromhex("435301")
    assert (len(raw) - 10) % 16 == 0
    d = scp80.decode_command(ks.enc, ks.mac, raw)
    assert d.counter == 1 and d.data == apdu


def test_any_flipped_byte_fails_the_checksum_or_structure():
    raw = bytes.fromhex(PYSIM_PACKET)
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(scp80.PacketError):
            scp80.decode_command(PYSIM_KIC, PYSIM_KID, bytes(bad))


def test_long_packet_is_split_into_concatenated_sms():
    p = scp80.encode_command(PYSIM_KIC, PYSIM_KID, 0x22, 0x22, b"CS\x01", 7, bytes(280))
    segs = p.sms_segments(reference=0x42)
    assert all(len(s) <= 140 for s in segs) and len(segs) == 3
    assert segs[0][:8] == bytes([7, 0x00, 3, 0x42, 3, 1, 0x70, 0])
    assert segs[1][:6] == bytes([5, 0x00, 3, 0x42, 3, 2])
    assert b"".join(s[1 + s[0]:] for s in segs) == p.packet


def test_key_version_must_fit_four_bits():
    assert scp80.key_identifier(15) == 0xF2
    with pytest.raises(ValueError):
        scp80.key_identifier(16)


# pySim's published AES-128 PoR (same keys, TAR B00011): PoR OK, 1 command, last SW 6132
PYSIM_POR = "027100002412b00011ebc6b497e2cad7aedf36ace0e3a29b38853f0fe9ccde81913be5702b73abce1f"


def test_decodes_pysim_published_proof_of_receipt():
    por = scp80.decode_por(PYSIM_KIC, PYSIM_KID, bytes.fromhex(PYSIM_POR))
    assert (por.tar, por.status, por.status_text) == (b"\xb0\x00\x11", 0, "PoR OK")
    assert (por.commands_executed, por.last_sw, por.last_data) == (1, 0x6132, b"")


def test_tampered_proof_of_receipt_is_refused():
    raw = bytes.fromhex(PYSIM_POR)
    for i in range(3, len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(scp80.PacketError):
            scp80.decode_por(PYSIM_KIC, PYSIM_KID, bytes(bad))
