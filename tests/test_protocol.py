"""Unit tests of cardshield.protocol: encodings the card and the server must agree on."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cardshield.protocol import (
    APPLET_AID,
    Algorithm,
    Lifecycle,
    Transaction,
    commands,
    encode_rsa_public_key,
    parse_fci,
    parse_public_key,
    parse_sign_transaction_response,
    possession_data,
    request_data,
    signed_transaction_data,
    tlv,
)
from cardshield.protocol.constants import CardFlags, SlotPolicy, Template

REPO = Path(__file__).resolve().parents[1]
TX = Transaction(amount=12345, currency="EUR", payee="Bakery Müller", order_ref="ORD-1", nonce=bytes(range(16)))


def test_ber_lengths_use_the_shortest_form():
    assert tlv.encode_length(0x7F) == b"\x7f"
    assert tlv.encode_length(0x80) == b"\x81\x80"
    assert tlv.encode_length(0x100) == b"\x82\x01\x00"
    with pytest.raises(tlv.TLVError):
        tlv.encode_length(0x10000)


def test_tlv_roundtrip_with_two_byte_tag():
    blob = tlv.encode(0x7F49, tlv.encode(0x81, b"\x01" * 300) + tlv.encode(0x82, b"\x01\x00\x01"))
    (outer,) = tlv.decode(blob)
    assert outer.tag == 0x7F49 and outer.constructed
    assert [c.tag for c in outer.children()] == [0x81, 0x82]
    assert tlv.find(outer.children(), 0x82) == b"\x01\x00\x01"


def test_truncated_tlv_is_refused_with_position():
    with pytest.raises(tlv.TLVError, match="announces 5 bytes"):
        tlv.decode(b"\x81\x05abc")


def test_transaction_tlvs_are_canonical_and_signed_layout_matches_contract():
    tlvs = TX.tlvs()
    assert tlvs.startswith(b"\x81\x02\x30\x39\x82\x03EUR\x83\x0eBakery M\xc3\xbcller\x84\x05ORD-1\x85\x10")
    assert Transaction.from_tlvs(tlvs) == TX
    assert signed_transaction_data(tlvs, 7) == b"CSTX1" + tlvs + b"\x86\x04\x00\x00\x00\x07"
    assert request_data(tlvs) == b"CSRQ1" + tlvs
    assert possession_data(b"\xaa" * 16) == b"CSPOP1" + b"\xaa" * 16


@pytest.mark.parametrize(
    "kwargs",
    [
        {"currency": "eur"},
        {"currency": "EURO"},
        {"payee": ""},
        {"payee": "x" * 65},
        {"nonce": b"\x00" * 15},
        {"amount": -1},
    ],
)
def test_invalid_transactions_are_refused_before_the_card(kwargs):
    fields = dict(amount=1, currency="EUR", payee="p", order_ref="o", nonce=b"\x00" * 16) | kwargs
    with pytest.raises(ValueError):
        Transaction(**fields)


def test_sign_transaction_command_and_response():
    cmd = commands.sign_transaction(1, TX, server_signature=b"\x55" * 256)
    assert cmd.header == bytes.fromhex("80540001")
    assert cmd.data.endswith(b"\x8e\x82\x01\x00" + b"\x55" * 256)
    response = parse_sign_transaction_response(b"\x86\x04\x00\x00\x01\x00" + tlv.encode(0x9E, b"\x01" * 256))
    assert response.counter == 256 and response.signature == b"\x01" * 256


def test_signature_over_signed_data_verifies_with_cryptography():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = signed_transaction_data(TX.tlvs(), 1)
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    parsed = parse_public_key(encode_rsa_public_key(key.public_key()))
    parsed.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def test_ec_public_key_parses():
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert parse_public_key(tlv.encode(0x7F49, tlv.encode(0x86, point))) == key


def test_chaining_splits_and_marks_all_but_last():
    cmd = commands.put_certificate(2, bytes(600))
    apdus = cmd.chained()
    assert [a[0] for a in apdus] == [0x10, 0x10, 0x00]
    assert [a[4] for a in apdus] == [255, 255, 90]
    assert all(a[1:4] == bytes.fromhex("DAC102") for a in apdus)


def test_extended_encoding():
    cmd = commands.put_certificate(1, bytes(3000))
    ext = cmd.extended()
    assert ext[:7] == bytes.fromhex("00DAC101000BB8") and len(ext) == 7 + 3000
    assert commands.read_binary(0x100, ne=65536).extended() == bytes.fromhex("00B00100000000")
    assert commands.read_binary(0, ne=1000).extended() == bytes.fromhex("00B0000000 03E8".replace(" ", ""))


def test_long_answers_ask_for_everything_extended_and_256_short():
    # Extended Le FFFF (ISO/IEC 7816-4 5.1) brings a 7F49 template or a signature whole ...
    assert commands.read_public_key(1).extended() == bytes.fromhex("0047810100FFFF")
    # ... while the short forms the server composes stay Le 00, the rest by GET RESPONSE.
    assert commands.read_public_key(1).short() == bytes.fromhex("0047810100")
    assert commands.generate_key(2).short() == bytes.fromhex("0047800200")
    tx = Transaction(amount=1, currency="EUR", payee="P", order_ref="R", nonce=bytes(16))
    pieces = commands.sign_transaction(1, tx, bytes(256)).chained()
    assert pieces[-1][-1] == 0x00 and len(pieces[-1]) == 6 + pieces[-1][4]  # Lc, data, Le 00


def test_short_encoding_refuses_oversized_data():
    with pytest.raises(ValueError, match="chained"):
        commands.put_certificate(1, bytes(256)).short()


def test_pin_arguments_are_validated_and_secret():
    with pytest.raises(ValueError, match="PIN must be 4-12"):
        commands.verify_pin("12a4")
    cmd = commands.change_pin("1234", "87654321")
    assert cmd.data == b"1234" + b"\xff" * 8 + b"87654321" + b"\xff" * 4
    assert cmd.sensitive and "1234" not in repr(cmd)
    with pytest.raises(ValueError, match="PUK must be 8-8"):
        commands.unblock_pin("1234567", "1234")


def test_mse_set_and_slot_validation():
    assert commands.mse_set(Template.DIGITAL_SIGNATURE, public_ref=0x10).short() == bytes.fromhex("002241B603830110")
    with pytest.raises(ValueError, match="slot"):
        commands.generate_key(3)


def test_fci_parser():
    a5 = (
        tlv.encode(0x80, b"\x01\x00") + tlv.encode(0x81, b"\x02") + tlv.encode(0x82, b"\x19")
        + tlv.encode(0x83, b"\x0c\x00") + tlv.encode(0x84, bytes.fromhex("010101030400"))
        + tlv.encode(0x84, bytes.fromhex("020100000000")) + tlv.encode(0x85, b"\x13")
        + tlv.encode(0x86, b"\x03\x0a") + tlv.encode(0x87, b"\x00\x00\x00\x05")
        + tlv.encode(0x88, bytes.fromhex("7fff01000200")) + tlv.encode(0x99, b"future")
    )
    fci = parse_fci(tlv.encode(0x6F, tlv.encode(0x84, APPLET_AID) + tlv.encode(0xA5, a5)))
    assert fci.lifecycle is Lifecycle.ISSUED and fci.max_certificate_size == 3072
    assert fci.supports(Algorithm.EC_P256) and not fci.supports(Algorithm.RSA_3072)
    assert fci.slots[1].has_certificate and fci.slots[1].certificate_length == 0x400
    assert fci.slots[1].policy == SlotPolicy.PIN_PER_SIGNATURE and not fci.slots[2].has_key
    assert CardFlags.DEVELOPMENT_CARD in fci.flags and fci.pin_tries == 3 and fci.counter == 5


def test_applet_aid_matches_applet_properties():
    props = dict(
        line.split("=", 1)
        for line in (REPO / "applet" / "applet.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert bytes.fromhex(props["applet.aid"]) == APPLET_AID


def test_class_without_channel_follows_iso_7816_4_clause_5_4_1():
    from cardshield.protocol.constants import class_without_channel

    assert [class_without_channel(c) for c in (0x00, 0x03, 0x13, 0x85, 0x0C)] == [0x00, 0x00, 0x10, 0x84, 0x0C]
    # further classes: channel in b1-b4, secure messaging in b6
    assert [class_without_channel(c) for c in (0x40, 0x4F, 0x5F, 0x60, 0xC3)] == [0x00, 0x00, 0x10, 0x20, 0x80]
