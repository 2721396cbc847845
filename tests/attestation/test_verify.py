"""verify_attestation: the genuine statement passes; every forgery is refused with its code."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cardshield.attestation.ca import AttestationCA
from cardshield.attestation.verify import AttestationError, card_id_of, verify_attestation
from cardshield.protocol.keys import encode_rsa_public_key

from .conftest import CARD_ID, CHALLENGE


def _verify(response, cert, roots, *, challenge=CHALLENGE, key_do, slot=1, now=None):
    from datetime import datetime, timezone
    return verify_attestation(response, card_certificate=cert, trust_roots=roots, challenge=challenge,
                              public_key_do=key_do, slot=slot, now=now or datetime.now(timezone.utc))


def _refused(code, *args, **kwargs):
    with pytest.raises(AttestationError) as info:
        _verify(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value


def test_genuine_statement_verifies(attestation_ca, card, card_certificate):
    verified = _verify(card.attest(), card_certificate, [attestation_ca.certificate], key_do=card.slot_key_do)
    assert verified.statement.card_id == CARD_ID
    assert verified.statement.policy == 3 and verified.statement.slot == 1
    assert verified.card_certificate is card_certificate
    assert card_id_of(card_certificate) == CARD_ID


def test_naive_utc_now_is_accepted(attestation_ca, card, card_certificate):
    from datetime import datetime, timezone
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # the server's clock style
    _verify(card.attest(), card_certificate, [attestation_ca.certificate], key_do=card.slot_key_do, now=now)


def test_self_signed_card_certificate_is_refused(attestation_ca, card, rsa2048):
    """The attacker's software key, certified by itself under the genuine card's name."""
    attacker = rsa2048[2]
    name = card_certificate_name(attestation_ca, CARD_ID)
    forged = _self_signed(attacker, name, ca=False)
    response = card.attest(signer=attacker)
    _refused("attestation_untrusted", response, forged, [attestation_ca.certificate], key_do=card.slot_key_do)


def test_card_certificate_from_a_lookalike_ca_is_refused(attestation_ca, card, tmp_path):
    """An attacker CA with the same name as the issuer's: the signature on the card
    certificate does not verify with the configured root."""
    lookalike = AttestationCA.create(tmp_path / "lookalike", "Example Bank")
    assert lookalike.certificate.subject == attestation_ca.certificate.subject
    forged = lookalike.certify_card(CARD_ID, card.attestation_key.public_key(), (1, 0))
    _refused("attestation_untrusted", card.attest(), forged, [attestation_ca.certificate], key_do=card.slot_key_do)


def test_no_trust_roots_means_untrusted(card, card_certificate):
    _refused("attestation_untrusted", card.attest(), card_certificate, [], key_do=card.slot_key_do)


def test_ca_certificate_cannot_stand_for_a_card(attestation_ca, card):
    """A CA certificate named like a card, even one a careless operator put in the trust
    store, is not an end-entity attestation certificate."""
    rogue = _self_signed(card.attestation_key, card_certificate_name(attestation_ca, CARD_ID), ca=True)
    _refused("attestation_untrusted", card.attest(), rogue, [attestation_ca.certificate, rogue],
             key_do=card.slot_key_do)


def test_expired_and_not_yet_valid_certificates_are_refused(attestation_ca, card, card_certificate):
    after = card_certificate.not_valid_after_utc + timedelta(seconds=1)
    error = _refused("attestation_untrusted", card.attest(), card_certificate, [attestation_ca.certificate],
                     key_do=card.slot_key_do, now=after)
    assert "not now" in error.message
    before = card_certificate.not_valid_before_utc - timedelta(seconds=1)
    _refused("attestation_untrusted", card.attest(), card_certificate, [attestation_ca.certificate],
             key_do=card.slot_key_do, now=before)


def test_statement_signed_by_another_key_is_refused(attestation_ca, card, card_certificate, rsa2048):
    _refused("attestation_signature_invalid", card.attest(signer=rsa2048[2]), card_certificate,
             [attestation_ca.certificate], key_do=card.slot_key_do)


def test_edited_statement_is_refused(attestation_ca, card, card_certificate):
    """A relay turns the policy byte to 03 in a statement that said 00."""
    response = bytearray(card.attest(policy=0))
    index = response.index(bytes([0x84, 0x01, 0x00]))
    response[index + 2] = 0x03
    _refused("attestation_signature_invalid", bytes(response), card_certificate, [attestation_ca.certificate],
             key_do=card.slot_key_do)


def test_wrong_challenge_is_refused(attestation_ca, card, card_certificate):
    """A statement recorded for an earlier challenge, replayed."""
    old = card.attest(challenge=b"\x55" * 32)
    _refused("attestation_challenge_mismatch", old, card_certificate, [attestation_ca.certificate],
             key_do=card.slot_key_do)


def test_statement_about_another_key_is_refused(attestation_ca, card, card_certificate, rsa2048):
    """The card attests its slot key; the terminal presents the attacker's software key."""
    attacker_do = encode_rsa_public_key(rsa2048[2].public_key())
    _refused("attestation_key_mismatch", card.attest(), card_certificate, [attestation_ca.certificate],
             key_do=attacker_do)


def test_statement_from_another_card_id_is_refused(attestation_ca, card, card_certificate):
    _refused("attestation_card_mismatch", card.attest(card_id=bytes.fromhex("0A0B0C0D0E0F1011")),
             card_certificate, [attestation_ca.certificate], key_do=card.slot_key_do)


def test_statement_about_another_slot_is_refused(attestation_ca, card, card_certificate):
    _refused("attestation_slot_mismatch", card.attest(slot=2), card_certificate, [attestation_ca.certificate],
             key_do=card.slot_key_do, slot=1)


@pytest.mark.parametrize("response", [b"", b"\x70\x00", b"\x70\x03\x80\x01\x01\x9E\x00", b"\x00" * 40])
def test_malformed_responses_are_refused(attestation_ca, card_certificate, card, response):
    _refused("attestation_malformed", response, card_certificate, [attestation_ca.certificate],
             key_do=card.slot_key_do)


def test_statement_version_other_than_1_is_refused(attestation_ca, card, card_certificate):
    response = bytearray(card.attest())
    response[response.index(b"\x80\x01\x01") + 2] = 0x02
    _refused("attestation_malformed", bytes(response), card_certificate, [attestation_ca.certificate],
             key_do=card.slot_key_do)


# -- helpers -----------------------------------------------------------------------------

def card_certificate_name(ca: AttestationCA, card_id: bytes) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.organization),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, card_id.hex().upper()),
        x509.NameAttribute(NameOID.COMMON_NAME, f"CardShield card {card_id.hex().upper()}"),
    ])


def _self_signed(key: rsa.RSAPrivateKey, name: x509.Name, *, ca: bool) -> x509.Certificate:
    from datetime import datetime, timezone
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, ca, ca, False, False), critical=True)
            .sign(key, hashes.SHA256()))
