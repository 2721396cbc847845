"""Key-quality checks: size, exponent and the ROCA fingerprint (CVE-2017-15361)."""
from __future__ import annotations

import math
import random

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cardshield.server.errors import ApiError
from cardshield.server.keyquality import (ROCA_MARKERS, ROCA_PRIMES, check_public_key,
                                          has_roca_fingerprint)

# First markers as published with the ROCA detection tool (crocs-muni/roca).
PUBLISHED_MARKERS = (6, 30, 126, 1026, 5658, 107286, 199410, 8388606, 536870910, 2147483646,
                     67109890, 2199023255550)


def _is_probable_prime(n: int, rng: random.Random) -> bool:
    if n < 4:
        return n in (2, 3)
    for p in ROCA_PRIMES + (2,):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(24):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _roca_prime(bits: int, rng: random.Random) -> int:
    """A prime with the vulnerable structure p = k*M + (65537^a mod M) (Nemec et al. 2017)."""
    m = math.prod(ROCA_PRIMES) * 2
    low = math.isqrt(1 << (2 * bits - 1)) // m + 1  # so that p*q has exactly 2*bits bits
    while True:
        k = rng.randrange(low, (1 << bits) // m)
        p = k * m + pow(65537, rng.randrange(1, 1 << 20), m)
        if p.bit_length() == bits and _is_probable_prime(p, rng):
            return p


def test_markers_match_published_values():
    assert ROCA_MARKERS[:len(PUBLISHED_MARKERS)] == PUBLISHED_MARKERS


def test_constructed_roca_modulus_is_refused():
    rng = random.Random(2017)
    n = _roca_prime(1024, rng) * _roca_prime(1024, rng)
    assert n.bit_length() == 2048
    assert has_roca_fingerprint(n)
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    with pytest.raises(ApiError) as err:
        check_public_key(key)
    assert err.value.code == "weak_key" and "ROCA" in err.value.message


def test_generated_keys_pass():
    for _ in range(3):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        assert not has_roca_fingerprint(key.public_numbers().n)
        check_public_key(key)


def test_small_modulus_and_wrong_exponent_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(ApiError, match="at least 2048"):
        check_public_key(small)
    e3 = rsa.generate_private_key(public_exponent=3, key_size=2048).public_key()
    with pytest.raises(ApiError, match="65537"):
        check_public_key(e3)
