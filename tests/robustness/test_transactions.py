"""Java Card transaction semantics of the strict virtual card (JCRE 3.0.4 Classic, chapter 7),
shown with a small test applet (transaction_probe/): commit, rollback on abortTransaction, on
an exception leaving process() and on process() returning with the transaction open; the
commit capacity from the profile, reported truthfully, TransactionException BUFFER_FULL past
it; Util.arrayCopyNonAtomic outside the transaction even when one is open.

The lenient profile (plain jcardsim) is run too: its transactions roll nothing back, which
is why the strict profiles exist."""

from __future__ import annotations

import pytest

from cardshield.card.apdu import CommandAPDU
from probe_applets import probe_applet, probe_transport

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

PACKAGE_AID = bytes.fromhex("F0435354585052")
COMMIT, ABORT, EXCEPTION, LEFT_OPEN = range(4)
ELEMENTS, ARRAY_COPY, NON_ATOMIC_COPY = range(3)
BUFFER_FULL = 3  # javacard.framework.TransactionException.BUFFER_FULL


@pytest.fixture(scope="module", params=["jcop4", "lenient"])
def probe(request, tmp_path_factory, real_reader):
    if real_reader is not None:
        pytest.skip("the virtual card's transaction emulation")
    applet = probe_applet("transaction_probe", PACKAGE_AID, "org.cardshield.txprobe.TransactionProbe")
    with probe_transport(tmp_path_factory.mktemp("tx"), applet, request.param) as transport:
        yield request.param, transport


def write(transport, ending: int, how: int, count: int, value: int):
    return transport.transmit(CommandAPDU(0x80, 0x10, ending, how, count.to_bytes(2, "big") + bytes([value])))


def state(transport) -> tuple[int, int, int, int, int, int]:
    data = transport.transmit(CommandAPDU(0x80, 0x12, 0, 0, ne=8)).data
    return data[0], data[1], data[2], int.from_bytes(data[3:5], "big"), int.from_bytes(data[5:7], "big"), data[7]


@pytest.mark.parametrize("how", [ELEMENTS, ARRAY_COPY])
def test_abort_exception_and_open_transaction_roll_back(probe, how):
    profile, transport = probe
    assert write(transport, COMMIT, how, 100, 0x11).sw == 0x9000
    assert state(transport)[:2] == (0x11, 0x11)
    rolled_back = []
    for ending, sw in ((ABORT, 0x9000), (EXCEPTION, 0x6A81), (LEFT_OPEN, 0x9000)):
        assert write(transport, ending, how, 100, 0x22 + ending).sw == sw
        rolled_back.append(state(transport)[:2] == (0x11, 0x11))
        write(transport, COMMIT, how, 100, 0x11)
    if profile == "lenient":  # jcardsim's transactions are a depth counter: nothing comes back
        assert rolled_back == [False] * 3
    else:
        assert rolled_back == [True] * 3
    assert state(transport)[5] == 0  # no transaction left open between commands


def test_non_atomic_copy_is_not_rolled_back(probe):
    profile, transport = probe
    write(transport, COMMIT, ELEMENTS, 100, 0x11)
    assert write(transport, ABORT, NON_ATOMIC_COPY, 100, 0x33).sw == 0x9000
    stamp, first, *_ = state(transport)
    assert first == 0x33, "Util.arrayCopyNonAtomic bypasses the transaction (Java Card API)"
    assert stamp == (0x33 if profile == "lenient" else 0x11)


def test_commit_capacity_is_the_profiles_and_buffer_full_past_it(probe):
    profile, transport = probe
    _, _, _, maximum, unused, depth = state(transport)
    if profile == "lenient":
        assert maximum == 32767
        return
    assert (maximum, unused, depth) == (2048, 2048, 0)
    assert write(transport, COMMIT, ARRAY_COPY, 1024, 0x44).sw == 0x9000
    # 1024 single-byte element writes need 1024 x (1 + 4 overhead) bytes of journal: too many
    response = write(transport, COMMIT, ELEMENTS, 1024, 0x55)
    assert response.data == BUFFER_FULL.to_bytes(2, "big")
    stamp, first, last, *_ = state(transport)
    assert (stamp, first, last) == (0x44, 0x44, 0x44), "the failed transaction left writes behind"
    # one Util.arrayCopy of 1024 bytes is one journal entry: it fits
    assert write(transport, COMMIT, ARRAY_COPY, 1024, 0x66).sw == 0x9000
    assert state(transport)[:3] == (0x66, 0x66, 0x66)
