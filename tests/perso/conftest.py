"""Fixtures of the personalization tests: the keyed applet instance (instance.py) on the
session's virtual card, fresh for each test."""
from __future__ import annotations

import pytest

from cardshield.perso import keystore

from .instance import KEYED_AID, SECRETS


@pytest.fixture
def store():
    return keystore.MappingKeyStore(SECRETS, "the test key store", "add {name}")


@pytest.fixture
def perso_card(virtual_card, transport):
    """A transport to a fresh keyed instance (PERSONALIZATION, counter 0), selected."""
    from cardshield.perso.runner import read_card_state

    virtual_card.pristine()
    transport.reconnect("reset")
    try:
        read_card_state(transport, KEYED_AID)
    except Exception as exc:  # the applet is not built: nothing to personalize
        pytest.skip(f"no keyed CardShield instance on the virtual card: {exc}")
    return transport
