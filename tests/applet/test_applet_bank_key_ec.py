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

from applet_support import PIN, PUK, SW_ALGORITHM_NOT_AVAILABLE, card_has
from cardshield.card.client import CardShield
from cardshield.card.errors import CardError
from cardshield.protocol import Command, Transaction, commands, request_data, signed_transaction_data, tlv
from cardshield.protocol.bank_key import encode_bank_public_key, sign_request
from cardshield.protocol.commands import ALL_EXTENDED
from cardshield.protocol.constants import (CLA_PROPRIETARY, Algorithm, AlgorithmSupport, CardFlags, Ins, SlotPolicy,
                                           Template)

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


@pytest.fixture(scope="module")
def bank_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def ec_bank_card(fresh_card, bank_key) -> tuple[CardShield, rsa.RSAPublicKey]:
    """Issued with the bank's EC key and the default payment slot; slot 01 key generated.
    A card without EC (the sim profile) refuses the key instead: 6A81, and the test is skipped
    (test_a_card_without_ec_keeps_the_rsa_bank_key)."""
    if not card_has(fresh_card, AlgorithmSupport.EC_P256):
        refused = fresh_card.transmit(commands.personalize_server_key(encode_bank_public_key(bank_key.public_key())))
        assert refused.sw == SW_ALGORITHM_NOT_AVAILABLE
        pytest.skip("the card has no EC: an issuer gives it the RSA-2048 bank key (6A81 to the EC one, checked)")
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
    assert len(server_signature) == 64  # r || s
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
    # arbitrary values of the right size, zeros (r = s = 0, outside 1..n-1) and all ones (above n)
    for values in (os.urandom(64), bytes(64), b"\xff" * 64, b"\x00" * 31 + b"\x01" + b"\x00" * 31 + b"\x01"):
        assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, values)) == 0x6982
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
    None,                                                         # the DER form of a genuine signature
    os.urandom(63),
    os.urandom(65),
    b"",
], ids=["rsa-size", "der", "63-bytes", "65-bytes", "empty"])
def test_a_signature_of_the_wrong_form_is_6a80(ec_bank_card, bank_key, signature):
    """8E with the EC bank key is r || s, exactly 64 bytes."""
    card, _ = ec_bank_card
    tx = payment()
    if signature is None:
        signature = bank_key.sign(request_data(tx.tlvs()), ec.ECDSA(hashes.SHA256()))
    before = card.select().counter
    assert sign_raw(card, tx.tlvs() + tlv.encode(0x8E, signature)) == 0x6A80
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
    if not card_has(card, AlgorithmSupport.EC_P256):
        pytest.skip("the card has no EC (test_a_card_without_ec_keeps_the_rsa_bank_key)")
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
    # the EC signature is the wrong size for the RSA key now installed
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


@pytest.mark.parametrize("which", ["r", "s"])
def test_signatures_with_a_leading_zero_byte_verify(ec_bank_card, bank_key, which):
    """The card rebuilds DER from r || s with minimal INTEGERs: a value whose first byte is
    00 (1 signature in 256) must still verify, as must one with the high bit set (half)."""
    card, _ = ec_bank_card
    offset = 0 if which == "r" else 32
    for _ in range(5000):
        tx = payment()
        signature = sign_request(bank_key, tx.tlvs())
        if signature[offset] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero byte in 5000")
    card.verify_pin(PIN)
    assert card.sign_transaction(1, tx, signature).counter >= 1
    while True:
        tx = payment()
        signature = sign_request(bank_key, tx.tlvs())
        if signature[offset] & 0x80:
            break
    card.verify_pin(PIN)
    assert card.sign_transaction(1, tx, signature).counter >= 2


def test_a_card_without_ec_keeps_the_rsa_bank_key(real_reader, tmp_path, bank_key):
    """The strict sim profile (no ECDSA, SIM build): its FCI lists no EC, so an issuer gives it
    the RSA-2048 bank key (bank_key_type_for); an EC key is refused with 6A81 and leaves no
    server key loaded."""
    if real_reader is not None:
        pytest.skip("the sim profile is the virtual card's")
    from cardshield.build.variants import SIM
    from cardshield.card.transport import Transport
    from cardshield.protocol.bank_key import BankKeyType, bank_key_type_for
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack

    with VirtualCardStack(tmp_path / "sim", applets=default_applets(SIM), profile="sim") as stack:
        with Transport(stack.info.reader, extended_length=False) as transport:
            card = CardShield(transport)
            fci = card.select()
            assert bank_key_type_for(fci.algorithms) is BankKeyType.RSA_2048
            refused = card.transmit(commands.personalize_server_key(encode_bank_public_key(bank_key.public_key())))
            assert refused.sw == 0x6A81
            assert card.select().server_key_algorithm == Algorithm.NONE
            rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            card.load_server_key(encode_bank_public_key(rsa_key.public_key()))
            assert card.select().server_key_algorithm == Algorithm.RSA_2048
