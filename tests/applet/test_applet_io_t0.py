"""Ne on T=0 (ISO/IEC 7816-3 clause 12.2; 7816-4 clause 5.1): the SIM build on the strict SIM
profile, a T=0 card, answers a case-2 command with at most P3 bytes (00 meaning 256) and
keeps the rest for GET RESPONSE (7816-4 clause 11.7.1), exactly. In a module of its own: the
SIM-build card is a second virtual card stack, alive for the module."""

from __future__ import annotations

import pytest

from cardshield.protocol.keys import parse_public_key
from test_applet_io import PUBLIC_KEY_DO, fetch_in_parts
from test_applet_sim_build import sim_build_card  # noqa: F401  (pytest fixture: the SIM build on T=0)

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


def test_on_t0_ne_is_p3_and_get_response_returns_the_exact_rest(sim_build_card):
    card, keys, _ = sim_build_card
    card.select()
    for first_ne, nes in ((16, [32, 256]), (256, [14])):
        raw = fetch_in_parts(card.transport, first_ne, nes, False, PUBLIC_KEY_DO)
        assert parse_public_key(raw) == keys[1]

