"""The payment slot (01) cannot be bypassed (docs/apdu.md, "Payment slot"): after ISSUE it
signs only through SIGN TRANSACTION, whatever its policy bits, and ISSUE gives an
unconfigured payment slot the bank's default policy (PIN per signature, server-signed).

Written as the attacks: a PIN holder who signs a bare hash of a forged transaction with a
counter of FFFFFFFF (which would lock every genuine payment out at the server), and one who
uses DECIPHER on the payment key as a raw RSA (Bleichenbacher) signing oracle."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cardshield.card.errors import CardError
from cardshield.protocol import Transaction, commands, encode_rsa_public_key
from cardshield.protocol.constants import Algorithm, Lifecycle, SlotPolicy, Template
from cardshield.protocol.transaction import signed_transaction_data

from applet_support import PIN, PUK

FORGED = Transaction(amount=1, currency="EUR", payee="Attacker", order_ref="X", nonce=bytes(16))
MAX_COUNTER = 0xFFFFFFFF


def test_bare_hash_signature_of_a_forged_transaction_on_the_payment_slot_is_refused(verified, reference):
    """The attack: PSO COMPUTE DIGITAL SIGNATURE over SHA-256("CSTX1" || fields || 86 04 FFFFFFFF)
    is a valid SIGN TRANSACTION signature with the counter at its end; the card must refuse."""
    forged = signed_transaction_data(FORGED.tlvs(), MAX_COUNTER)
    verified.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=1)
    answer = verified.transmit(commands.compute_signature(hashlib.sha256(forged).digest()))
    if answer.sw == 0x9000:  # what the attacker gets on a card that allows it
        reference.public_keys[1].verify(answer.data, forged, padding.PKCS1v15(), hashes.SHA256())
    assert answer.sw == 0x6985
    assert verified.select().counter < MAX_COUNTER


def test_payment_slot_is_refused_by_default_without_mse(verified):
    """PSO CDS without MSE addresses slot 01, so it is refused too; DigestInfo forms as well."""
    digest = hashlib.sha256(b"anything").digest()
    assert verified.transmit(commands.compute_signature(digest)).sw == 0x6985
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + digest
    verified.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=1)
    assert verified.transmit(commands.compute_signature(digest_info)).sw == 0x6985
    assert verified.pin_tries_left() is None  # refused before the PIN is used


def test_decipher_with_the_payment_key_is_refused(verified, reference):
    """A PKCS#1 v1.5 decryption oracle on the signing key yields raw RSA signatures."""
    cryptogram = reference.public_keys[1].encrypt(b"secret", padding.PKCS1v15())
    verified.set_security_environment(Template.CONFIDENTIALITY, private_slot=1)
    assert verified.transmit(commands.decipher(cryptogram)).sw == 0x6985


def test_authentication_slot_keeps_its_bare_hash_and_decipher(verified, reference):
    digest = hashlib.sha256(b"login challenge").digest()
    verified.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    signature = verified.sign_hash(digest)
    reference.public_keys[2].verify(signature, b"login challenge", padding.PKCS1v15(), hashes.SHA256())
    cryptogram = reference.public_keys[2].encrypt(b"session key", padding.PKCS1v15())
    verified.set_security_environment(Template.CONFIDENTIALITY, private_slot=2)
    assert verified.decipher(cryptogram) == b"session key"


@pytest.mark.virtual_only
def test_issue_without_server_key_is_refused_when_the_payment_slot_takes_the_default(fresh_card):
    fresh_card.personalize_pin(PIN)
    fresh_card.personalize_puk(PUK)
    with pytest.raises(CardError) as refused:
        fresh_card.issue()
    assert refused.value.sw == 0x6985
    assert fresh_card.select().lifecycle == Lifecycle.PERSONALIZATION


@pytest.mark.virtual_only
def test_issue_gives_the_payment_slot_pin_per_signature_and_server_signed(fresh_card, server_key):
    fci = fresh_card.personalize_development_card(PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()))
    assert fci.slots[1].algorithm == Algorithm.RSA_2048
    assert fci.slots[1].policy == SlotPolicy.PIN_PER_SIGNATURE | SlotPolicy.SERVER_SIGNED_REQUESTS
    assert fci.slots[2].policy == SlotPolicy(0)


@pytest.mark.virtual_only
def test_an_explicit_relaxation_by_personalization_is_kept_and_still_refuses_bare_hash(fresh_card, server_key):
    fci = fresh_card.personalize_development_card(PIN, PUK, slots={1: (Algorithm.RSA_2048, SlotPolicy(0))})
    assert fci.slots[1].policy == SlotPolicy(0)
    fresh_card.verify_pin(PIN)
    fresh_card.generate_key(1)
    fresh_card.verify_pin(PIN)
    assert fresh_card.transmit(commands.compute_signature(bytes(32))).sw == 0x6985


@pytest.mark.virtual_only
def test_plain_attestation_key_generation_is_refused_on_a_development_card(fresh_card):
    """An attestation key generated without the issuer's secure channel would be worthless."""
    assert fresh_card.transmit(commands.personalize_attestation_key()).sw == 0x6982
    (part,) = commands.personalize_attestation_certificate(b"\x30\x00")
    assert fresh_card.transmit(part).sw == 0x6982
