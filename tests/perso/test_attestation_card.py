"""Card attestation over PC/SC on the keyed virtual card (docs/apdu.md: PERSONALIZE P1=05
and P1=06, ATTEST, EF C1 0A): the attestation key is generated only through the issuer's
secure channel and comes back under the receipt MAC, the certificate the issuer writes must
certify exactly that key and replaces the old one only whole, and the statement ATTEST signs
binds the slot key, its policy, the card and the server's challenge. Written as the attacks
(plain generation, a certificate for another key, a torn or out-of-order write, the
attestation key used by another command)."""
from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.perso import secure_messaging as sm
from cardshield.protocol import commands, encode_rsa_public_key, parse_certificate_fcp, tlv
from cardshield.protocol.attestation import (attest_command, encode_statement, parse_attest_response,
                                             public_key_digest)
from cardshield.protocol.command import Command
from cardshield.protocol.constants import Algorithm, Lifecycle, SlotPolicy, Template
from cardshield.protocol.keys import parse_public_key

from . import vectors as v
from .instance import KEYED_AID, PIN, PUK, card_keys

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

SERVER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer:
    """The issuer's side of one card's secure channel: numbered secured commands."""

    def __init__(self, link):
        self.link = link
        self.counter = 0

    def send(self, plain: Command):
        self.counter += 1
        return self.link.transmit(sm.wrap(card_keys(), plain, self.counter).apdu())

    def ok(self, plain: Command) -> bytes:
        answer = self.send(plain)
        assert answer.sw == 0x9000, f"{plain.name}: {answer.sw:04X}"
        return answer.data

    def attestation_key(self) -> tuple[bytes, bytes]:
        """P1=05: (7F49 public key, receipt), receipt already checked."""
        data = self.ok(commands.personalize_attestation_key())
        key_do, receipt = data[:-8], data[-8:]
        assert receipt == sm.receipt(card_keys(), 0xE0, 0x05, 0x00, self.counter, response_data=key_do)
        return key_do, receipt

    def certificate(self, der: bytes) -> list[int]:
        return [self.send(part).sw for part in commands.personalize_attestation_certificate(der)]


def certify(public_key, serial: int = 1, filler: int = 0) -> bytes:
    """An attestation certificate for public_key (the real CA lives in cardshield.attestation)."""
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, v.CARD_ID.hex().upper())]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test attestation CA")]))
               .public_key(public_key).serial_number(serial)
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30)))
    if filler:
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"), b"\x04\x82" + filler.to_bytes(2, "big") + b"\x5a" * filler),
            critical=False)
    return builder.sign(CA_KEY, hashes.SHA256()).public_bytes(Encoding.DER)


def read_attestation_certificate(link) -> tuple[int, bytes, object]:
    """(SELECT status, content, FCP) of EF C1 0A."""
    selected = link.transmit(commands.select_attestation_certificate(fcp=True).apdu())
    if selected.sw != 0x9000:
        return selected.sw, b"", None
    fcp = parse_certificate_fcp(selected.data)
    content = b""
    while len(content) < fcp.size:
        answer = link.transmit(commands.read_binary(len(content)).apdu())
        assert answer.sw == 0x9000
        content += answer.data
    return selected.sw, content, fcp


@pytest.fixture
def issuer(perso_card):
    issuer = Issuer(perso_card)
    issuer.ok(commands.personalize_pin(PIN))
    issuer.ok(commands.personalize_puk(PUK))
    issuer.ok(commands.personalize_server_key(encode_rsa_public_key(SERVER_KEY.public_key())))
    return issuer


@pytest.fixture
def attested(issuer):
    """An issued keyed card with an attestation key and certificate, a key in slot 1."""
    key_do, _ = issuer.attestation_key()
    assert set(issuer.certificate(certify(parse_public_key(key_do)))) == {0x9000}
    issuer.ok(commands.issue())
    card = CardShield(issuer.link, aid=KEYED_AID)
    card.select()
    card.verify_pin(PIN)
    card.generate_key(1)
    return card, parse_public_key(key_do)


def test_plain_attestation_key_generation_is_refused_on_a_keyed_card(perso_card):
    assert perso_card.transmit(commands.personalize_attestation_key().apdu()).sw == 0x6982


