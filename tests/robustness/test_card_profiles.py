"""Card profiles of the strict virtual card (tools/cardshield/sim/profiles, docs/virtual-card.md):
memory and commit limits that a real card has and jcardsim does not. The SIM-like profile's
32 kB of persistent memory keeps JCSystem.getAvailableMemory (a short, at most 32767) exact,
so the FCI's memory figures show every byte the applet allocates."""

from __future__ import annotations

import dataclasses
import os
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cardshield.build.variants import SIM
from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.protocol import commands, encode_rsa_public_key, tlv
from cardshield.card.errors import CardError
from cardshield.config import load_applet_config
from cardshield.protocol.constants import Algorithm, AlgorithmSupport, SlotPolicy
from cardshield.sim.profiles import ProfileError, available_profiles, load_profile

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

PIN, PUK = "1234", "12345678"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_profile_names_its_limits_and_sources():
    assert {"lenient", "jcop4", "sim"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.protocol in ("T=0", "T=1") and profile.algorithms
        for algorithm in profile.algorithms:  # Java Card API constants, each with its source
            assert algorithm.api.split(".")[0] in ("Signature", "Cipher", "MessageDigest", "RandomData", "KeyBuilder")
            assert algorithm.source, (name, algorithm.api)
        # what the applet cannot do without (docs/applet.md): raw RSA to sign, PKCS#1, SHA-256, AES-128
        for api in ("Cipher.ALG_RSA_NOPAD", "Cipher.ALG_RSA_PKCS1", "MessageDigest.ALG_SHA_256",
                    "Cipher.ALG_AES_BLOCK_128_CBC_NOPAD", "Signature.ALG_RSA_SHA_256_PKCS1"):
            assert profile.has(api), (name, api)
        assert profile.has("KeyBuilder.TYPE_RSA_CRT_PRIVATE", 2048) and profile.has("KeyBuilder.TYPE_AES", 128)
        if profile.strict:  # every value a strict card enforces says where it comes from
            for value in ("eeprom_bytes", "transient_deselect_bytes", "transient_reset_bytes", "commit_capacity",
                          "protocol", "javacardx_apdu"):
                assert value in profile.sources or name == "jcop4" and value == "javacardx_apdu", (name, value)


def test_an_algorithm_that_is_no_api_constant_is_refused_naming_the_form(tmp_path, monkeypatch):
    from cardshield.sim import profiles

    text = (profiles.PROFILE_DIR / "sim.toml").read_text().replace('"Cipher.ALG_RSA_NOPAD"', '"RSA NOPAD"')
    (tmp_path / "sim.toml").write_text(text)
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    with pytest.raises(ProfileError, match="'RSA NOPAD' is not a Java Card API constant; write it as Signature.ALG_"):
        load_profile("sim")


def test_unknown_profile_is_a_usage_error_naming_the_choices():
    with pytest.raises(ProfileError, match="choose one of: jcop4, lenient, sim"):
        load_profile("nosuch")
    result = subprocess.run([os.path.join(ROOT, "cardshield"), "sim", "--profile", "nosuch"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2  # a usage error
    assert "argument --profile: unknown card profile 'nosuch'; choose one of: jcop4, lenient, sim" in result.stderr
    assert "Traceback" not in result.stderr


def _stack(tmp_path, profile, applets=None):
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack

    if applets is None:  # the build the profile links: the SIM build where javacardx.apdu is absent
        applets = default_applets(load_profile(profile).applet_variant)
    return VirtualCardStack(tmp_path, applets=applets, profile=profile)


@pytest.fixture(scope="module")
def sim_card(tmp_path_factory, real_reader):
    if real_reader is not None:
        pytest.skip("profiles are the virtual card's")
    with _stack(tmp_path_factory.mktemp("sim-profile"), "sim") as stack:
        transport = Transport(stack.info.reader, extended_length=False)
        transport.connect()
        yield stack, CardShield(transport)
        transport.close()


def _fresh(stack, card: CardShield) -> None:
    stack.pristine()
    card.transport.reconnect("reset")
    card.select()


def test_available_memory_is_truthful_no_growth_after_100_key_regenerations(sim_card):
    stack, card = sim_card
    _fresh(stack, card)
    before_perso = card.select().memory.persistent
    assert before_perso < 32767, "the SIM profile's EEPROM must keep getAvailableMemory exact"
    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    card.personalize_development_card(PIN, PUK, server_key_7f49=encode_rsa_public_key(server.public_key()),
                                      slots={2: (Algorithm.RSA_2048, SlotPolicy(0))})
    configured = card.select().memory.persistent
    # RSA-2048 (the SIM profile has no EC): the key objects were allocated at install, once per slot life
    assert configured == before_perso, "configuring an RSA-2048 slot must reuse the install-time key objects"
    for _ in range(100):
        card.verify_pin(PIN)
        card.generate_key(2)
    card.verify_pin(PIN)
    card.generate_key(1)
    assert card.select().memory.persistent == configured, "key regeneration grew the EEPROM use"


def test_the_applet_sees_exactly_the_sim_profiles_algorithms(sim_card):
    """The install-time probe (FCI tag 82) reports what the profile lists, no more: jcardsim
    implements EC, OAEP and RSA-4096, the SIM-like card does not."""
    stack, card = sim_card
    _fresh(stack, card)
    profile = load_profile("sim")
    expected = AlgorithmSupport.RSA_2048
    assert not profile.has("KeyBuilder.TYPE_EC_FP_PRIVATE") and not profile.has("Cipher.ALG_RSA_PKCS1_OAEP")
    assert not profile.has("KeyBuilder.TYPE_RSA_CRT_PRIVATE", 3072)
    assert card.select().algorithms == expected


def test_an_algorithm_the_profile_lacks_is_refused_at_slot_configuration(sim_card):
    stack, card = sim_card
    _fresh(stack, card)
    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(CardError) as refused:
        card.personalize_development_card(PIN, PUK, server_key_7f49=encode_rsa_public_key(server.public_key()),
                                          slots={2: (Algorithm.EC_P256, SlotPolicy(0))})
    assert refused.value.sw == 0x6A81, f"{refused.value.sw:04X}"


def test_allocation_beyond_the_eeprom_is_refused(tmp_path, real_reader):
    """An instance whose certificate areas (3 x 16384 bytes) exceed the SIM profile's 32 kB:
    install() meets SystemException NO_RESOURCE and the card refuses the instance."""
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import SimError

    if real_reader is not None:
        pytest.skip("profiles are the virtual card's")
    applets = [dataclasses.replace(a, parameters=tlv.encode(0x80, (16384).to_bytes(2, "big")))
               for a in default_applets(SIM)]
    with pytest.raises(SimError, match="NO_RESOURCE: persistent memory: .* bytes asked") as refused:
        with _stack(tmp_path, "sim", applets):
            pass
    print(str(refused.value).splitlines()[0])


def test_deleting_an_instance_gives_its_memory_back(sim_card):
    """GlobalPlatform DELETE of an applet instance frees the memory of its objects (JCRE
    3.0.4 chapter 11), and an install that does not fit is refused with 6A84 and undone: an
    issuer can replace the applet on a small card as often as it needs. Before the virtual card
    accounted memory per instance, the EEPROM of a deleted instance stayed taken: the second
    reinstall on the SIM profile was refused."""
    from applet_instances import LARGE_CERTIFICATE_AID, LARGE_CERTIFICATE_PARAMETERS, issuer
    from cardshield.gp.errors import GPError

    stack, card = sim_card
    _fresh(stack, card)
    free = card.select().memory
    config = load_applet_config()
    for _ in range(3):
        with issuer(card.transport) as manager:
            manager.delete(card.aid, related=False)
            manager.install_instance(config.package_aid, config.applet_aid, card.aid)
        card.transport.reconnect("reset")
        assert card.select().memory == free
    with issuer(card.transport) as manager:  # 4 kB certificate areas: about 19.6 kB beside 15.5 kB
        with pytest.raises(GPError) as refused:
            manager.install_instance(config.package_aid, config.applet_aid, LARGE_CERTIFICATE_AID,
                                     applet_data=LARGE_CERTIFICATE_PARAMETERS)
        assert refused.value.sw == 0x6A84, refused.value
        assert manager.registry().application(LARGE_CERTIFICATE_AID) is None
    card.transport.reconnect("reset")
    assert card.select().memory == free


def test_torn_slot_configuration_leaks_no_memory(sim_card):
    """Found by this test: the step allocated the slot's key pair and wrote slot.keyPair and
    slot.algorithm outside a transaction, so a tear at point 1 or 2 of 3 lost 914 bytes of
    EEPROM for the card's life. The applet now allocates the default pairs at install."""
    leaks = torn_step_leaks(sim_card, [], commands.personalize_slot(1, Algorithm.RSA_2048, SlotPolicy(0)))
    assert not leaks, "; ".join(leaks)


def test_torn_issue_leaks_no_memory(sim_card):
    """Found by this test: ISSUE allocated the key pairs of unconfigured slots outside a
    transaction, so a tear at points 1, 2, 4 or 5 of 6 lost 914 bytes each."""
    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    before = [commands.personalize_puk(PUK), commands.personalize_server_key(encode_rsa_public_key(server.public_key()))]
    leaks = torn_step_leaks(sim_card, before, commands.issue())
    assert not leaks, "; ".join(leaks)


def torn_step_leaks(sim_card, before: list, step_command) -> list[str]:
    """Tear `step_command` at each of its points on a fresh card given PIN + `before`, resume
    it, and compare the free EEPROM with an untorn run: what a tear lost for good."""
    from test_tearing_inside import _STACKS, send_all, short_apdus, torn_transmit

    stack, card = sim_card
    _STACKS[id(card.transport)] = stack
    step = short_apdus(step_command.apdu())

    def prepared() -> None:
        _fresh(stack, card)
        card.personalize_pin(PIN)
        for command in before:
            send_all(card, short_apdus(command.apdu()))

    prepared()
    points = send_all(card, step)[0]
    clean = card.select().memory.persistent
    leaks = []
    for point in range(1, points + 1):
        prepared()
        torn_transmit(card, step[0], point)
        send_all(card, step)  # resume: the card does not show the step applied
        after = card.select().memory.persistent
        if after != clean:
            leaks.append(f"tear point {point}/{points}: {clean - after} bytes lost")
    return leaks


def test_secured_personalization_fits_a_small_commit_buffer(tmp_path, real_reader):
    """Each secured step applies its data and the channel counter in one transaction: on the
    SIM profile's 512-byte commit buffer none may end in BUFFER_FULL (6A84). The largest, the
    server key, journals its 256-byte modulus."""
    from cardshield.perso import secure_messaging as sm
    from cardshield.sim.applets import default_applets
    from perso.instance import KEYED_AID, card_keys, keyed_instances

    if real_reader is not None:
        pytest.skip("profiles are the virtual card's")
    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    applets = default_applets(SIM)
    with _stack(tmp_path, "sim", keyed_instances(applets)) as stack:  # the keyed instance alone
        with Transport(stack.info.reader, extended_length=False) as transport:
            card = CardShield(transport, aid=KEYED_AID)
            card.select()
            plain = [commands.personalize_pin(PIN), commands.personalize_puk(PUK),
                     commands.personalize_server_key(encode_rsa_public_key(server.public_key())),
                     commands.personalize_slot(1, Algorithm.RSA_2048, SlotPolicy(0)), commands.issue()]
            for counter, command in enumerate(plain, start=1):
                response = transport.transmit(sm.wrap(card_keys(), command, counter).apdu())
                assert response.sw == 0x9000, f"{command.name}: {response.sw:04X}"


def test_sim_profile_speaks_t0_with_short_apdus_only(sim_card):
    """T=0 ATR and protocol; an extended APDU is refused (6700); a case-4 command's answer
    is announced with 61xx and fetched with GET RESPONSE (ISO 7816-3 12.2): the client's T=0
    path carries a whole issuance and payment, certificates in chains."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.x509.oid import NameOID

    from cardshield.protocol import Transaction
    from cardshield.protocol.transaction import signed_transaction_data

    stack, card = sim_card
    _fresh(stack, card)
    transport = card.transport
    assert transport.protocol_name == "T0" and transport.atr == bytes.fromhex("3B021450")
    select_extended = bytes.fromhex("00A4040000000A") + card.aid
    assert transport.exchange_raw(select_extended).sw == 0x6700
    assert transport.exchange(CommandAPDU(0x00, 0xA4, 0x04, 0x00, card.aid, ne=256)).sw1 == 0x61
    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    card.personalize_development_card(PIN, PUK, server_key_7f49=encode_rsa_public_key(server.public_key()),
                                      slots={1: (Algorithm.RSA_2048, SlotPolicy(0))})
    card.verify_pin(PIN)
    key = card.generate_key(1)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "T=0 card")])
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key).serial_number(7)
           .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.7"),
                                                     b"\x04\x82\x07\xd0" + b"\x07" * 2000), critical=False)
           .sign(server, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    card.verify_pin(PIN)
    card.write_certificate(1, der)
    assert card.read_certificate(1) == der
    card.verify_pin(PIN)
    tx = Transaction(amount=5, currency="EUR", payee="T=0 shop", order_ref="t0", nonce=os.urandom(16))
    result = card.sign_transaction(1, tx)
    card.read_public_key(1).verify(result.signature, signed_transaction_data(tx.tlvs(), result.counter),
                                   padding.PKCS1v15(), hashes.SHA256())
