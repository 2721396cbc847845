"""The APDU buffer has the card profile's size (docs/virtual-card.md): jcardsim's extended
buffer (32777 bytes) is larger than a JCOP-4-like card's (1024 in the profile), so an applet
writing past the card's buffer would pass here and fail on the card. (For a short-APDU applet
jcardsim's buffer is 260 bytes, one under the SIM profile's 261: stricter, not kinder.) A small test applet (apdu_buffer_probe/) writes one byte at a chosen
offset; past the profile's size the store fails with ArrayIndexOutOfBoundsException, which it
maps to 6985 as CardShield's process() does."""

from __future__ import annotations

import os

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


RECEIVE_ALL, RECEIVE_ONE_PART = 0x24, 0x26


def test_command_data_larger_than_the_buffer_arrives_in_parts(probe):
    """3,000 bytes in one extended APDU on a card whose buffer holds 1,024: setIncomingAndReceive
    gives what fits, receiveBytes the rest. The probe that loops (as CardShield's Io.receive
    does) gets the data whole; the one that reads Lc bytes from the buffer after
    setIncomingAndReceive alone gets them wrong on the card. jcardsim alone (lenient) delivers
    the whole command at once, so there both pass: the mistake would go unseen."""
    import hashlib

    profile, transport = probe
    data = os.urandom(3000)
    whole = len(data).to_bytes(2, "big") + hashlib.sha256(data).digest()
    looped = transport.transmit(CommandAPDU(0x80, RECEIVE_ALL, 0, 0, data, ne=34))
    assert looped.sw == 0x9000 and looped.data == whole
    one_part = transport.transmit(CommandAPDU(0x80, RECEIVE_ONE_PART, 0, 0, data, ne=34))
    if profile == "lenient":
        assert one_part.data == whole
    else:
        assert one_part.sw != 0x9000 or one_part.data != whole, "an applet skipping receiveBytes got the data whole"


def test_a_certificate_larger_than_the_buffer_is_stored_intact_through_receive_bytes(tmp_path, real_reader):
    """CardShield's PUT DATA with a 3 kB certificate in one extended APDU on jcop4 (1,024-byte
    buffer): Io.receive's loop runs (the host counts the parts) and the certificate reads back
    byte for byte."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from cardshield.card.client import CardShield
    from cardshield.card.transport import Transport
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack
    from tearing_support import issued_card

    if real_reader is not None:
        pytest.skip("the virtual card's APDU buffer emulation")
    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with VirtualCardStack(tmp_path, applets=default_applets(), profile="jcop4") as stack:
        list(issued_card(stack, server, "1234", "12345678"))  # issued, a key in slot 1 (short APDUs)
        der = _certificate_of(3000)
        with Transport(stack.info.reader, extended_length=True) as transport:
            card = CardShield(transport)
            card.select()
            card.verify_pin("1234")
            answer = transport.transmit(CommandAPDU(0x00, 0xDA, 0xC1, 0x01, der))
            assert answer.sw == 0x9000, f"{answer.sw:04X}"
            parts = stack.last_command().incoming_parts
            assert parts == 3, f"the 3,000-byte certificate reached the applet in {parts} part(s)"
            assert card.read_certificate(1) == der


def _certificate_of(size: int) -> bytes:
    """A DER SEQUENCE of exactly `size` bytes (the applet checks for one DER SEQUENCE)."""
    body = os.urandom(size - 4)
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body
