"""The whole applet suite (tests/applet) and the personalization suite (tests/perso: an
issuer personalizes the card over its own transport, chains on T=0) once more on each strict
card profile (docs/virtual-card.md), run as a developer runs it: `./cardshield test --
tests/applet tests/perso --card-profile NAME`, in a pytest of its own (the session's own
card is the lenient profile).

- jcop4, the JCOP-4-like card: real transactions with a commit buffer, memory and algorithm
  limits, an APDU buffer of the card's size.
- sim, the SIM-like card: the SIM build (no javacardx.apdu) over T=0 with short APDUs only
  (command chaining, 61xx and GET RESPONSE), 32 kB of EEPROM holding two CardShield instances
  (a third is installed through GlobalPlatform in their place: tests/applet_instances.py),
  RSA-2048 only (EC, RSA-3072 and OAEP refused with 6A81).

A test may skip only where the card lacks an algorithm it needs, and only after asserting the
card's refusal (the EC bank key on sim: 6A81, tests/applet/test_applet_bank_key_ec.py); any
other skip fails this test.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from cardshield import paths


@pytest.mark.card
@pytest.mark.virtual_only
@pytest.mark.slow
@pytest.mark.parametrize("profile", ["jcop4", "sim"])
def test_applet_suite_passes_on_the_strict_profiles(real_reader, profile):
    if real_reader is not None:
        pytest.skip("a profile of the virtual card: not for a real reader")
    result = subprocess.run(
        [str(paths.ROOT / "cardshield"), "test", "--", "tests/applet", "tests/perso", "-q", "-rs", "-p", "no:cacheprovider",
         "--card-profile", profile],
        cwd=paths.ROOT, capture_output=True, text=True, timeout=900)
    summary = [line for line in result.stdout.splitlines() if " in " in line and ("passed" in line or "failed" in line)]
    print(f"tests/applet tests/perso on {profile}: {summary[-1] if summary else '(no summary)'}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    skips = re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", result.stdout, re.MULTILINE)
    allowed = ALLOWED_SKIPS.get(profile, ())
    unexpected = [reason for reason in skips if not reason.startswith(allowed)] if allowed else skips
    assert not unexpected, f"tests of the suite skipped on {profile} for a reason other than a missing algorithm: {unexpected}"


# Profile -> reasons a test may skip for: the card lacks the algorithm, and the test asserted
# its refusal before skipping.
ALLOWED_SKIPS: dict[str, tuple[str, ...]] = {"sim": ("the card has no EC",)}
