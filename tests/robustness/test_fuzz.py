"""APDU fuzzing of the applet (cardshield.fuzz): the oracle itself, then a CI campaign of
at least 20,000 cases on a private virtual card.

CARDSHIELD_FUZZ_CASES / CARDSHIELD_FUZZ_SEED change the campaign (longer runs:
`./cardshield fuzz --cases N --seed S`). A failure names the seed and case index.
"""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cardshield import paths
from cardshield.fuzz import spec
from cardshield.fuzz.generator import Apdu, CardContext, encode, generate_case
from cardshield.fuzz.model import CardModel, Expected, leaked_factor
from cardshield.protocol.constants import Ins

CI_CASES = 20000
CI_SEED = 20261125
# The strict card profiles (real transactions, memory and algorithm limits; T=0 and the SIM
# build on `sim`) get a shorter campaign each: same generator and oracle, other seeds.
STRICT_CASES = 2000
STRICT_SEEDS = {"jcop4": 20261204, "sim": 20261205}


def _apdu(header: str, data: bytes = b"", ne=None, malformed=False) -> Apdu:
    cla, ins, p1, p2 = bytes.fromhex(header)
    return Apdu(cla, ins, p1, p2, data, encode(cla, ins, p1, p2, data, ne, "auto"), "test", malformed)


def _model() -> CardModel:
    expected = Expected(lifecycle=2, flags=0x13, pin_tries=3, puk_tries=10, counter=5,
                        certificates={1: b"\x30\x00", 2: b""}, keys_present={1: True, 2: True},
                        slot_config={1: (1, 0), 2: (1, 0)})
    return CardModel(expected, "1234", "12345678", {})


def test_every_instruction_has_a_documented_status_word_list():
    specs = spec.load_specs()
    for ins in Ins:
        cla = 0x80 if ins in (Ins.SIGN_TRANSACTION, Ins.PROVE_POSSESSION, Ins.PERSONALIZE, Ins.ISSUE) else 0x00
        name = spec.command_name(cla, ins, 0x00, 0x00)
        assert name in specs, f"INS {ins:02X} has no section in docs/apdu.md"
        assert 0x9000 in specs[name].status_words or name == spec.PSO_OTHER
    assert not spec.allowed(0x00, 0xB0, 0x00, 0x00, 0x6F00)
    assert not spec.allowed(0x00, 0xB0, 0x00, 0x00, 0x6A80)  # READ BINARY never says "wrong data"
    assert spec.allowed(0x00, 0xB0, 0x00, 0x00, 0x6B00)
    assert spec.allowed(0x80, 0x54, 0x00, 0x01, 0x6100)
    assert not spec.allowed(0x00, 0x20, 0x00, 0x81, 0x6100)  # VERIFY has no response data
    assert spec.allowed(0x00, 0x12, 0x00, 0x00, 0x6D00) and not spec.allowed(0x00, 0x12, 0x00, 0x00, 0x9000)


def test_oracle_flags_undocumented_answers_and_counter_moves():
    model, findings = _model(), []
    model.apply(_apdu("00 B0 00 00", ne=256), b"", 0x6F00, 0, findings)
    assert "6F00" in findings[-1].what
    model.apply(_apdu("00 2A 9E 9A", bytes(32), 256), b"\x01\x02", 0x6A80, 1, findings)
    assert "data bytes" in findings[-1].what  # an error SW carrying data
    count = len(findings)
    model.apply(_apdu("00 20 00 81", b"99", malformed=True), b"", 0x6700, 2, findings)
    assert len(findings) == count  # bytes that are no APDU: 6700 from the I/O layer is fine

    model.apply(_apdu("00 20 00 81", b"9999"), b"", 0x63C2, 3, findings)
    assert model.expected.pin_tries == 2
    model.apply(_apdu("00 20 00 81"), b"", 0x63C1, 4, findings)  # status disagrees with the count
    assert "VERIFY status says 1" in findings[-1].what
    model.apply(_apdu("00 DA C1 01", b"\x30\x01\x00"), b"", 0x6982, 5, findings)  # refused: no change
    assert model.expected.certificates[1] == b"\x30\x00"
    model.apply(_apdu("80 54 00 01", b"\x81\x01\x01", 256), b"", 0x6A80, 6, findings)
    assert model.expected.counter == 5


