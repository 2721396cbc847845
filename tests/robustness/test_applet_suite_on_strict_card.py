"""The whole applet suite (tests/applet) once more, on the JCOP-4-like strict card: real
transactions with a commit buffer, memory and algorithm limits, an APDU buffer of the card's
size (docs/virtual-card.md). The session's own card is the lenient profile, so the suite runs
in a pytest of its own with `--card-profile jcop4`, as a developer would run it.

The SIM-like profile runs its own file (tests/applet/test_applet_sim_build.py: the SIM build,
T=0, short APDUs): its 32 kB of EEPROM does not hold the several instances the whole suite
installs side by side.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from cardshield import paths


@pytest.mark.card
@pytest.mark.virtual_only
@pytest.mark.slow
def test_applet_suite_passes_on_the_jcop4_profile(real_reader):
    if real_reader is not None:
        pytest.skip("a profile of the virtual card: not for a real reader")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(paths.TESTS_DIR / "applet"), "-q", "-p", "no:cacheprovider",
         "--card-profile", "jcop4"],
        cwd=paths.ROOT, capture_output=True, text=True, timeout=900)
    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"tests/applet on jcop4: {summary[0]}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
