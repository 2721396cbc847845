"""Enrollment attacks over the real HTTP API (issue: trust from the issuer to every payment).

The attacker holds a second terminal token and a software key that answers the server's
APDU batches as docs/apdu.md describes. Each test shows the attack refused."""
from __future__ import annotations

import pytest
from cryptography import x509
from sqlalchemy import select

from cardshield.server.models import Certificate
from cardshield.server.testing.flows import FlowError, Terminal


def test_software_key_and_terminal_token_cannot_take_over_alice(ctx, http, tokens, make_card):
    from cardshield.server.tokens import create_client
    alice = Terminal(http, tokens["terminal"], make_card()).enroll("alice")
    assert alice["state"] == "completed"
    attacker = Terminal(http, create_client(ctx.db, "rogue-terminal", "terminal"), make_card())
    with pytest.raises(FlowError) as refused:
        attacker.enroll("alice")
    assert 400 <= refused.value.status < 500
    with ctx.db.transaction() as s:
        statuses = {c.serial_hex: c.status for c in s.scalars(select(Certificate))}
    assert statuses == {alice["certificate_serial"]: "active"}