def test_chained_certificate_write_is_tracked_whole():
    model, findings = _model(), []
    model.apply(_apdu("10 DA C1 01", b"\x30\x03"), b"", 0x9000, 0, findings)
    assert model.expected.certificates[1] == b"\x30\x00"  # nothing before the last piece
    model.apply(_apdu("00 DA C1 01", b"\x02\x01\x01"), b"", 0x9000, 1, findings)
    assert model.expected.certificates[1] == b"\x30\x03\x02\x01\x01"
    assert not findings


def test_key_leak_scan_finds_a_prime_factor_anywhere():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p = key.private_numbers().p.to_bytes(128, "big")
    keys = {1: key.public_key()}
    assert leaked_factor(b"\x61\x00" + p + b"\x90\x00", keys) == 1
    assert leaked_factor(bytes(300), keys) is None
    assert leaked_factor(key.public_key().public_numbers().n.to_bytes(256, "big"), keys) is None


def test_cases_are_reproducible_from_seed_and_index():
    ctx = CardContext("1234", "12345678")
    ctx.server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    first = generate_case(7, 123, ctx)
    again = generate_case(7, 123, ctx)
    assert [str(step) for step in first.steps] == [str(step) for step in again.steps]
    kinds = {str(step)[:5] for index in range(400) for step in generate_case(7, index, ctx).steps}
    assert len(kinds) > 100  # the generator reaches many headers


@pytest.mark.card
@pytest.mark.virtual_only
@pytest.mark.slow
def test_fuzz_campaign(real_reader):
    """At least 20,000 cases over every lifecycle and PIN state (private virtual card)."""
    if real_reader is not None:
        pytest.skip("the campaign wipes the card: virtual card only")
    from cardshield.fuzz.cli import run_campaign

    cases = int(os.environ.get("CARDSHIELD_FUZZ_CASES", CI_CASES))
    seed = int(os.environ.get("CARDSHIELD_FUZZ_SEED", CI_SEED))
    report = run_campaign(cases, seed)
    artifacts = paths.ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "fuzz.json").write_text(json.dumps({
        "seed": seed, "cases": report.cases, "apdus": report.apdus, "resets": report.resets,
        "payment_checks": report.payments, "seconds": round(report.seconds, 1),
        "cases_per_second": round(report.cases_per_second, 1), "failures": len(report.failures),
        "status_words": sorted(f"{name}: {sw:04X} x{count}" for (name, sw), count in report.status_words.items()),
    }, indent=1))
    print(report.summary())
    assert report.cases == cases
    assert not report.failures, "\n".join(f.describe(seed, cases) for f in report.failures)
    assert report.payments >= 4  # normal payments completed between and after the cases
    assert len({name for name, _ in report.status_words}) >= 20  # every command was reached


@pytest.mark.card
@pytest.mark.virtual_only
@pytest.mark.slow
@pytest.mark.parametrize("profile", sorted(STRICT_SEEDS))
def test_fuzz_campaign_on_strict_profiles(real_reader, profile):
    """The campaign on the JCOP-4-like and the SIM-like card (docs/virtual-card.md)."""
    if real_reader is not None:
        pytest.skip("the campaign wipes the card: virtual card only")
    from cardshield.fuzz.cli import run_campaign

    seed = STRICT_SEEDS[profile]
    report = run_campaign(STRICT_CASES, seed, profile=profile)
    print(report.summary())
    assert report.cases == STRICT_CASES
    assert not report.failures, "\n".join(f.describe(seed, STRICT_CASES, profile) for f in report.failures)
    assert report.payments >= 4


@pytest.mark.card
@pytest.mark.virtual_only
def test_a_select_of_another_application_on_t0_is_followed_by_the_applet_again(real_reader):
    """Seed 4243, case 991 on sim: SELECT of the issuer security domain answers 61xx on T=0
    (its FCI waits for GET RESPONSE), and the campaign must select the applet again before the
    next command, as it does after a 9000; before, it went on talking to the security domain and
    blamed the applet for the runtime's 6881."""
    if real_reader is not None:
        pytest.skip("the campaign wipes the card: virtual card only")
    from cardshield.fuzz.cli import run_campaign

    report = run_campaign(1000, 4243, only=991, profile="sim")
    assert report.cases == 1
    assert not report.failures, "\n".join(f.describe(4243, 1000, "sim") for f in report.failures)