def test_attestation_key_comes_back_under_the_receipt_mac(issuer):
    key_do, receipt = issuer.attestation_key()
    key = parse_public_key(key_do)
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    # a relay that swaps in its own key cannot make the receipt match
    tampered = bytearray(key_do)
    tampered[100] ^= 0x01
    assert sm.receipt(card_keys(), 0xE0, 0x05, 0x00, issuer.counter, response_data=bytes(tampered)) != receipt
    # a repeated P1=05 regenerates in place: a new key, the old certificate gone
    assert set(issuer.certificate(certify(key))) == {0x9000}
    again, _ = issuer.attestation_key()
    assert again != key_do
    assert read_attestation_certificate(issuer.link)[0] == 0x6A82


def test_certificate_is_written_in_parts_and_read_with_its_reference(issuer):
    key_do, _ = issuer.attestation_key()
    der = certify(parse_public_key(key_do), filler=300)
    assert len(der) > 2 * 192
    assert issuer.certificate(der) == [0x9000] * len(commands.personalize_attestation_certificate(der))
    sw, content, fcp = read_attestation_certificate(issuer.link)
    assert (sw, content) == (0x9000, der)
    assert fcp.file_id == b"\xc1\x0a" and fcp.size == len(der)
    assert fcp.sha256 == hashlib.sha256(der).digest()


def test_certificate_for_another_key_or_not_der_is_refused_and_the_old_one_kept(issuer):
    key_do, _ = issuer.attestation_key()
    good = certify(parse_public_key(key_do))
    assert set(issuer.certificate(good)) == {0x9000}
    counter = issuer.counter
    other = certify(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), serial=2)
    assert issuer.certificate(other)[-1] == 0x6A80
    assert issuer.certificate(good[:-1] + b"\x00\x00")[-1] == 0x6A80      # not one DER SEQUENCE
    assert read_attestation_certificate(issuer.link)[1] == good
    assert issuer.counter > counter  # the refused parts were real, authentic commands


def test_certificate_parts_out_of_order_or_too_large_are_refused(issuer):
    der = b"\x30\x03\x02\x01\x01"
    # no attestation key yet: nothing to certify
    assert issuer.certificate(der) == [0x6A88]
    key_do, _ = issuer.attestation_key()
    # a next part without a first part
    assert issuer.send(Command(0x80, 0xE0, 0x06, 0x81, der)).sw == 0x6985
    # P2 other than 00/01 (+80)
    assert issuer.send(Command(0x80, 0xE0, 0x06, 0x02, der)).sw == 0x6A86
    # larger than the certificate capacity
    parts = commands.personalize_attestation_certificate(bytes(3072 + 1))
    answers = [issuer.send(part).sw for part in parts]
    assert answers[-1] == 0x6A84 and set(answers[:-1]) == {0x9000}
    assert read_attestation_certificate(issuer.link)[0] == 0x6A82


def test_a_torn_certificate_write_keeps_the_old_certificate(issuer, virtual_card):
    key_do, _ = issuer.attestation_key()
    key = parse_public_key(key_do)
    old = certify(key, serial=1)
    assert set(issuer.certificate(old)) == {0x9000}
    new = certify(key, serial=2, filler=300)
    parts = commands.personalize_attestation_certificate(new)
    assert issuer.send(parts[0]).sw == 0x9000
    assert issuer.send(parts[1]).sw == 0x9000
    issuer.link.reconnect("unpower")  # the card is pulled between two parts
    issuer.link.transmit(commands.select_applet(KEYED_AID).apdu())
    assert read_attestation_certificate(issuer.link)[1] == old
    # the issuer starts the write again from its first part
    assert [issuer.send(part).sw for part in parts] == [0x9000] * len(parts)
    assert read_attestation_certificate(issuer.link)[1] == new


