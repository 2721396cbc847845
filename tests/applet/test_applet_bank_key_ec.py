"""The bank's EC P-256 request key (PERSONALIZE P1=04 with 7F49{86}): SIGN TRANSACTION on a
payment slot with the bank's default policy (PIN per signature + server-signed requests)
accepts only an ECDSA 8E by that key over exactly the fields it signs.

The attacker relays the card's APDUs (malware on the phone): it alters the amount or payee
of a bank-signed request, forges 8E with a key of its own, replays a genuine 8E of another
payment (another card's, another amount), or sends signatures of the wrong form. Each is
refused with its status word and leaves the counter where it was.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from applet_support import PIN, PUK
from cardshield.card.client import CardShield
from cardshield.card.errors import CardError
from cardshield.protocol import Command, Transaction, commands, signed_transaction_data, tlv
from cardshield.protocol.bank_key import encode_bank_public_key, sign_request
from cardshield.protocol.commands import ALL_EXTENDED
from cardshield.protocol.constants import CLA_PROPRIETARY, Algorithm, CardFlags, Ins, SlotPolicy, Template

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


@pytest.fixture(scope="module")
def bank_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def ec_bank_card(fresh_card, bank_key) -> tuple[CardShield, rsa.RSAPublicKey]:
    """Issued with the bank's EC key and the default payment slot; slot 01 key generated."""
    fci = fresh_card.personalize_development_card(
        PIN, PUK, server_key_7f49=encode_bank_public_key(bank_key.public_key()))
    assert fci.slots[1].policy == SlotPolicy.PIN_PER_SIGNATURE | SlotPolicy.SERVER_SIGNED_REQUESTS
    fresh_card.verify_pin(PIN)
    public_key = fresh_card.generate_key(1)
    return fresh_card, public_key


def payment(amount: int = 1999, payee: str = "Bakery Müller", nonce: bytes | None = None) -> Transaction:
    return Transaction(amount=amount, currency="EUR", payee=payee, order_ref="ORDER-77",
                       nonce=nonce or os.urandom(32))


def sign_raw(card: CardShield, fields: bytes) -> int:
    """SIGN TRANSACTION slot 01 with the PIN just verified; the status word."""
    card.verify_pin(PIN)
    return card.transmit(Command(CLA_PROPRIETARY, Ins.SIGN_TRANSACTION, 0x00, 0x01, fields, ne=ALL_EXTENDED)).sw


def test_the_fci_says_the_bank_key_is_ec(ec_bank_card):
    card, _ = ec_bank_card
    fci = card.select()
    assert CardFlags.SERVER_KEY_LOADED in fci.flags and CardFlags.SERVER_KEY_EC in fci.flags
    assert fci.server_key_algorithm == Algorithm.EC_P256


def test_a_bank_signed_payment_verifies_with_openssl(ec_bank_card, bank_key, tmp_path):
    card, public_key = ec_bank_card
    tx = payment()
    server_signature = sign_request(bank_key, tx.tlvs())
    assert len(server_signature) <= 72
    card.verify_pin(PIN)
    signed = card.sign_transaction(1, tx, server_signature)
    (tmp_path / "card.pem").write_bytes(public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "signed.bin").write_bytes(signed_transaction_data(tx.tlvs(), signed.counter))
    (tmp_path / "signature.bin").write_bytes(signed.signature)
    result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "card.pem", "-signature",
                             "signature.bin", "signed.bin"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stdout + result.stderr


def test_an_altered_amount_or_payee_is_refused(ec_bank_card, bank_key):
    card, _ = ec_bank_card
    tx = payment()
    genuine = sign_request(bank_key, tx.tlvs())
    before = card.select().counter
    for altered in (payment(amount=999_999, nonce=tx.nonce), payment(payee="Attacker Ltd", nonce=tx.nonce)):
        assert sign_raw(card, altered.tlvs() + tlv.encode(0x8E, genuine)) == 0x6982
    assert card.select().counter == before


def test_a_forged_bank_signature_is_refused(ec_bank_card):
    card, _ = ec_bank_card
    tx = payment()
    attacker = ec.generate_private_key(ec.SECP256R1())
    before = card.select().counter
    assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, sign_request(attacker, tx.tlvs()))) == 0x6982
    # a well-formed DER signature with arbitrary values
    arbitrary = tlv.encode(0x30, tlv.encode(0x02, b"\x01" + os.urandom(31)) + tlv.encode(0x02, b"\x01" + os.urandom(31)))
    assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, arbitrary)) == 0x6982
    assert card.select().counter == before


