"""Unit tests of cardshield.protocol.attestation and the PERSONALIZE P1=05/06 builders:
the bytes the applet, the issuer tooling and the server must agree on (docs/apdu.md)."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.protocol import commands, encode_rsa_public_key, parse_certificate_fcp, tlv
from cardshield.protocol.attestation import (
    ATTEST_INS,
    STATEMENT_PREFIX,
    attest_command,
    encode_statement,
    parse_attest_response,
    public_key_digest,
)

CARD_ID = bytes.fromhex("0011223344556677")
CHALLENGE = bytes(range(32))
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_DO = encode_rsa_public_key(KEY.public_key())


def _statement(**overrides):
    args = dict(card_id=CARD_ID, applet_version=(1, 1), slot=1, algorithm=0x01, policy=0x03,
                public_key_do=KEY_DO, challenge=CHALLENGE, counter=7)
    args.update(overrides)
    return encode_statement(**args)


def test_attest_command_bytes():
    command = attest_command(1, CHALLENGE)
    assert ATTEST_INS == 0x58
    assert command.header == bytes.fromhex("80580001")
    assert command.data == CHALLENGE
    assert command.extended()[-2:] == b"\xff\xff"  # the whole statement and signature in one answer


@pytest.mark.parametrize("slot, challenge", [(3, CHALLENGE), (1, bytes(15)), (2, bytes(65))])
def test_attest_command_refuses_bad_arguments(slot, challenge):
    with pytest.raises(ValueError):
        attest_command(slot, challenge)


def test_statement_layout_is_the_contract():
    encoded = _statement()
    expected_body = (
        bytes.fromhex("800101") + b"\x8a\x08" + CARD_ID + bytes.fromhex("81020101 820101 830101 840103")
        + b"\x85\x20" + hashlib.sha256(KEY_DO).digest() + b"\x86\x20" + CHALLENGE + bytes.fromhex("870400000007")
    )
    assert encoded == b"\x70" + bytes([len(expected_body)]) + expected_body


def test_response_parses_and_the_signature_over_prefix_and_statement_verifies():
    encoded = _statement(challenge=bytes(64), card_id=bytes(16))  # the longest: 2-byte BER length
    assert encoded[:2] == b"\x70\x81"
    signature = KEY.sign(STATEMENT_PREFIX + encoded, padding.PKCS1v15(), hashes.SHA256())
    statement, parsed_signature = parse_attest_response(encoded + tlv.encode(0x9E, signature))
    assert parsed_signature == signature
    assert statement.encoded == encoded
    assert statement.signed_data() == b"CSATT1" + encoded
    assert (statement.version, statement.slot, statement.algorithm, statement.policy) == (1, 1, 1, 3)
    assert statement.card_id == bytes(16) and statement.applet_version == (1, 1)
    assert statement.public_key_sha256 == public_key_digest(KEY_DO)
    assert statement.challenge == bytes(64) and statement.counter == 7
    KEY.public_key().verify(signature, statement.signed_data(), padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s + b"\x9f\x01\x00", "followed by a 9E"),                       # trailing junk
    (lambda s: s.replace(b"\x80\x01\x01", b"\x80\x01\x02", 1), "version 2"),   # unknown version
    (lambda s: b"\x70" + bytes([s[1] - 3]) + s[5:], "data objects must be"),  # version missing
])
def test_malformed_responses_are_refused_with_a_reason(mutate, message):
    encoded = _statement()
    data = mutate(encoded)
    if not data.endswith(b"\x9f\x01\x00"):
        data += tlv.encode(0x9E, b"\x01" * 256)
    with pytest.raises(tlv.TLVError, match=message):
        parse_attest_response(data)


def test_statement_refuses_bad_fields():
    with pytest.raises(ValueError):
        _statement(card_id=bytes(7))
    with pytest.raises(ValueError):
        _statement(counter=1 << 32)


def test_attestation_key_command_is_p1_05_without_data():
    command = commands.personalize_attestation_key()
    assert command.header == bytes.fromhex("80E00500") and command.data == b""


@pytest.mark.parametrize("size, p2s", [(1, [0x80]), (192, [0x80]), (193, [0x00, 0x81]), (500, [0x00, 0x01, 0x81])])
def test_attestation_certificate_parts_sequence(size, p2s):
    der = bytes(i & 0xFF for i in range(size))
    parts = commands.personalize_attestation_certificate(der)
    assert [p.p2 for p in parts] == p2s
    assert all(p.header[:3] == bytes.fromhex("80E006") for p in parts)
    assert b"".join(p.data for p in parts) == der
    assert max(len(p.data) for p in parts) <= 192


def test_attestation_certificate_refuses_empty():
    with pytest.raises(ValueError):
        commands.personalize_attestation_certificate(b"")


def test_certificate_fcp_with_and_without_reference():
    digest = hashlib.sha256(b"cert").digest()
    with_ref = bytes.fromhex("622D 8002 0400 820101 8302C101") + b"\x85\x20" + digest
    fcp = parse_certificate_fcp(with_ref)
    assert (fcp.file_id, fcp.size, fcp.sha256) == (b"\xc1\x01", 0x400, digest)
    assert parse_certificate_fcp(bytes.fromhex("620B 8002 0400 820101 8302C10A")).sha256 is None
    assert commands.select_attestation_certificate(fcp=True).header == bytes.fromhex("00A40204")
    assert commands.select_attestation_certificate().data == b"\xc1\x0a"
