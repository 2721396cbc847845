"""RSA-CRT fault attack (Boneh, DeMillo, Lipton 1997) against the card's signatures.

A card signs with the CRT form of its private key: s_p = m^dP mod p, s_q = m^dQ mod q,
recombined. If a glitch, a laser or a worn EEPROM cell corrupts either half once, the
signature s is right modulo q and wrong modulo p, and gcd(s^e - m, n) = q: one faulty
signature hands out the private key. The defence: verify every signature with the
public key before it leaves the card, and on mismatch answer 6581 with no data
(docs/apdu.md, "Fault check").

The fault is injected with the virtual card's host-only FAULT-KEY control (KeyProbe.java: one
bit of dP flipped through the Java Card key API, never reachable by APDU), then only
ordinary APDUs go through pcscd. Each signing command that uses a private key is attacked:
SIGN TRANSACTION (slot 01), PROVE POSSESSION and COMPUTE DIGITAL SIGNATURE (slot 02).
An EC slot's PROVE POSSESSION with a faulty private scalar is refused the same way.
Not covered: ATTEST (its key needs the secured personalization; the same RsaSigner path
signs it), and a fault striking the verification itself (a second, independent fault).
"""

from __future__ import annotations

import hashlib
import math
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from applet_support import PIN, PUK, RELAXED_PAYMENT_SLOT, SW_ALGORITHM_NOT_AVAILABLE, card_has
from cardshield.card.errors import CardError
from cardshield.protocol import (Transaction, commands, encode_rsa_public_key, parse_sign_transaction_response,
                                 possession_data, signed_transaction_data)
from cardshield.protocol.constants import Template

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

SW_FAULT_DETECTED = 0x6581
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def emsa_pkcs1_v15(message_hash: bytes, modulus_bytes: int) -> int:
    """RFC 8017 9.2: 00 01 FF..FF 00 DigestInfo(SHA-256) as an integer."""
    digest_info = SHA256_DIGEST_INFO + message_hash
    block = b"\x00\x01" + b"\xff" * (modulus_bytes - 3 - len(digest_info)) + b"\x00" + digest_info
    return int.from_bytes(block, "big")


def assert_not_a_factor(signature: bytes, message_hash: bytes, key: rsa.RSAPublicKey) -> None:
    numbers = key.public_numbers()
    m = emsa_pkcs1_v15(message_hash, key.key_size // 8)
    factor = math.gcd((pow(int.from_bytes(signature, "big"), numbers.e, numbers.n) - m) % numbers.n, numbers.n)
    assert not 1 < factor < numbers.n, f"the faulty signature factors the modulus: q = {factor:x}"


@pytest.fixture
def faulted(fresh_card, server_key, virtual_card):
    """A fresh reference-like card whose slot keys are generated, then the CRT fault."""
    fresh_card.personalize_development_card(PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()),
                                            slots=RELAXED_PAYMENT_SLOT)
    fresh_card.verify_pin(PIN)
    public = {slot: fresh_card.generate_key(slot) for slot in (1, 2)}

    def inject(slot: int):
        virtual_card.fault_private_key(fresh_card.aid, f"state.slot{slot}.keyPair.private")
        fresh_card.select()
        fresh_card.verify_pin(PIN)
        return public[slot]

    return fresh_card, inject


def test_sign_transaction_with_a_faulty_key_returns_no_signature(faulted):
    card, inject = faulted
    key = inject(1)
    tx = Transaction(amount=100, currency="EUR", payee="Fault Ltd", order_ref="F-1", nonce=os.urandom(16))
    counter = card.select().counter + 1
    card.verify_pin(PIN)
    response = card.transmit(commands.sign_transaction(1, tx))
    if response.sw == 0x9000:  # a card without the check hands the attacker the factor
        signed = parse_sign_transaction_response(response.data)
        digest = hashlib.sha256(signed_transaction_data(tx.tlvs(), signed.counter)).digest()
        assert_not_a_factor(signed.signature, digest, key)
    assert (response.sw, response.data) == (SW_FAULT_DETECTED, b"")
    # the counter value is spent (strictly increasing, never reused), nothing was signed with it
    assert card.select().counter == counter


def test_prove_possession_with_a_faulty_key_returns_no_signature(faulted):
    card, inject = faulted
    key = inject(2)
    challenge = os.urandom(32)
    response = card.transmit(commands.prove_possession(2, challenge))
    if response.sw == 0x9000:
        assert_not_a_factor(response.data, hashlib.sha256(possession_data(challenge)).digest(), key)
    assert (response.sw, response.data) == (SW_FAULT_DETECTED, b"")


def test_compute_digital_signature_with_a_faulty_key_returns_no_signature(faulted):
    card, inject = faulted
    key = inject(2)
    card.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    message_hash = hashlib.sha256(b"document").digest()
    response = card.transmit(commands.compute_signature(message_hash))
    if response.sw == 0x9000:
        assert_not_a_factor(response.data, message_hash, key)
    assert (response.sw, response.data) == (SW_FAULT_DETECTED, b"")


def test_the_same_card_signs_correctly_without_the_fault(faulted):
    """Control: without the injected fault the same path gives verifying signatures."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    card, _inject = faulted
    key = card.read_public_key(2)
    challenge = os.urandom(32)
    signature = card.prove_possession(2, challenge)
    key.verify(signature, possession_data(challenge), padding.PKCS1v15(), hashes.SHA256())


def test_an_ecdsa_signature_with_a_faulty_key_does_not_leave_the_card(fresh_card, server_key, virtual_card):
    """ECDSA: a faulty private scalar (one bit of S flipped) gives signatures that do not
    verify; the card checks each SIGN TRANSACTION / PROVE POSSESSION signature with the
    public key and answers 6581 instead of sending it. A card without EC refuses the EC slot
    (6A81) and keeps the slot unconfigured."""
    from cardshield.protocol.constants import Algorithm, AlgorithmSupport, SlotPolicy

    if not card_has(fresh_card, AlgorithmSupport.EC_P256):  # a SIM: no EC slot to attack
        with pytest.raises(CardError) as refused:
            fresh_card.configure_slot(2, Algorithm.EC_P256)
        assert refused.value.sw == SW_ALGORITHM_NOT_AVAILABLE
        assert fresh_card.select().slots[2].algorithm is Algorithm.NONE
        return
    fresh_card.personalize_development_card(
        PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()),
        slots={**RELAXED_PAYMENT_SLOT, 2: (Algorithm.EC_P256, SlotPolicy(0))})
    fresh_card.verify_pin(PIN)
    fresh_card.generate_key(2)
    virtual_card.fault_private_key(fresh_card.aid, "state.slot2.keyPair.private")
    fresh_card.select()
    fresh_card.verify_pin(PIN)
    response = fresh_card.transmit(commands.prove_possession(2, os.urandom(32)))
    assert (response.sw, response.data) == (SW_FAULT_DETECTED, b"")
