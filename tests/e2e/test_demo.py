"""`cardshield demo` on its own virtual card and server: every patent step printed, the
signature verified by openssl, the PIN never printed, non-zero on failure, no process left."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow]


def run_demo(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    env.pop("PCSCLITE_CSOCK_NAME", None)  # the demo starts its own card
    return subprocess.run([sys.executable, "-m", "cardshield", "demo", *args], env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)


def demo_processes() -> list[str]:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "cs-demo-" in line]


def test_demo_runs_both_flows_and_verifies_the_signature():
    pin = "864297531086"
    result = run_demo({"CARDSHIELD_DEMO_PIN": pin})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for number in [*range(501, 513), *range(601, 609)]:
        assert f"  {number}  " in result.stdout
    assert "card.pem: OK" in result.stdout and "Verified OK" in result.stdout
    assert "42.50 EUR to 'Example Shop'" in result.stdout
    assert pin not in output
    assert demo_processes() == []


def test_demo_refuses_a_bad_pin_setting_before_starting_anything():
    result = run_demo({"CARDSHIELD_DEMO_PIN": "12ab"})
    assert result.returncode != 0 and "4-12 digits" in result.stderr
    assert demo_processes() == []
