"""Card tearing: every state-changing operation is cut by a card reset at each of its APDU
boundaries (PC/SC reset disposition: warm reset, and unpower: a cold reset like pulling the
card), and the card must then hold the old state or the new one, never a mix, and still
complete the operation and a payment signature.

What a reset between APDUs cannot show: a tear *inside* one APDU. The virtual card runs each
APDU to completion before it looks at the reader again, and jcardsim's transactions are only a
depth counter (SimulatorRuntime.beginTransaction/abortTransaction/commitTransaction set and
clear a byte; nothing is journalled or rolled back). docs/security.md says what that leaves
to a real card.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.protocol import Transaction, encode_rsa_public_key, tlv
from cardshield.protocol.constants import CardFlags, Lifecycle
from cardshield.protocol.transaction import signed_transaction_data
from tearing_support import issued_card, short_apdus

pytestmark = [pytest.mark.card, pytest.mark.virtual_only, pytest.mark.slow]

PIN, PUK = "1234", "12345678"
DISPOSITIONS = ("reset", "unpower")


@pytest.fixture(scope="module")
def private_card(tmp_path_factory, real_reader):
    """A virtual card of these tests alone (they wipe and tear it)."""
    if real_reader is not None:
        pytest.skip("tearing needs the virtual card")
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack

    with VirtualCardStack(tmp_path_factory.mktemp("tear"), applets=default_applets()) as stack:
        yield stack


@pytest.fixture(scope="module")
def server_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issued(private_card, server_key):
    """An issued card: keys in both slots, a certificate in slot 1. Tests leave it usable."""
    yield from issued_card(private_card, server_key, PIN, PUK)


def run_torn(card: CardShield, steps: list[CommandAPDU], cut: int, disposition: str) -> list:
    """Send steps[:cut] one APDU each (GET RESPONSE counts as a step: it is sent only
    if the previous answer was 61xx), then reset the card and select the applet again."""
    answers = []
    for step in steps[:cut]:
        if step.ins == 0xC0 and (not answers or answers[-1].sw1 != 0x61):
            break
        answers.append(card.transport.exchange(step))
    card.transport.reconnect(disposition)
    card.select()
    return answers


def get_response() -> CommandAPDU:
    return CommandAPDU(0x00, 0xC0, 0x00, 0x00, ne=256)


def verify_pin() -> CommandAPDU:
    return CommandAPDU(0x00, 0x20, 0x00, 0x81, PIN.encode(), sensitive=True)


def certificate(subject_key, issuer_key, serial: int, size_hint: int = 0) -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tearing {serial}")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tearing CA")]))
        .public_key(subject_key).serial_number(serial)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
    )
    if size_hint:  # an opaque extension makes the certificate span many short APDUs
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.99999.7"), b"\x04\x82" + size_hint.to_bytes(2, "big")
            + bytes([serial & 0xFF]) * size_hint), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def pay(card: CardShield, slot: int = 1) -> int:
    """A normal payment signature that verifies; returns its counter."""
    import os

    card.select()
    card.verify_pin(PIN)
    tx = Transaction(amount=1999, currency="EUR", payee="Tearing test shop", order_ref="t", nonce=os.urandom(16))
    result = card.sign_transaction(slot, tx)
    card.read_public_key(slot).verify(result.signature, signed_transaction_data(tx.tlvs(), result.counter),
                                      padding.PKCS1v15(), hashes.SHA256())
    return result.counter


@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_certificate_update_is_old_or_new(issued, server_key, disposition):
    card = issued
    key = card.read_public_key(1)
    old = certificate(key, server_key, 1000, size_hint=2000)
    new = certificate(key, server_key, 2000, size_hint=2100)
    card.verify_pin(PIN)
    card.write_certificate(1, old)
    steps = [verify_pin(), *short_apdus(CommandAPDU(0x00, 0xDA, 0xC1, 0x01, new))]
    assert len(steps) >= 12
    for cut in range(len(steps)):  # cut == len(steps) would be the completed write
        run_torn(card, steps, cut, disposition)
        assert card.read_certificate(1) == old, f"torn after {cut} of {len(steps)} APDUs"
    run_torn(card, steps, len(steps), disposition)
    assert card.read_certificate(1) == new
    assert card.select().slots[1].certificate_length == len(new)
    pay(card)


@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_key_regeneration_is_old_key_with_certificate_or_new_key_without(issued, server_key, disposition):
    card = issued
    steps = [verify_pin(), CommandAPDU(0x00, 0x47, 0x80, 0x02, ne=256), get_response()]
    for cut in range(len(steps) + 1):
        before = card.read_public_key(2).public_numbers()
        card.verify_pin(PIN)
        cert = certificate(card.read_public_key(2), server_key, 3000 + cut)
        card.write_certificate(2, cert)
        run_torn(card, steps, cut, disposition)
        after = card.read_public_key(2).public_numbers()
        stored = card.read_certificate(2)
        if after == before:
            assert stored == cert, f"old key but certificate changed (cut {cut})"
        else:
            assert stored is None, f"new key still paired with the old certificate (cut {cut})"
        assert (after != before) == (cut >= 2), f"GENERATE ran iff it was sent (cut {cut})"
        # the slot's key works: decipher a cryptogram made with the public key read back
        card.verify_pin(PIN)
        message = b"tearing check %d" % cut
        assert card.decipher(card.read_public_key(2).encrypt(message, padding.PKCS1v15())) == message


@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_pin_change_is_old_or_new(issued, disposition):
    card = issued
    pins = ["1234", "864209", "1234"]
    for old, new in zip(pins, pins[1:]):
        data = (old.encode() + b"\xff" * (12 - len(old))) + (new.encode() + b"\xff" * (12 - len(new)))
        steps = [piece for piece in CommandAPDU(0x00, 0x24, 0x00, 0x81, data, sensitive=True).chain(10)]
        assert len(steps) == 3  # 10 + 10 + 4 bytes: two boundaries inside the command
        for cut in range(len(steps)):
            run_torn(card, steps, cut, disposition)
            card.verify_pin(old)  # the old PIN still works, the try counter is full again
            assert card.select().pin_tries == 3
        run_torn(card, steps, len(steps), disposition)
        card.verify_pin(new)
        with pytest.raises(Exception):
            card.verify_pin(old)
        card.verify_pin(new)
    pay(card)


@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_pin_unblock_is_old_or_new(issued, disposition):
    card = issued
    for _ in range(3):
        card.transport.transmit(CommandAPDU(0x00, 0x20, 0x00, 0x81, b"0000"))
    assert card.select().pin_tries == 0
    steps = CommandAPDU(0x00, 0x2C, 0x00, 0x81, (PUK + "5550").encode(), sensitive=True).chain(5)
    assert len(steps) == 3
    for cut in range(len(steps)):
        run_torn(card, steps, cut, disposition)
        fci = card.select()
        assert (fci.pin_tries, fci.puk_tries) == (0, 10), f"torn unblock changed the counters (cut {cut})"
    run_torn(card, steps, len(steps), disposition)
    fci = card.select()
    assert (fci.pin_tries, fci.puk_tries, fci.lifecycle) == (3, 10, Lifecycle.ISSUED)
    card.verify_pin("5550")
    card.change_pin("5550", PIN)
    pay(card)


@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_signature_counter_never_repeats(issued, disposition):
    """SIGN TRANSACTION in short APDUs (chained request, 61xx response): a tear leaves the
    counter unchanged or one higher (a gap), never a repeat, and every returned counter is
    signed."""
    import os

    card = issued
    seen = [pay(card)]
    for cut in range(5):
        tx = Transaction(amount=7, currency="EUR", payee="p" * 64, order_ref="o" * 64, nonce=os.urandom(32))
        command = CommandAPDU(0x80, 0x54, 0x00, 0x01, tx.tlvs(), ne=256)
        steps = [verify_pin(), *command.chain(100), get_response()]
        assert len(steps) == 4  # VERIFY, two chain pieces, GET RESPONSE
        before = card.select().counter
        answers = run_torn(card, steps, cut, disposition)
        after = card.select().counter
        sent_whole = cut >= 3
        assert after == before + (1 if sent_whole else 0), f"cut {cut}: counter {before} -> {after}"
        if cut == 4:  # the whole response arrived: its counter is the card's and it verifies
            data = answers[-2].data + answers[-1].data
            counter = int.from_bytes(data[2:6], "big")
            signature = tlv.decode(data)[1].value
            assert counter == after
            card.read_public_key(1).verify(signature, signed_transaction_data(tx.tlvs(), counter),
                                           padding.PKCS1v15(), hashes.SHA256())
        seen.append(pay(card))
        assert seen[-1] > max(seen[:-1]), "a counter was repeated"
        assert seen[-1] == after + 1


@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_personalization_steps_resume_after_every_tear(private_card, server_key, disposition):
    """Plain personalization of a development card (the secured bundle of docs/personalization.md
    replays the same steps): after a tear at any APDU the card shows a prefix of the steps, the
    server key is loaded whole or not at all, and delivery resumes to an issued card that works."""
    transport = Transport(private_card.info.reader, extended_length=False)
    transport.connect()
    try:
        card = CardShield(transport)
        server_public = encode_rsa_public_key(server_key.public_key())
        script = [
            CommandAPDU(0x80, 0xE0, 0x01, 0x00, PIN.encode(), sensitive=True),
            CommandAPDU(0x80, 0xE0, 0x02, 0x00, PUK.encode(), sensitive=True),
            *CommandAPDU(0x80, 0xE0, 0x04, 0x00, server_public).chain(),
            CommandAPDU(0x80, 0xE0, 0x03, 0x01, b"\x01\x00"),
            CommandAPDU(0x80, 0xE2, 0x00, 0x00),
        ]
        assert len(script) == 6  # the server key (269 bytes) takes two pieces
        flags_after = [CardFlags.PIN_SET, CardFlags.PUK_SET, None, CardFlags.SERVER_KEY_LOADED, None, None]
        for cut in range(len(script) + 1):
            private_card.pristine()
            transport.reconnect("reset")
            card.select()
            run_torn(card, script, cut, disposition)
            fci = card.select()
            expected = CardFlags(0)
            for flag in flags_after[:cut]:
                expected |= flag or CardFlags(0)
            assert fci.flags & 0x07 == expected, f"cut {cut}: flags {fci.flags!r}"
            assert fci.lifecycle == (Lifecycle.ISSUED if cut == len(script) else Lifecycle.PERSONALIZATION)
            # resume: the runner re-sends from the first step the card does not show
            resume_at = {0: 0, 1: 1, 2: 2, 3: 2, 4: 4, 5: 5, 6: 6}[cut]
            for step in script[resume_at:]:
                assert transport.exchange(step).sw == 0x9000, f"cut {cut}: resume failed at {step.trace()}"
        fci = card.select()
        assert fci.lifecycle == Lifecycle.ISSUED and fci.flags & 0x07 == 0x07
        card.verify_pin(PIN)
        card.generate_key(1)
        pay(card)
        # the server key went in whole: a request signed by the server verifies on the card
        card.set_security_environment(0xB6, public_ref=0x10)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"tearing")
        value = digest.finalize()
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        assert card.verify_signature(value, server_key.sign(value, padding.PKCS1v15(), Prehashed(hashes.SHA256())))
    finally:
        transport.close()

