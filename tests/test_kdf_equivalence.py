"""The hand-written SP 800-108 counter-mode KDFs give what cryptography's KBKDFCMAC gives for
the same construction, over many random inputs: GP SCP03 (Amendment D 6.2.2, the counter
in the middle of the fixed data), GPPro's kdf3 card-key diversification, and the
personalization keys (label || 00 || context || L after the counter). And the MAC checks
accept exactly the right tag, full or truncated."""

import random

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from cardshield.gp import crypto, keys as gp_keys, scp03
from cardshield.perso import keys as perso_keys

RNG = random.Random(20261204)
CASES = 150


def _kbkdf(key: bytes, length: int, fixed: bytes, location=CounterLocation.BeforeFixed, break_location=None):
    return KBKDFCMAC(algorithms.AES, Mode.CounterMode, length, rlen=1, llen=None, location=location,
                     label=None, context=None, fixed=fixed, break_location=break_location).derive(key)


@pytest.mark.parametrize("case", range(CASES))
def test_scp03_kdf_equals_kbkdf_with_the_counter_after_the_length(case):
    key = RNG.randbytes(RNG.choice((16, 24, 32)))
    constant = RNG.choice((0x00, 0x01, 0x02, 0x04, 0x06, 0x07))
    bits = RNG.choice((64, 128, 192, 256))
    context = RNG.randbytes(RNG.choice((16, 8 + 5, 24, 3 + 16)))
    head = bytes(11) + bytes([constant, 0]) + bits.to_bytes(2, "big")  # label || 00 || L
    expected = _kbkdf(key, bits // 8, head + context, CounterLocation.MiddleFixed, break_location=len(head))
    assert scp03.kdf(key, constant, context, bits) == expected


@pytest.mark.parametrize("case", range(40))
def test_kdf3_diversification_equals_kbkdf(case):
    master = RNG.randbytes(RNG.choice((16, 24, 32)))
    kdd = RNG.randbytes(10)
    key_type = RNG.choice((1, 2, 3))
    assert gp_keys._kdf3(master, kdd, key_type) == _kbkdf(master, len(master), bytes([0, 0, 0, key_type, 0]) + kdd)


@pytest.mark.parametrize("case", range(CASES))
def test_personalization_diversification_equals_kbkdf_with_label_and_context(case):
    master = RNG.randbytes(16)
    version = RNG.randint(1, 255)
    card_id = RNG.randbytes(RNG.randint(perso_keys.CARD_ID_MIN, perso_keys.CARD_ID_MAX))
    derived = perso_keys.diversify(perso_keys.software_master(master), version, card_id)
    for label, key in ((perso_keys.LABEL_ENC, derived.enc), (perso_keys.LABEL_MAC, derived.mac)):
        reference = KBKDFCMAC(algorithms.AES, Mode.CounterMode, 16, rlen=1, llen=2,
                              location=CounterLocation.BeforeFixed, label=label,
                              context=bytes([version]) + card_id, fixed=None).derive(master)
        assert key == reference


@pytest.mark.parametrize("length", [16, 8, 4])
def test_cmac_verification_accepts_the_tag_and_refuses_any_other(length):
    key, data = RNG.randbytes(16), RNG.randbytes(37)
    tag = crypto.aes_cmac(key, data)[:length]
    assert crypto.aes_cmac_verify(key, data, tag)
    for position in range(length):
        forged = bytearray(tag)
        forged[position] ^= 0x01
        assert not crypto.aes_cmac_verify(key, data, bytes(forged))
    assert not crypto.aes_cmac_verify(key, data + b"\x00", tag)
    assert not crypto.aes_cmac_verify(key, data, tag[:3])  # too short to mean anything
    assert not crypto.aes_cmac_verify(key, data, b"")
