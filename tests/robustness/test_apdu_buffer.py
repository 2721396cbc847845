"""The APDU buffer has the card profile's size (docs/virtual-card.md): jcardsim's extended
buffer (32777 bytes) is larger than a JCOP-4-like card's (1024 in the profile), so an applet
writing past the card's buffer would pass here and fail on the card. (For a short-APDU applet
jcardsim's buffer is 260 bytes, one under the SIM profile's 261: stricter, not kinder.) A small test applet (apdu_buffer_probe/) writes one byte at a chosen
offset; past the profile's size the store fails with ArrayIndexOutOfBoundsException, which it
maps to 6985 as CardShield's process() does."""

from __future__ import annotations

import pytest

from cardshield.card.apdu import CommandAPDU
from probe_applets import probe_applet, probe_transport
from cardshield.sim.profiles import load_profile

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

PACKAGE_AID = bytes.fromhex("F0435342554650")
ARRAY_STORE, FILL = 0x20, 0x22


@pytest.fixture(scope="module", params=["jcop4", "lenient"])
def probe(request, tmp_path_factory, real_reader):
    if real_reader is not None:
        pytest.skip("the virtual card's APDU buffer emulation")
    applet = probe_applet("apdu_buffer_probe", PACKAGE_AID, "org.cardshield.bufprobe.ApduBufferProbe")
    with probe_transport(tmp_path_factory.mktemp("apdubuf"), applet, request.param) as transport:
        yield request.param, transport


@pytest.mark.parametrize("how", [ARRAY_STORE, FILL])
def test_writes_past_the_profiles_apdu_buffer_fail_as_on_the_card(probe, how):
    profile, transport = probe
    size = load_profile("jcop4").apdu_buffer_bytes  # 1024
    # 300 bytes of data: an extended APDU, for which jcardsim hands out its extended buffer
    last_ok = transport.transmit(CommandAPDU(0x80, how, (size - 1) >> 8, (size - 1) & 0xFF, bytes(300)))
    past = transport.transmit(CommandAPDU(0x80, how, size >> 8, size & 0xFF, bytes(300)))
    assert last_ok.sw == 0x9000
    if profile == "lenient":  # jcardsim's own buffer is larger: the write passes, the card would refuse it
        assert past.sw == 0x9000
    else:
        assert past.sw == 0x6985, f"{past.sw:04X}"
