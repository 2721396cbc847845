"""Lifecycle PERSONALIZATION -> ISSUED -> TERMINATED, personalization refusals, slot
algorithms (RSA-2048/3072, EC P-256) and the server-signed / PIN-per-signature policies.
Each test starts from a wiped card (virtual card only)."""

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from applet_support import PIN, PUK, RELAXED_PAYMENT_SLOT, SW_ALGORITHM_NOT_AVAILABLE, card_has, exchange
from cardshield.card.errors import CardError
from cardshield.protocol import (Algorithm, AlgorithmSupport, CardFlags, Lifecycle, SlotPolicy, Template, Transaction,
                                 encode_rsa_public_key, possession_data, request_data, signed_transaction_data)

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


def refused(call, sw):
    with pytest.raises(CardError) as error:
        call()
    assert error.value.sw == sw, f"{error.value.sw:04X} != {sw:04X}"


def test_personalization_state_refuses_private_key_functions(fresh_card, transport):
    fci = fresh_card.select()
    assert fci.lifecycle is Lifecycle.PERSONALIZATION and CardFlags.DEVELOPMENT_CARD in fci.flags
    assert not fci.slots[1].has_key and fci.slots[1].algorithm is Algorithm.NONE
    assert exchange(transport, "0020008104" + b"1234".hex()).sw == 0x6984  # no PIN yet
    fresh_card.personalize_pin(PIN)
    fresh_card.verify_pin(PIN)
    for apdu in ("0047800100", "002A9E9A20" + "00" * 32, "80560001" + "10" + "00" * 16, "00DAC10100"):
        assert exchange(transport, apdu).sw == 0x6985, apdu
    assert exchange(transport, "0047810100").sw == 0x6A88  # no key to read
    refused(fresh_card.issue, 0x6985)  # PUK not set


@pytest.mark.parametrize(
    "apdu, sw",
    [
        ("80E0010003313233", 0x6700),
        ("80E0010004313233FF", 0x6A80),
        ("80E0020007" + "31" * 7, 0x6700),
        ("80E0030102FF00", 0x6A80),  # unknown algorithm
        ("80E0030102 01 04".replace(" ", ""), 0x6A80),  # reserved policy bit
        ("80E003010201 02".replace(" ", ""), 0x6985),  # server-signed without a server key
        ("80E003030201 00".replace(" ", ""), 0x6A86),
        ("80E00301030100 00".replace(" ", ""), 0x6700),
        ("80E0040104" + "7F490100", 0x6A86),
        ("80E0040004" + "7F490100", 0x6A80),
        ("80E0050000", 0x6982),  # attestation key: secure channel only, even on a development card
        ("80E0068005" + "3003020101", 0x6982),
        ("80E0070000", 0x6A86),
        ("80E2010000", 0x6A86),
    ],
)
def test_personalization_format_errors(fresh_card, transport, apdu, sw):
    assert exchange(transport, apdu).sw == sw


def test_issue_is_one_way(fresh_card, transport, server_key):
    fresh_card.personalize_pin(PIN)
    fresh_card.personalize_puk(PUK)
    fresh_card.configure_slot(1, Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE)
    # the algorithm is fixed (6985); a card without EC refuses EC before that (6A81)
    refused(lambda: fresh_card.configure_slot(1, Algorithm.EC_P256),
            0x6985 if card_has(fresh_card, AlgorithmSupport.EC_P256) else SW_ALGORITHM_NOT_AVAILABLE)
    fresh_card.issue()
    fci = fresh_card.select()
    assert fci.lifecycle is Lifecycle.ISSUED
    assert fci.slots[2].algorithm is Algorithm.RSA_2048  # unconfigured slots default at ISSUE
    for call in (lambda: fresh_card.personalize_pin("5555"), fresh_card.issue,
                 lambda: fresh_card.load_server_key(encode_rsa_public_key(server_key.public_key()))):
        refused(call, 0x6985)


def test_pin_per_signature_policy(fresh_card):
    fresh_card.personalize_pin(PIN)
    fresh_card.personalize_puk(PUK)
    fresh_card.configure_slot(1, Algorithm.RSA_2048)
    fresh_card.configure_slot(2, Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE)
    fresh_card.issue()
    fresh_card.verify_pin(PIN)
    key = fresh_card.generate_key(2)
    fresh_card.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    fresh_card.verify_pin(PIN)
    fresh_card.sign_hash(hashlib.sha256(b"one").digest())
    refused(lambda: fresh_card.sign_hash(hashlib.sha256(b"two").digest()), 0x6982)
    fresh_card.verify_pin(PIN)
    signature = fresh_card.sign_hash(hashlib.sha256(b"two").digest())
    key.verify(signature, b"two", padding.PKCS1v15(), hashes.SHA256())


