"""Transient RAM of the strict virtual card (JCRE 3.0.4 Classic, chapter 5) and the objects of
an aborted transaction (7.6.3), shown with a small test applet (transient_probe/) installed
twice: each profile names its CLEAR_ON_DESELECT and CLEAR_ON_RESET RAM separately, the card
refuses an array past the budget of its kind (NO_RESOURCE) and reports each kind's rest
through JCSystem.getAvailableMemory; CLEAR_ON_DESELECT arrays are cleared when another applet
is selected, both kinds at a reset and at a tear; an array created in a transaction that
aborts gives its memory back and no transient reference to it survives."""

from __future__ import annotations

import dataclasses

import pytest
from smartcard import scard

from cardshield.card.apdu import CommandAPDU
from cardshield.sim.profiles import load_profile
from probe_applets import probe_applet
from tearing_support import reinsert_after_tear

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

PACKAGE_AID = bytes.fromhex("F0435352414D50")
CLEAR_ON_RESET, CLEAR_ON_DESELECT = 1, 2
HEADER = 4  # the strict profiles' object header (object_header_bytes)
# at install, each instance makes 16 + 16 bytes, one reference (2) and two shorts (4) of RAM:
# CLEAR_ON_DESELECT 16 + 2 + 4 (three arrays), CLEAR_ON_RESET 16 (one array)
DESELECT_AT_INSTALL, RESET_AT_INSTALL = 16 + 2 + 4 + 3 * HEADER, 16 + HEADER


@pytest.fixture(scope="module", params=["sim", "jcop4"])
def probe(request, tmp_path_factory, real_reader):
    from cardshield.card.transport import Transport
    from cardshield.sim.stack import VirtualCardStack

    if real_reader is not None:
        pytest.skip("the virtual card's transient memory emulation")
    first = probe_applet("transient_probe", PACKAGE_AID, "org.cardshield.ramprobe.TransientProbe")
    second = dataclasses.replace(first, instance_aid=PACKAGE_AID + b"\x02")
    with VirtualCardStack(tmp_path_factory.mktemp("ram"), applets=[first, second], frontend_class=None,
                          profile=request.param) as stack:
        with Transport(stack.info.reader, extended_length=False) as transport:
            yield request.param, stack, transport, first.instance_aid, second.instance_aid


def select(transport, aid: bytes) -> None:
    assert transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid)).sw == 0x9000


def available(transport) -> tuple[int, int, int]:
    data = transport.transmit(CommandAPDU(0x80, 0x32, 0, 0, ne=12)).data
    return tuple(int.from_bytes(data[i:i + 4], "big") for i in (0, 4, 8))


def make(transport, length: int, event: int) -> int:
    return transport.transmit(CommandAPDU(0x80, 0x30, length >> 8, length & 0xFF, bytes([event]))).sw


def marks(transport) -> tuple[int, int, int]:
    return tuple(transport.transmit(CommandAPDU(0x80, 0x36, 0, 0, ne=3)).data)


def test_each_kind_of_transient_ram_has_its_own_budget_and_truthful_availability(probe):
    name, stack, transport, first, _ = probe
    profile = load_profile(name)
    stack.pristine()
    transport.reconnect("reset")
    select(transport, first)
    _, deselect, reset = available(transport)
    assert (deselect, reset) == (profile.transient_deselect_bytes - 2 * DESELECT_AT_INSTALL,
                                 profile.transient_reset_bytes - 2 * RESET_AT_INSTALL)
    # an array one byte larger than the smaller kind has left: refused there, taken by the other kind
    left = {CLEAR_ON_DESELECT: deselect, CLEAR_ON_RESET: reset}
    small, large = sorted(left, key=left.get)
    too_big = left[small] - HEADER + 1
    assert make(transport, too_big, small) == 0x6A84
    assert available(transport)[1:] == (deselect, reset), "a refused array took RAM"
    assert make(transport, too_big, large) == 0x9000
    left[large] -= too_big + HEADER
    assert available(transport)[1:] == (left[CLEAR_ON_DESELECT], left[CLEAR_ON_RESET])
    assert make(transport, left[small] - HEADER, small) == 0x9000
    left[small] = 0
    assert available(transport)[1:] == (left[CLEAR_ON_DESELECT], left[CLEAR_ON_RESET])


def test_clear_on_deselect_at_another_selection_clear_on_reset_at_reset_and_tear(probe):
    name, stack, transport, first, second = probe
    stack.pristine()
    transport.reconnect("reset")
    select(transport, first)
    transport.transmit(CommandAPDU(0x80, 0x34, 0x55, 0))
    assert marks(transport) == (0x55, 0x55, 0x55)
    select(transport, second)
    select(transport, first)
    assert marks(transport) == (0, 0x55, 0x55), "CLEAR_ON_DESELECT kept across another applet's selection"
    transport.transmit(CommandAPDU(0x80, 0x34, 0x66, 0))
    transport.reconnect("reset")
    select(transport, first)
    assert marks(transport) == (0, 0, 0x66), "a reset must clear both kinds and keep the persistent field"
    transport.transmit(CommandAPDU(0x80, 0x34, 0x77, 0))
    # the power goes at the command's only tear point: the stamp, after both RAM writes
    stack.tear_at(1)
    hresult, response = scard.SCardTransmit(transport._card, transport.protocol, [0x80, 0x34, 0x11, 0x00])
    assert stack.last_command().torn and len(response) < 2
    reinsert_after_tear(stack, transport)
    select(transport, first)
    assert marks(transport) == (0, 0, 0x77), "after the tear: RAM cleared, the persistent field old"


def test_objects_of_an_aborted_transaction_are_reclaimed(probe):
    """JCRE 7.6.3: a reference to an object created in an aborted transaction is equivalent
    to null, and a card may reclaim its memory. The persistent field is restored by the
    journal; the transient reference (RAM is not journalled) is cleared, and the 200-byte
    array's persistent memory comes back."""
    name, stack, transport, first, _ = probe
    stack.pristine()
    transport.reconnect("reset")
    select(transport, first)
    before = available(transport)[0]
    assert transport.transmit(CommandAPDU(0x80, 0x38, 1, 0, ne=2)).data == bytes([0, 0])
    assert available(transport)[0] == before, "the aborted transaction's array kept its memory"
    assert transport.transmit(CommandAPDU(0x80, 0x38, 0, 0, ne=2)).data == bytes([1, 1])
    assert available(transport)[0] == before - 200 - HEADER  # committed: allocated (no garbage collector)
