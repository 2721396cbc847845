"""Card fixtures for every test module.

By default one private virtual card stack (pcscd + vpcd + jcardsim in their own namespaces)
serves the whole session: the project applet when its sources exist (twice: the development
instance and a keyed one), plus the test-only probe applet (tests/probe_applet) on a card
with javacardx.apdu. `--card-profile NAME` picks the card (docs/virtual-card.md); on sim
the applet suite (tests/applet) is what runs (other suites are not made for it: some need
the probe applet). `--reader NAME` runs the card tests against that exact PC/SC reader instead (a
real card: never another one) and skips the virtual-only tests.

Markers: card (needs a card, virtual or real), virtual_only (needs the virtual card's
host controls or the probe applet), slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardshield.card.transport import Transport

PROBE_SOURCES = Path(__file__).parent / "probe_applet"
PROBE_PACKAGE_AID = bytes.fromhex("F0434152445348505242")  # F0 "CARDSHPRB"
PROBE_AID = PROBE_PACKAGE_AID + b"\x01"


def pytest_addoption(parser):
    group = parser.getgroup("cardshield")
    group.addoption("--reader", default=None, help="exact PC/SC reader name (or index) of a real card to test")
    group.addoption("--card-trace", action="store_true", help="print the APDU trace of card tests (secrets masked)")
    group.addoption("--card-profile", default="lenient",
                    help="virtual card profile of the session's card: lenient (default), jcop4, sim "
                         "(tools/cardshield/sim/profiles)")


def pytest_configure(config):
    config.addinivalue_line("markers", "card: needs a card (the virtual card, or --reader)")
    config.addinivalue_line("markers", "virtual_only: needs the virtual card (host controls, probe applet)")
    config.addinivalue_line("markers", "slow: takes seconds (key generation, stack restarts)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reader") is None:
        return
    skip = pytest.mark.skip(reason="virtual card only; --reader selects a real card")
    for item in items:
        if "virtual_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_reader(request) -> str | None:
    return request.config.getoption("--reader")


@pytest.fixture(scope="session")
def probe_applet():
    from cardshield.build.javac import compile_tree
    from cardshield.setup import maven
    from cardshield.sim.applets import VirtualApplet

    from cardshield import paths

    classes = paths.BUILD_DIR / "test-probe" / "classes"  # stamped: recompiled only when it changes
    compile_tree(PROBE_SOURCES, classes, classpath=maven.classpath(maven.JCARDSIM), release="7",
                 extra=["-g", "-Xlint:-options"])
    return VirtualApplet(PROBE_PACKAGE_AID, PROBE_AID, "org.cardshield.probe.ProbeApplet", classes, PROBE_AID)


@pytest.fixture(scope="session")
def card_stack(request, real_reader, tmp_path_factory):
    """The session's private virtual card stack (None with --reader), of profile --card-profile."""
    if real_reader is not None:
        yield None
        return
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack

    from perso.instance import keyed_instances  # the applet again, with a personalization key set

    from cardshield.sim.profiles import load_profile

    profile = load_profile(request.config.getoption("--card-profile"))
    applets = default_applets(profile.applet_variant)  # a profile without javacardx.apdu takes the SIM build
    # Two CardShield instances fit a 32 kB SIM; further ones are installed by the tests that need
    # them, through GlobalPlatform (tests/applet_instances.py). The probe applet (ExtendedLength,
    # a 1 kB transient buffer) is a test tool for cards with javacardx.apdu only.
    probes = [request.getfixturevalue("probe_applet")] if profile.javacardx_apdu else []
    stack = VirtualCardStack(tmp_path_factory.mktemp("sim"), applets=[*applets, *keyed_instances(applets), *probes],
                             profile=profile.name)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def reader_name(real_reader, card_stack) -> str:
    if real_reader is not None:
        from cardshield.card.transport import list_readers, resolve_reader

        return resolve_reader(real_reader, list_readers())
    return card_stack.info.reader


@pytest.fixture
def transport(request, reader_name):
    """A connected transport; the card is reset afterwards so tests do not leak selection."""
    connection = Transport(reader_name, trace=request.config.getoption("--card-trace") or None)
    connection.connect()
    try:
        yield connection
    finally:
        if connection.connected:
            try:
                connection.close("reset")
            except Exception:
                connection.close()


@pytest.fixture
def virtual_card(card_stack):
    """The virtual card stack itself, for host controls (remove/insert, pristine)."""
    if card_stack is None:
        pytest.skip("needs the virtual card")
    return card_stack


@pytest.fixture
def pristine_card(virtual_card, transport):
    """A transport to a card wiped and freshly installed (virtual card only)."""
    virtual_card.pristine()
    transport.reconnect("reset")
    return transport


@pytest.fixture
def factory_card(pristine_card, virtual_card):
    """pristine_card, left pristine again afterwards (tests that install and delete)."""
    yield pristine_card
    virtual_card.pristine()
