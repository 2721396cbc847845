"""Key generation, READ PUBLIC KEY and COMPUTE DIGITAL SIGNATURE over a hash (patent steps
502-509), signatures checked with pyca/cryptography. Bare-hash signing is the
authentication slot's (02): the payment slot refuses it (test_applet_payment_slot.py)."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from applet_support import PIN, exchange
from cardshield.card.errors import CardError
from cardshield.protocol import Template, parse_public_key

pytestmark = pytest.mark.card

DIGEST_INFO_HEADERS = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def test_public_key_is_readable_without_pin_and_matches_generation(card, reference):
    for slot in (1, 2):
        key = card.read_public_key(slot)
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
        assert key.public_numbers() == reference.public_keys[slot].public_numbers()
    assert card.read_public_key(1).public_numbers() != card.read_public_key(2).public_numbers()


@pytest.fixture
def slot2(verified):
    """The reference card, PIN verified, slot 02 selected for signing."""
    verified.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    return verified


def test_sign_bare_sha256_hash(slot2, reference):
    message = b"login challenge 1234"
    signature = slot2.sign_hash(hashlib.sha256(message).digest())
    reference.public_keys[2].verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("name", ["sha256", "sha384", "sha512"])
def test_sign_whole_digest_info(slot2, reference, name):
    message = b"digest info " + name.encode()
    digest = hashlib.new(name, message).digest()
    signature = slot2.sign_hash(DIGEST_INFO_HEADERS[name] + digest)
    reference.public_keys[2].verify(signature, message, padding.PKCS1v15(), HASHES[name])


def test_security_environment_selects_the_signing_slot(verified, reference):
    verified.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    signature = verified.sign_hash(hashlib.sha256(b"x").digest())
    reference.public_keys[2].verify(signature, b"x", padding.PKCS1v15(), hashes.SHA256())
    verified.select()  # the environment ends with the selection: back to slot 01, which refuses
    verified.verify_pin(PIN)
    with pytest.raises(CardError) as refused:
        verified.sign_hash(hashlib.sha256(b"x").digest())
    assert refused.value.sw == 0x6985


@pytest.mark.parametrize(
    "apdu, sw",
    [
        ("002A9E9A1F" + "00" * 31, 0x6700),  # 31 bytes: neither a hash nor a DigestInfo
        ("002A9E9A33" + "3031300d060960864801650304020205000420" + "00" * 32, 0x6A80),  # wrong OID
        ("002A9E9B20" + "00" * 32, 0x6A86),
        ("002241B603840103", 0x6A88),  # no slot 3
        ("002241B603830111", 0x6A88),
        ("002241B603850101", 0x6A80),  # unknown DO
        ("002241B60484020101", 0x6A80),
        ("002241B703840101", 0x6A86),
    ],
)
def test_signature_and_environment_errors(slot2, transport, apdu, sw):
    assert exchange(transport, apdu).sw == sw


def test_signing_needs_the_pin(card):
    card.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    with pytest.raises(CardError) as error:
        card.sign_hash(bytes(32))
    assert error.value.sw == 0x6982
    with pytest.raises(CardError) as error:
        card.generate_key(1)
    assert error.value.sw == 0x6982


@pytest.mark.parametrize("apdu, sw", [("0047800300", 0x6A86), ("0047820100", 0x6A86)])
def test_generate_errors(verified, transport, apdu, sw):
    assert exchange(transport, apdu).sw == sw


def test_generate_with_data(verified, transport, reference):
    """GENERATE takes no data: on T=1 a data byte gets 6700 and nothing changes. On T=0 the
    fifth header byte is Lc or Le and only the command tells which (docs/apdu.md, ISO/IEC
    7816-3 12.2): for GENERATE it is Le, the card never asks the reader for the byte, and the
    command is an ordinary GENERATE with Le 01: a new key, announced with 61xx."""
    answer = exchange(transport, "004780010101")
    if transport.protocol_name == "T1":
        assert answer.sw == 0x6700
        assert verified.read_public_key(1).public_numbers() == reference.public_keys[1].public_numbers()
        return
    encoded = answer.data
    while answer.sw1 == 0x61:
        answer = exchange(transport, f"00C00000{answer.sw2:02X}")
        encoded += answer.data
    assert answer.sw == 0x9000
    generated = parse_public_key(encoded)
    assert generated.public_numbers() != reference.public_keys[1].public_numbers()
    assert verified.read_public_key(1).public_numbers() == generated.public_numbers()
    reference.public_keys[1] = generated


def test_regeneration_replaces_the_key_in_place_without_memory_growth(verified, reference):
    """Keys are regenerated in the objects allocated at personalization. The FCI reports
    JCSystem.getAvailableMemory: on a real card (--reader) it must not move; jcardsim
    reports a constant, so there the static check of test_applet_source.py carries it."""
    before = verified.select().memory
    keys = []
    for _ in range(3):
        verified.verify_pin(PIN)
        keys.append(verified.generate_key(2))
    assert len({key.public_numbers().n for key in keys}) == 3
    assert verified.select().memory == before
    assert verified.read_public_key(2).public_numbers() == keys[-1].public_numbers()
    reference.public_keys[2] = keys[-1]
