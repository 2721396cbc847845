"""The SIM build of the applet (build/applet-sim, CAP build/cardshield-sim.cap: no
javacardx.apdu, short APDUs only) installed on its own virtual card and driven through a
short-APDU transport: everything longer than 255 bytes goes by command chaining, every
answer longer than 256 bytes by 61xx and GET RESPONSE.

The representative subset of the applet suite run here: development personalization
(PIN, PUK, the 263-byte server key by chaining, slot configuration, ISSUE); key generation
and READ PUBLIC KEY (265 bytes: GET RESPONSE); SIGN TRANSACTION with the server's 8E
signature (chained) verified with pyca/cryptography, counter included; a 1.5 kB
certificate written by chained PUT DATA and read back by READ BINARY; COMPUTE DIGITAL
SIGNATURE and DECIPHER (257 bytes of data) on slot 02; and an extended APDU refused.
The card is the strict SIM profile (tools/cardshield/sim/profiles/sim.toml): T=0, short
APDUs only, no javacardx.apdu for the applet's classes, a 512-byte commit buffer, 32 kB of
persistent memory; so the SIM build is shown to link and work where the default build is
refused at load (test_the_default_build_is_refused_on_a_card_without_javacardx_apdu).
These run whatever the session's profile; the whole applet suite runs on the SIM build with
`--card-profile sim` (tests/robustness/test_applet_suite_on_strict_card.py).
"""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from applet_support import exchange, make_certificate
from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.protocol import Transaction, commands, encode_rsa_public_key, request_data, signed_transaction_data
from cardshield.protocol.constants import Algorithm, SlotPolicy, Template

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

PIN, PUK = "1234", "12345678"


@pytest.fixture(scope="module")
def sim_build_card(real_reader, tmp_path_factory):
    """A virtual card holding only the SIM build, personalized, keys in both slots."""
    if real_reader is not None:
        pytest.skip("the SIM build is exercised on the virtual card")
    from cardshield.build.variants import SIM
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack

    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with VirtualCardStack(tmp_path_factory.mktemp("sim-build"), applets=default_applets(SIM), profile="sim") as stack:
        with Transport(stack.info.reader, extended_length=False) as transport:
            card = CardShield(transport)
            card.personalize_development_card(
                PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()),
                slots={1: (Algorithm.RSA_2048, SlotPolicy.SERVER_SIGNED_REQUESTS), 2: (Algorithm.RSA_2048, SlotPolicy(0))})
            card.verify_pin(PIN)
            keys = {slot: card.generate_key(slot) for slot in (1, 2)}
            yield card, keys, server_key


def test_the_sim_build_answers_long_keys_through_get_response(sim_build_card):
    card, keys, _ = sim_build_card
    card.select()
    first = exchange(card.transport, "00 47 81 01 00")
    assert len(first.data) == 256 and first.sw1 == 0x61  # 265 bytes: the rest by GET RESPONSE
    assert card.read_public_key(1) == keys[1]


def test_the_sim_build_signs_a_server_authorised_payment(sim_build_card):
    card, keys, server_key = sim_build_card
    card.select()
    counter = card.select().counter
    card.verify_pin(PIN)
    tx = Transaction(amount=1999, currency="EUR", payee="SIM Shop", order_ref="SIM-1", nonce=os.urandom(16))
    authorisation = server_key.sign(request_data(tx.tlvs()), padding.PKCS1v15(), hashes.SHA256())
    signed = card.sign_transaction(1, tx, authorisation)  # 8E makes the data longer than 255: chained
    assert signed.counter == counter + 1
    keys[1].verify(signed.signature, signed_transaction_data(tx.tlvs(), signed.counter), padding.PKCS1v15(),
                   hashes.SHA256())


def test_the_sim_build_stores_a_certificate_written_by_chaining(sim_build_card):
    card, keys, _ = sim_build_card
    ca = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = make_certificate(keys[2], ca, filler=600)
    card.select()
    card.verify_pin(PIN)
    card.write_certificate(2, der)
    assert card.read_certificate(2) == der


def test_the_sim_build_signs_hashes_and_deciphers_on_slot_02(sim_build_card):
    card, keys, _ = sim_build_card
    card.select()
    card.verify_pin(PIN)
    card.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    digest = hashlib.sha256(b"SIM build document").digest()
    signature = card.sign_hash(digest)
    keys[2].verify(signature, b"SIM build document", padding.PKCS1v15(), hashes.SHA256())
    secret = os.urandom(32)
    cryptogram = keys[2].encrypt(secret, padding.PKCS1v15())
    card.verify_pin(PIN)
    assert card.decipher(cryptogram) == secret  # 00 || 256 bytes: chained


def test_the_sim_build_refuses_an_extended_apdu(sim_build_card):
    card, _, _ = sim_build_card
    card.select()
    # READ PUBLIC KEY with an extended Le, sent as is (the client would refuse to on T=0)
    answer = card.transport.exchange_raw(bytes.fromhex("00 47 81 01 00 01 09"))
    assert answer.sw == 0x6700 and answer.data == b""


def test_the_default_build_is_refused_on_a_card_without_javacardx_apdu(real_reader, tmp_path):
    """Like a SIM card's link-time failure: the default build (ExtendedLength) does not load."""
    if real_reader is not None:
        pytest.skip("the profiles are the virtual card's")
    from cardshield.build.variants import DEFAULT
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import SimError, VirtualCardStack

    stack = VirtualCardStack(tmp_path / "default-on-sim", applets=default_applets(DEFAULT), profile="sim")
    with pytest.raises(SimError) as refused:
        stack.start()
    message = str(refused.value)
    assert "javacardx.apdu.ExtendedLength" in message and "has no javacardx.apdu" in message
    assert "applet/variants/sim" in message


def test_the_sim_profile_takes_the_sim_build():
    from cardshield.build.variants import DEFAULT, SIM
    from cardshield.sim.profiles import load_profile

    assert load_profile("sim").applet_variant == SIM
    assert load_profile("jcop4").applet_variant == DEFAULT and load_profile("lenient").applet_variant == DEFAULT