def test_a_bank_signature_of_another_payment_is_refused(ec_bank_card, bank_key):
    """8E the bank made for another card's payment (another nonce) or another amount."""
    card, _ = ec_bank_card
    tx = payment()
    other_cards = sign_request(bank_key, payment(nonce=os.urandom(32)).tlvs())
    other_amount = sign_request(bank_key, payment(amount=1).tlvs())
    before = card.select().counter
    assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, other_cards)) == 0x6982
    assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, other_amount)) == 0x6982
    # a single flipped bit of the genuine signature
    genuine = bytearray(sign_request(bank_key, tx.tlvs()))
    genuine[-1] ^= 0x01
    assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, bytes(genuine))) == 0x6982
    assert card.select().counter == before


def test_an_unsigned_request_is_refused(ec_bank_card):
    card, _ = ec_bank_card
    assert sign_raw(card, payment().tlvs()) == 0x6982


@pytest.mark.parametrize("signature", [
    bytes(256),                                                   # an RSA-2048-sized 8E
    os.urandom(64),                                               # raw r || s, not DER
    b"\x30\x06\x02\x01\x01\x02\x02\x01",                          # truncated
    b"\x31\x06\x02\x01\x01\x02\x01\x01",                          # not a SEQUENCE
    b"\x30\x07\x02\x01\x01\x02\x01\x01\x00",                      # trailing byte inside
    b"\x30\x06\x02\x01\x01\x04\x01\x01",                          # s not an INTEGER
    b"\x30\x46\x02\x22" + bytes(34) + b"\x02\x20" + bytes(32),    # r of 34 bytes
    b"\x30\x49" + b"\x02\x21" + bytes(33) + b"\x02\x24" + bytes(36),  # above 72 bytes
], ids=["rsa-size", "raw-r-s", "truncated", "not-sequence", "extra-byte", "s-not-integer", "r-too-long",
        "too-long"])
def test_a_signature_of_the_wrong_form_is_6a80(ec_bank_card, signature):
    card, _ = ec_bank_card
    before = card.select().counter
    assert sign_raw(card, payment().tlvs() + tlv.encode(0x8E, signature)) == 0x6A80
    assert card.select().counter == before


def test_the_ec_server_key_is_not_an_rsa_key_for_encipher_or_verify(ec_bank_card, transport):
    card, _ = ec_bank_card
    card.set_security_environment(Template.CONFIDENTIALITY, public_ref=0x10)
    assert card.transmit(commands.encipher(b"hello")).sw == 0x6A81
    card.set_security_environment(Template.DIGITAL_SIGNATURE, public_ref=0x10)
    assert card.transmit(commands.verify_signature(bytes(32), bytes(72))).sw == 0x6A81


def test_an_rsa_bank_signature_on_an_ec_card_and_the_reverse(fresh_card, bank_key):
    """Replacing the bank key during personalization: only the last one loaded counts."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    card = fresh_card
    card.personalize_pin(PIN)
    card.personalize_puk(PUK)
    card.load_server_key(encode_bank_public_key(rsa_key.public_key()))
    card.load_server_key(encode_bank_public_key(bank_key.public_key()))
    assert card.select().server_key_algorithm == Algorithm.EC_P256
    card.load_server_key(encode_bank_public_key(rsa_key.public_key()))
    assert card.select().server_key_algorithm == Algorithm.RSA_2048
    card.issue()
    card.verify_pin(PIN)
    card.generate_key(1)
    tx = payment()
    # the EC signature is the wrong form for the RSA key now installed
    assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, sign_request(bank_key, tx.tlvs()))) == 0x6A80
    card.verify_pin(PIN)
    assert card.sign_transaction(1, tx, sign_request(rsa_key, tx.tlvs())).counter == 1


@pytest.mark.parametrize("key_data", [
    "7F4943" + "8641" + "05" + "11" * 64,          # not an uncompressed point
    "7F4942" + "8640" + "04" + "11" * 63,          # point of 64 bytes
    "7F4944" + "8641" + "04" + "11" * 64 + "00",   # a byte after the point
    "7F4945" + "8641" + "04" + "11" * 64 + "8200",  # an RSA exponent after the point
    "7F4903" + "8701" + "04",                       # another data object
], ids=["compressed-prefix", "short-point", "trailing-byte", "mixed", "other-DO"])
def test_a_malformed_ec_bank_key_is_refused(fresh_card, key_data):
    card = fresh_card
    response = card.transmit(commands.personalize_server_key(bytes.fromhex(key_data)))
    assert response.sw == 0x6A80
    assert CardFlags.SERVER_KEY_LOADED not in card.select().flags
