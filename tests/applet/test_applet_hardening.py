"""Real-card hardening: class bytes of logical channels (a phone's OMAPI opens the applet on
a logical channel)."""

import pytest

from applet_support import exchange

pytestmark = pytest.mark.card


@pytest.mark.parametrize("cla", [0x01, 0x03, 0x41, 0x4F])
def test_commands_on_a_logical_channel_reach_the_applet(card, transport, cla):
    """ISO/IEC 7816-4 clause 5.4.1: the channel number lives in CLA (b1-b2, or b1-b4 for the
    further interindustry classes 40-7F); an applet opened by OMAPI on channel 1..19 sees it."""
    channel_free_read = exchange(transport, bytes([cla, 0x47, 0x81, 0x01, 0x00]))
    assert channel_free_read.sw1 == 0x61 or channel_free_read.sw == 0x9000, hex(channel_free_read.sw)
    status = exchange(transport, bytes([cla, 0x20, 0x00, 0x81]))
    assert status.sw == 0x63C3
    proprietary = cla | 0x80
    # proprietary class on the same channel: PROVE POSSESSION without PIN -> 6982, not 6E00
    assert exchange(transport, bytes([proprietary, 0x56, 0x00, 0x01, 0x10]) + bytes(16)).sw == 0x6982


def test_secure_messaging_bits_of_further_classes_are_refused(card, transport):
    # class 60: further interindustry with b6 (secure messaging) set
    assert exchange(transport, "60 20 00 81").sw == 0x6882
