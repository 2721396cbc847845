"""DECIPHER, ENCIPHER and VERIFY DIGITAL SIGNATURE (ISO/IEC 7816-8)."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from applet_support import PIN, SW_ALGORITHM_NOT_AVAILABLE, card_has, exchange
from cardshield.card.errors import CardError
from cardshield.protocol import AlgorithmSupport, Padding, Template
from cardshield.protocol.constants import SERVER_KEY_REFERENCE

pytestmark = pytest.mark.card


def test_decipher_pkcs1_with_slot_2(verified, reference):
    cryptogram = reference.public_keys[2].encrypt(b"session key 0123456789abcdef", padding.PKCS1v15())
    assert verified.decipher(cryptogram) == b"session key 0123456789abcdef"


def test_decipher_oaep_where_the_card_has_it(verified, reference):
    has_oaep = card_has(verified, AlgorithmSupport.RSA_OAEP)
    verified.verify_pin(PIN)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    cryptogram = reference.public_keys[2].encrypt(b"oaep secret", oaep)
    if not has_oaep:  # a SIM: OAEP is refused, PKCS#1 v1.5 still works
        with pytest.raises(CardError) as refused:
            verified.decipher(cryptogram, Padding.OAEP_SHA1)
        assert refused.value.sw == SW_ALGORITHM_NOT_AVAILABLE
        return
    assert verified.decipher(cryptogram, Padding.OAEP_SHA1) == b"oaep secret"


def test_decipher_refusals(card, reference, transport):
    cryptogram = reference.public_keys[2].encrypt(b"x", padding.PKCS1v15())
    with pytest.raises(CardError) as error:
        card.decipher(cryptogram)
    assert error.value.sw == 0x6982
    card.verify_pin(PIN)
    assert card.transmit(card_command(b"\x00" + bytes(256))).sw == 0x6A80  # padding check fails
    assert card.transmit(card_command(b"\x07" + cryptogram)).sw == 0x6A80  # unknown indicator
    assert card.transmit(card_command(b"\x00" + cryptogram[:-1])).sw == 0x6700


def card_command(data):
    from cardshield.protocol.command import Command

    return Command(0x00, 0x2A, 0x80, 0x86, data, ne=256)


def test_encipher_with_the_card_key_and_the_server_key(card, server_key):
    cryptogram = card.encipher(b"to the card")
    card.verify_pin(PIN)
    assert card.decipher(cryptogram) == b"to the card"
    card.set_security_environment(Template.CONFIDENTIALITY, public_ref=SERVER_KEY_REFERENCE)
    to_server = card.encipher(b"to the server")
    assert server_key.decrypt(to_server, padding.PKCS1v15()) == b"to the server"
    assert card.transmit(card_command_encipher(bytes(246))).sw == 0x6700  # above modulus - 11


def card_command_encipher(data):
    from cardshield.protocol.command import Command

    return Command(0x00, 0x2A, 0x86, 0x80, data, ne=256)


def test_verify_digital_signature_with_server_and_card_keys(verified, server_key):
    message = b"server statement"
    digest = hashlib.sha256(message).digest()
    server_signature = server_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    verified.set_security_environment(Template.DIGITAL_SIGNATURE, public_ref=SERVER_KEY_REFERENCE)
    assert verified.verify_signature(digest, server_signature)
    assert not verified.verify_signature(hashlib.sha256(b"other").digest(), server_signature)
    assert not verified.verify_signature(digest, b"\xff" * 256)  # not below the modulus
    verified.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2, public_ref=2)
    own = verified.sign_hash(digest)
    assert verified.verify_signature(digest, own)


@pytest.mark.parametrize("data, sw", [("9020" + "00" * 32, 0x6A80),
                                      ("9010" + "00" * 16 + "9E0100", 0x6A80),
                                      ("9020" + "00" * 32 + "9E0100", 0x6A80)])
def test_verify_digital_signature_format_errors(card, transport, data, sw):
    assert exchange(transport, f"002A00A8{len(data) // 2:02X}{data}").sw == sw
