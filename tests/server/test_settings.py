"""Server settings from the environment: numbers parsed with one helper whose refusal names
the variable, what it must be, its unit and an example, and stops before anything runs."""
from __future__ import annotations

import pytest

from cardshield.server.settings import Settings, load_settings


def test_unset_or_empty_numbers_keep_their_defaults(monkeypatch):
    monkeypatch.setenv("CARDSHIELD_PAYMENT_TTL", "")
    monkeypatch.delenv("CARDSHIELD_TOKEN_CACHE_SECONDS", raising=False)
    settings = load_settings()
    assert settings.payment_ttl_seconds == Settings().payment_ttl_seconds == 300
    assert settings.token_cache_seconds == 5.0


def test_numbers_are_read_with_their_type(monkeypatch):
    monkeypatch.setenv("CARDSHIELD_PAYMENT_TTL", " 120 ")
    monkeypatch.setenv("CARDSHIELD_TOKEN_CACHE_SECONDS", "0.5")
    monkeypatch.setenv("CARDSHIELD_SLOT2_REQUIRED_POLICY", "1")
    settings = load_settings()
    assert settings.payment_ttl_seconds == 120 and isinstance(settings.payment_ttl_seconds, int)
    assert settings.token_cache_seconds == 0.5
    assert settings.required_slot_policy == {1: 3, 2: 1}


@pytest.mark.parametrize("name, raw, expected", [
    ("CARDSHIELD_PAYMENT_TTL", "5m",
     "CARDSHIELD_PAYMENT_TTL='5m' is not a whole number; set it to seconds, e.g. 300"),
    ("CARDSHIELD_PAYMENT_TTL", "2.5",
     "CARDSHIELD_PAYMENT_TTL='2.5' is not a whole number; set it to seconds, e.g. 300"),
    ("CARDSHIELD_MAX_BODY_BYTES", "64k",
     "CARDSHIELD_MAX_BODY_BYTES='64k' is not a whole number; set it to bytes, e.g. 65536"),
    ("CARDSHIELD_CERT_VALIDITY_DAYS", "two years",
     "CARDSHIELD_CERT_VALIDITY_DAYS='two years' is not a whole number; set it to days, e.g. 730"),
    ("CARDSHIELD_TOKEN_CACHE_SECONDS", "five",
     "CARDSHIELD_TOKEN_CACHE_SECONDS='five' is not a finite number; set it to seconds, e.g. 5.0"),
    ("CARDSHIELD_TOKEN_CACHE_SECONDS", "nan",
     "CARDSHIELD_TOKEN_CACHE_SECONDS='nan' is not a finite number; set it to seconds, e.g. 5.0"),
    ("CARDSHIELD_TOKEN_CACHE_SECONDS", "inf",
     "CARDSHIELD_TOKEN_CACHE_SECONDS='inf' is not a finite number; set it to seconds, e.g. 5.0"),
])
def test_a_bad_number_stops_with_the_variable_its_unit_and_an_example(monkeypatch, name, raw, expected):
    monkeypatch.setenv(name, raw)
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert str(stopped.value) == expected


def test_a_bad_slot_policy_names_the_bits(monkeypatch):
    monkeypatch.setenv("CARDSHIELD_SLOT1_REQUIRED_POLICY", "0x03")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert str(stopped.value).startswith("CARDSHIELD_SLOT1_REQUIRED_POLICY='0x03' is not a whole number; "
                                         "set it to the policy bits in decimal")
    assert str(stopped.value).endswith("e.g. 3")