def test_server_signed_policy(fresh_card, server_key):
    fresh_card.personalize_development_card(
        PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()),
        slots={1: (Algorithm.RSA_2048, SlotPolicy.SERVER_SIGNED_REQUESTS)})
    fresh_card.verify_pin(PIN)
    key = fresh_card.generate_key(1)
    tx = Transaction(amount=500, currency="EUR", payee="Shop", order_ref="A1", nonce=os.urandom(20))
    refused(lambda: fresh_card.sign_transaction(1, tx), 0x6982)  # no server authorisation
    refused(lambda: fresh_card.sign_hash(bytes(32)), 0x6985)  # the bare-hash bypass is closed
    authorisation = server_key.sign(request_data(tx.tlvs()), padding.PKCS1v15(), hashes.SHA256())
    signed = fresh_card.sign_transaction(1, tx, authorisation)
    assert signed.counter == 1
    key.verify(signed.signature, signed_transaction_data(tx.tlvs(), 1), padding.PKCS1v15(), hashes.SHA256())


def test_puk_exhaustion_terminates_the_card(fresh_card, transport):
    fresh_card.personalize_development_card(PIN, PUK, slots=RELAXED_PAYMENT_SLOT)
    fresh_card.verify_pin(PIN)
    key = fresh_card.generate_key(1)
    for left in range(9, -1, -1):
        refused(lambda: fresh_card.unblock_pin("00000000", PIN), 0x63C0 | left)
    fci = fresh_card.select()
    assert fci.lifecycle is Lifecycle.TERMINATED and fci.puk_tries == 0
    fresh_card.verify_pin(PIN)  # the PIN still verifies, but private keys are gone for good
    refused(lambda: fresh_card.sign_hash(bytes(32)), 0x6983)
    refused(lambda: fresh_card.generate_key(1), 0x6983)
    refused(lambda: fresh_card.unblock_pin(PUK, PIN), 0x6983)
    assert fresh_card.read_public_key(1).public_numbers() == key.public_numbers()


@pytest.mark.slow
def test_rsa_3072_and_ec_p256_slots(fresh_card):
    fci = fresh_card.select()
    wanted = {1: (Algorithm.EC_P256, AlgorithmSupport.EC_P256), 2: (Algorithm.RSA_3072, AlgorithmSupport.RSA_3072)}
    lacking = {slot: algorithm for slot, (algorithm, support) in wanted.items() if support not in fci.algorithms}
    if lacking:  # a SIM has neither: each refused with 6A81, the slot left unconfigured
        for slot, algorithm in lacking.items():
            refused(lambda: fresh_card.configure_slot(slot, algorithm), SW_ALGORITHM_NOT_AVAILABLE)
            assert fresh_card.select().slots[slot].algorithm is Algorithm.NONE
        return
    fresh_card.personalize_development_card(
        PIN, PUK, slots={1: (Algorithm.EC_P256, SlotPolicy(0)), 2: (Algorithm.RSA_3072, SlotPolicy(0))})
    fresh_card.verify_pin(PIN)
    ec_key = fresh_card.generate_key(1)
    rsa_key = fresh_card.generate_key(2)
    assert isinstance(ec_key, ec.EllipticCurvePublicKey) and rsa_key.key_size == 3072
    tx = Transaction(amount=1, currency="USD", payee="p", order_ref="o", nonce=os.urandom(16))
    signed = fresh_card.sign_transaction(1, tx)
    ec_key.verify(signed.signature, signed_transaction_data(tx.tlvs(), signed.counter), ec.ECDSA(hashes.SHA256()))
    challenge = os.urandom(16)
    rsa_key.verify(fresh_card.prove_possession(2, challenge), possession_data(challenge), padding.PKCS1v15(),
                   hashes.SHA256())
    refused(lambda: fresh_card.sign_hash(hashlib.sha256(b"ec hash").digest()), 0x6985)  # payment slot
    assert fresh_card.decipher(rsa_key.encrypt(b"3072", padding.PKCS1v15())) == b"3072"
