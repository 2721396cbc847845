"""Real-card hardening: class bytes of logical channels (a phone's OMAPI opens the applet on
a logical channel), key separation against decryption oracles, and PIN-per-signature
consumed by every private-key use, including a failed one."""

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from applet_support import PIN, PUK, exchange
from cardshield.card.errors import CardError
from cardshield.protocol import Algorithm, SlotPolicy, Template, encode_rsa_public_key

pytestmark = pytest.mark.card


def refused(call, sw):
    with pytest.raises(CardError) as error:
        call()
    assert error.value.sw == sw, f"{error.value.sw:04X} != {sw:04X}"


@pytest.mark.parametrize("cla", [0x01, 0x03, 0x41, 0x4F])
def test_commands_on_a_logical_channel_reach_the_applet(card, transport, cla):
    """ISO/IEC 7816-4 clause 5.4.1: the channel number lives in CLA (b1-b2, or b1-b4 for the
    further interindustry classes 40-7F); an applet opened by OMAPI on channel 1..19 sees it."""
    channel_free_read = exchange(transport, bytes([cla, 0x47, 0x81, 0x01, 0x00]))
    assert channel_free_read.sw1 == 0x61 or channel_free_read.sw == 0x9000, hex(channel_free_read.sw)
    status = exchange(transport, bytes([cla, 0x20, 0x00, 0x81]))
    assert status.sw == 0x63C3
    proprietary = cla | 0x80
    # proprietary class on the same channel: PROVE POSSESSION without PIN -> 6982, not 6E00
    assert exchange(transport, bytes([proprietary, 0x56, 0x00, 0x01, 0x10]) + bytes(16)).sw == 0x6982


def test_secure_messaging_bits_of_further_classes_are_refused(card, transport):
    # class 60: further interindustry with b6 (secure messaging) set
    assert exchange(transport, "60 20 00 81").sw == 0x6882


def test_server_signed_slot_is_no_decryption_oracle(fresh_card, server_key):
    """PKCS#1 v1.5 DECIPHER with a signing key is a Bleichenbacher oracle that computes raw
    RSA signatures: it would forge transaction signatures past the 8E check and the counter."""
    fresh_card.personalize_development_card(
        PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()),
        slots={1: (Algorithm.RSA_2048, SlotPolicy.SERVER_SIGNED_REQUESTS)})
    fresh_card.verify_pin(PIN)
    key = fresh_card.generate_key(1)
    fresh_card.set_security_environment(Template.CONFIDENTIALITY, private_slot=1)
    cryptogram = key.encrypt(b"probe", padding.PKCS1v15())
    refused(lambda: fresh_card.decipher(cryptogram), 0x6985)


def test_pin_per_signature_is_consumed_by_a_failed_private_key_use(fresh_card):
    """Otherwise one VERIFY buys unlimited failed DECIPHERs: a padding oracle."""
    fresh_card.personalize_pin(PIN)
    fresh_card.personalize_puk(PUK)
    fresh_card.configure_slot(1, Algorithm.RSA_2048)  # no server key on this card
    fresh_card.configure_slot(2, Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE)
    fresh_card.issue()
    fresh_card.verify_pin(PIN)
    key = fresh_card.generate_key(2)
    fresh_card.verify_pin(PIN)
    refused(lambda: fresh_card.decipher(bytes(256)), 0x6A80)  # padding check fails
    cryptogram = key.encrypt(b"secret", padding.PKCS1v15())
    refused(lambda: fresh_card.decipher(cryptogram), 0x6982)
    fresh_card.verify_pin(PIN)
    assert fresh_card.decipher(cryptogram) == b"secret"
