"""Tear points INSIDE one platform call on the strict virtual card (docs/virtual-card.md),
shown with a small test applet (platform_probe/): outside a transaction a key setter writes
its component page by page, key generation writes the pair component by component, and a
crypto operation writes its output into persistent memory page by page; the power cut at a
point in between leaves exactly that partial state (the tearing suite, test_tearing_inside.py,
checks the applet survives it). Before these points the strict card had one tear point before
each such call and none inside it."""

from __future__ import annotations

import os

import pytest
from smartcard import scard

from cardshield.card.apdu import CommandAPDU
from probe_applets import probe_applet
from tearing_support import reinsert_after_tear

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

PACKAGE_AID = bytes.fromhex("F0435350525042")
PAGE = 64  # the jcop4 profile's eeprom_page_bytes


@pytest.fixture(scope="module")
def probe(tmp_path_factory, real_reader):
    if real_reader is not None:
        pytest.skip("the virtual card's tear points")
    applet = probe_applet("platform_probe", PACKAGE_AID, "org.cardshield.platprobe.PlatformProbe")
    from cardshield.sim.stack import VirtualCardStack
    from cardshield.card.transport import Transport

    with VirtualCardStack(tmp_path_factory.mktemp("platform"), applets=[applet], frontend_class=None,
                          profile="jcop4") as stack:
        with Transport(stack.info.reader) as transport:
            select(transport, applet.instance_aid)
            yield stack, transport, applet.instance_aid


def select(transport, aid: bytes) -> None:
    assert transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid)).sw == 0x9000


def torn(stack, transport, aid: bytes, command: CommandAPDU, point: int) -> str:
    """Cut the power at `point` of `command`, put the card back, select the probe; where it tore."""
    stack.tear_at(point)
    hresult, response = scard.SCardTransmit(transport._card, transport.protocol, list(command.encode()))
    report = stack.last_command()
    assert report.torn and len(response) < 2, report
    reinsert_after_tear(stack, transport)
    select(transport, aid)
    return report.torn_at


def modulus(transport) -> bytes:
    answer = transport.transmit(CommandAPDU(0x80, 0x42, 0, 0, ne=256))
    assert answer.sw == 0x9000
    return answer.data


def test_a_key_component_torn_inside_its_setter_is_partly_written(probe):
    stack, transport, aid = probe
    old = b"\x80" + os.urandom(255)
    new = b"\xC0" + os.urandom(255)
    assert transport.transmit(CommandAPDU(0x80, 0x40, 0, 0, old)).sw == 0x9000
    points = stack.last_command().tear_points
    assert points == 256 // PAGE, f"setModulus of 256 bytes: {points} tear points"
    for point in range(2, points + 1):
        torn(stack, transport, aid, CommandAPDU(0x80, 0x40, 0, 0, new), point)
        written = (point - 1) * PAGE
        assert modulus(transport) == new[:written] + old[written:], f"torn at point {point}"
        assert transport.transmit(CommandAPDU(0x80, 0x40, 0, 0, old)).sw == 0x9000


def test_key_generation_is_torn_between_its_components(probe):
    stack, transport, aid = probe
    assert transport.transmit(CommandAPDU(0x80, 0x44, 0, 0)).sw == 0x9000
    # before any key; modulus | exponent of the public key; P | Q | DP1 | DQ1 | PQ of the private one
    assert stack.last_command().tear_points == 7
    seen = []
    for point in range(1, 8):
        where = torn(stack, transport, aid, CommandAPDU(0x80, 0x44, 0, 0), point)
        assert where.startswith(f"{point}:KeyPair.genKeyPair"), where
        seen.append(where.split(" with ")[-1])
        assert transport.transmit(CommandAPDU(0x80, 0x44, 0, 0)).sw == 0x9000  # the card still generates
    assert seen[1:] == ["1 of 2 public key components written", "the public key written, the private key not",
                        *[f"{n} of 5 private key components written" for n in range(1, 5)]], seen


def test_crypto_output_into_persistent_memory_is_torn_page_by_page(probe):
    stack, transport, aid = probe
    assert transport.transmit(CommandAPDU(0x80, 0x46, 0, 200)).sw == 0x9000
    assert stack.last_command().tear_points == 4  # pages at 0, 64, 128, 192
    before = transport.transmit(CommandAPDU(0x80, 0x48, 0, 0, ne=256)).data
    torn(stack, transport, aid, CommandAPDU(0x80, 0x46, 0, 200), 3)
    after = transport.transmit(CommandAPDU(0x80, 0x48, 0, 0, ne=256)).data
    assert after[:128] != before[:128] and after[128:] == before[128:], "two pages new, the rest old"


def test_a_card_inserted_while_the_host_is_held_up_after_a_tear_comes_back(tmp_path, real_reader):
    """The torn card used to be marked out of the reader only after its link to vpcd was
    dropped: an INSERT sent as soon as pcscd saw the card leave could come first and be undone,
    and the card stayed out (the "pcscd misses the re-inserted card" of about one tear in a
    hundred, under load; with the host thread held up 600 ms there, every tear). Now the card is
    marked out before the link drops; the host's test facility holds the thread up 600 ms after
    the tear, and each INSERT still brings the card back at once."""
    from cardshield.card.transport import Transport
    from cardshield.sim.stack import VirtualCardStack

    if real_reader is not None:
        pytest.skip("the virtual card's tear control")
    applet = probe_applet("platform_probe", PACKAGE_AID, "org.cardshield.platprobe.PlatformProbe")
    with VirtualCardStack(tmp_path, applets=[applet], profile="jcop4",
                          isd_properties={"test.powerloss.pause.ms": "600"}) as stack:
        with Transport(stack.info.reader) as transport:
            select(transport, applet.instance_aid)
            for _ in range(3):
                torn(stack, transport, applet.instance_aid, CommandAPDU(0x80, 0x46, 0, 200), 1)
