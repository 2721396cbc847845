"""A virtual card whose CardShield applet was installed with a personalization key set
(install tags C0, C1) diversified from the test master key of vectors.py.

It runs in its own private stack (pcscd + vpcd + jcardsim), because the session's card
holds the development instance (no key set) other tests need; each test gets it pristine.
"""
from __future__ import annotations

import pytest

from cardshield.perso import keys, keystore

from . import vectors as v

PIN, PUK = "482913", "80417256"
SECRETS = {"ISSUER_MK": v.MASTER_KEY.hex().upper(), "CARD_PIN": PIN, "CARD_PUK": PUK}


def card_keys() -> keys.PersoKeySet:
    return keys.diversify(keys.software_master(v.MASTER_KEY), v.KEY_VERSION, v.CARD_ID)


@pytest.fixture
def store():
    return keystore.MappingKeyStore(SECRETS, "the test key store", "add {name}")


@pytest.fixture(scope="session")
def perso_stack(real_reader, tmp_path_factory):
    if real_reader is not None:
        pytest.skip("needs a virtual card installed with the test personalization key set")
    from cardshield.sim.applets import default_applets, project_applet
    from cardshield.sim.stack import VirtualCardStack

    if not default_applets():
        pytest.skip("the CardShield applet is not built")
    from cardshield import paths

    main_class = paths.APPLET_SRC / "org/cardshield/applet/CardShieldApplet.java"
    if "SecureChannel" not in main_class.read_text():
        pytest.skip("the applet does not route secured personalization to SecureChannel yet")
    applet = project_applet(parameters=keys.install_parameters(card_keys(), v.CARD_ID))
    stack = VirtualCardStack(tmp_path_factory.mktemp("perso-sim"), applets=[applet])
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def perso_card(request, perso_stack):
    """A connected transport to a fresh perso-keyed card (PERSONALIZATION, counter 0)."""
    from cardshield.card.transport import Transport

    perso_stack.pristine()
    link = Transport(perso_stack.info.reader, trace=request.config.getoption("--card-trace") or None)
    link.connect()
    try:
        yield link
    finally:
        if link.connected:
            link.close("reset")