def test_attest_statement_verifies_and_binds_slot_key_policy_card_and_challenge(attested):
    card, attestation_key = attested
    challenge = os.urandom(32)
    answer = card.transmit(attest_command(1, challenge))
    assert answer.sw == 0x9000
    statement, signature = parse_attest_response(answer.data)
    attestation_key.verify(signature, b"CSATT1" + statement.encoded, padding.PKCS1v15(), hashes.SHA256())
    fci = card.select()
    public_key_do = card.transmit(commands.read_public_key(1)).data
    assert statement.version == 1
    assert statement.card_id == v.CARD_ID
    assert statement.applet_version == fci.version
    assert (statement.slot, statement.algorithm) == (1, Algorithm.RSA_2048)
    assert statement.policy == SlotPolicy.PIN_PER_SIGNATURE | SlotPolicy.SERVER_SIGNED_REQUESTS
    assert statement.public_key_sha256 == public_key_digest(public_key_do)
    assert statement.challenge == challenge
    assert statement.counter == fci.counter
    # byte for byte what cardshield.protocol encodes (the SoftCard's statement)
    assert statement.encoded == encode_statement(
        card_id=v.CARD_ID, applet_version=fci.version, slot=1, algorithm=Algorithm.RSA_2048,
        policy=statement.policy, public_key_do=public_key_do, challenge=challenge, counter=fci.counter)
    # another challenge gives another statement: a replayed one does not answer it; the
    # longest challenge takes the statement past 127 bytes (70 81 L)
    for size in (16, 64):
        fresh = os.urandom(size)
        other, other_signature = parse_attest_response(card.transmit(attest_command(1, fresh)).data)
        assert other.challenge == fresh and other.encoded[1] == (0x81 if size == 64 else len(other.encoded) - 2)
        attestation_key.verify(other_signature, other.signed_data(), padding.PKCS1v15(), hashes.SHA256())
    # the signature is over "CSATT1" || statement: without the domain tag it does not verify
    with pytest.raises(InvalidSignature):
        attestation_key.verify(signature, statement.encoded, padding.PKCS1v15(), hashes.SHA256())


def test_attest_refusals(attested, issuer):
    card, _ = attested
    assert card.transmit(attest_command(2, bytes(16))).sw == 0x6A88           # slot without a key
    cases = {
        "challenge 15 bytes": (Command(0x80, 0x58, 0x00, 0x01, bytes(15), ne=256), 0x6700),
        "challenge 65 bytes": (Command(0x80, 0x58, 0x00, 0x01, bytes(65), ne=256), 0x6700),
        "P1 01": (Command(0x80, 0x58, 0x01, 0x01, bytes(16), ne=256), 0x6A86),
        "slot 03": (Command(0x80, 0x58, 0x00, 0x03, bytes(16), ne=256), 0x6A86),
        "slot 0A (the attestation key)": (Command(0x80, 0x58, 0x00, 0x0A, bytes(16), ne=256), 0x6A86),
    }
    for name, (command, sw) in cases.items():
        assert card.transmit(command).sw == sw, name
    # after ISSUE the attestation key and its certificate can no longer change: the key set
    # that would authenticate the step was erased at ISSUE (6A88, key version not found)
    assert issuer.send(commands.personalize_attestation_key()).sw == 0x6A88
    assert issuer.send(commands.personalize_attestation_certificate(b"\x30\x00")[0]).sw == 0x6A88


def test_attest_before_issue_is_refused(issuer):
    issuer.attestation_key()
    card = CardShield(issuer.link, aid=KEYED_AID)
    assert card.transmit(attest_command(1, bytes(16))).sw == 0x6985


def test_the_attestation_key_is_unusable_by_any_other_command(attested):
    """No key reference reaches it: MSE names slots 01/02 and the server key 10 only, the
    signing commands take slot 01/02 in P2. Whatever the attacker signs, it does not verify
    under the attestation key."""
    card, attestation_key = attested
    for reference in (0x00, 0x03, 0x05, 0x06, 0x0A, 0x10, 0xF9):
        for template in (Template.DIGITAL_SIGNATURE, Template.CONFIDENTIALITY):
            data = tlv.encode(0x84, bytes([reference]))
            answer = card.transmit(Command(0x00, 0x22, 0x41, template, data))
            assert answer.sw == 0x6A88, (reference, template)
    challenge = bytes(range(32))
    for ins in (0x54, 0x56):
        assert card.transmit(Command(0x80, ins, 0x00, 0x0A, challenge, ne=256)).sw == 0x6A86
    card.verify_pin(PIN)
    card.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
    digest = hashlib.sha256(b"CSATT1" + b"\x70\x00").digest()
    answer = card.transmit(commands.compute_signature(digest))
    if answer.sw == 0x9000:
        with pytest.raises(InvalidSignature):
            attestation_key.verify(answer.data, b"CSATT1\x70\x00", padding.PKCS1v15(), hashes.SHA256())


def test_a_card_without_attestation_key_answers_6a88(issuer):
    issuer.ok(commands.issue())
    card = CardShield(issuer.link, aid=KEYED_AID)
    card.select()
    card.verify_pin(PIN)
    card.generate_key(1)
    assert card.transmit(attest_command(1, bytes(16))).sw == 0x6A88
    assert card.select().lifecycle == Lifecycle.ISSUED
