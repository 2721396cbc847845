"""The PC/SC transport against the virtual card (probe applet): the same pcscd path a
card in a USB reader takes. GET RESPONSE, 6Cxx, chaining, extended length, resets, trace."""

import pytest

from cardshield.card.apdu import CommandAPDU
from cardshield.card.errors import CardError, CardRemovedError, NoCardError, NoReaderError
from cardshield.card.transport import Transport, atr_supports_extended_length, resolve_reader

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


@pytest.fixture
def probe_aid(probe_applet):
    return probe_applet.instance_aid


def select_probe(transport, aid):
    transport.send(CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid), name="SELECT probe")


def test_card_speaks_t1_and_announces_extended_length(transport):
    assert transport.protocol_name == "T1"
    assert atr_supports_extended_length(transport.atr)


def test_select_unknown_aid_is_6a82(transport):
    response = transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("F000000000FF")))
    assert response.sw == 0x6A82


def test_echo_short(transport, probe_aid):
    select_probe(transport, probe_aid)
    assert transport.send(CommandAPDU(0x00, 0x10, 0, 0, b"hello card", ne=256)) == b"hello card"


def test_long_command_as_one_extended_apdu(reader_name, probe_aid):
    payload = bytes(range(256)) * 4
    lines = []
    with Transport(reader_name, trace=True, trace_sink=lines.append) as transport:
        select_probe(transport, probe_aid)
        assert transport.send(CommandAPDU(0x00, 0x10, 0, 0, payload, ne=65536)) == payload
    sent = [line for line in lines if line.startswith("> 00 10")]
    assert len(sent) == 1 and "(extended)" in sent[0]


def test_long_command_chained_and_long_response_by_get_response(reader_name, probe_aid):
    payload = bytes(range(256)) * 3 + b"tail"
    lines = []
    with Transport(reader_name, extended_length=False, trace=True, trace_sink=lines.append) as transport:
        select_probe(transport, probe_aid)
        assert transport.send(CommandAPDU(0x00, 0x10, 0, 0, payload, ne=256)) == payload
    chained = [line for line in lines if line.startswith("> 10 10")]
    assert len(chained) == 3  # 255 * 3 bytes with CLA 10, then the last piece with CLA 00
    get_responses = [line for line in lines if line.startswith("> 00 C0")]
    assert len(get_responses) == 3  # 772 bytes = 256 + 61xx GET RESPONSE x3
    assert not any("(extended)" in line for line in lines)


def test_get_response_collects_61xx(transport, probe_aid):
    select_probe(transport, probe_aid)
    data = transport.send(CommandAPDU(0x00, 0x12, 0x02, 0xBC, ne=256))  # ask for 700 bytes
    assert data == bytes(i & 0xFF for i in range(700))


def test_wrong_le_6cxx_is_resent_with_exact_le(reader_name, probe_aid):
    lines = []
    with Transport(reader_name, trace=True, trace_sink=lines.append) as transport:
        select_probe(transport, probe_aid)
        data = transport.send(CommandAPDU(0x00, 0x14, 0x00, 0x21, ne=256))
    assert data == bytes(range(0x21))
    assert any(line.startswith("< 6C21") for line in lines)
    assert any(line.startswith("> 00 14 00 21 Le=33") for line in lines)


def test_card_error_carries_status_word(transport, probe_aid):
    select_probe(transport, probe_aid)
    with pytest.raises(CardError) as raised:
        transport.send(CommandAPDU(0x00, 0x7E, 0, 0), name="UNKNOWN INS")
    assert raised.value.sw == 0x6D00
    assert "UNKNOWN INS" in str(raised.value) and "6D00" in str(raised.value)


def test_trace_never_shows_secret_data(reader_name):
    lines = []
    pin = b"918273"
    with Transport(reader_name, trace=True, trace_sink=lines.append) as transport:
        transport.transmit(CommandAPDU(0x00, 0x20, 0x00, 0x81, pin))
    joined = "\n".join(lines)
    assert pin.hex().upper() not in joined.upper() and "918273" not in joined
    assert "[6 bytes masked]" in joined


def counters(transport):
    data = transport.send(CommandAPDU(0x00, 0x16, 0, 0, ne=4))
    return int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")


@pytest.mark.parametrize("disposition", ["reset", "unpower"])
def test_reset_clears_transient_state_keeps_persistent(transport, disposition, probe_aid):
    select_probe(transport, probe_aid)
    persistent, transient = counters(transport)
    assert counters(transport) == (persistent + 1, transient + 1)
    transport.reconnect(disposition)
    # The reset deselected the applet: it must be selected again.
    assert transport.transmit(CommandAPDU(0x00, 0x16, 0, 0, ne=4)).sw != 0x9000
    select_probe(transport, probe_aid)
    assert counters(transport) == (persistent + 2, 1)


def test_pristine_card_forgets_persistent_state(virtual_card, transport, probe_aid):
    select_probe(transport, probe_aid)
    counters(transport)
    virtual_card.pristine()
    transport.reconnect("reset")
    select_probe(transport, probe_aid)
    assert counters(transport) == (1, 1)


def test_random_data_is_not_from_a_fixed_seed(virtual_card, transport, probe_aid):
    """jcardsim's RandomData uses a fixed seed unless told otherwise: then the first output of
    a fresh instance would repeat after every reinstall."""
    outputs = []
    for _ in range(2):
        virtual_card.pristine()
        transport.reconnect("reset")
        select_probe(transport, probe_aid)
        outputs.append(transport.send(CommandAPDU(0x00, 0x18, 0, 0, ne=32)))
    assert len(outputs[0]) == 32 and outputs[0] != outputs[1]


def test_card_removed_and_inserted(virtual_card, reader_name, probe_aid):
    transport = Transport(reader_name)
    transport.connect()
    try:
        select_probe(transport, probe_aid)
        before, _ = counters(transport)
        virtual_card.remove_card()
        with pytest.raises((CardRemovedError, NoCardError)):
            select_probe(transport, probe_aid)
        _wait_until_absent(reader_name)
        virtual_card.insert_card()
        transport.close()
        transport = _connect_when_present(reader_name)
        select_probe(transport, probe_aid)
        assert counters(transport)[0] == before + 1  # persistent state survived
    finally:
        transport.close()


def _wait_until_absent(reader_name, attempts=100):
    """pcscd notices a removal on its next poll: wait for it rather than race it."""
    import time

    for _ in range(attempts):
        try:
            Transport.open(reader_name).close()
        except NoCardError:
            return
        time.sleep(0.05)
    raise AssertionError("pcscd still reports a card after it was removed")


def _connect_when_present(reader_name, attempts=100):
    import time

    for _ in range(attempts):
        try:
            return Transport.open(reader_name)
        except NoCardError:
            time.sleep(0.05)
    raise AssertionError("the card did not come back")


def test_reader_selection_is_exact_or_by_index():
    readers = ["CardShield Virtual Reader 00 00", "CardShield Virtual Reader 00 01"]
    assert resolve_reader("CardShield Virtual Reader 00 01", readers) == readers[1]
    assert resolve_reader(0, readers) == readers[0]
    assert resolve_reader("1", readers) == readers[1]
    for ambiguous in ("CardShield", "Virtual Reader", "cardshield virtual reader 00 00", None, "2"):
        with pytest.raises(NoReaderError) as raised:
            resolve_reader(ambiguous, readers)
        assert readers[0] in str(raised.value)  # the message lists what exists


def test_unknown_reader_is_refused_with_the_list(reader_name):
    with pytest.raises(NoReaderError) as raised:
        Transport.open("No Such Reader 00 00")
    assert reader_name in str(raised.value)


def test_long_command_is_chained_when_the_reader_takes_short_apdus_only(reader_name, probe_aid):
    """A CCID reader with 271-byte messages (261 bytes of APDU, SCARD_ATTR_MAXINPUT) gets a
    command chain, not an extended APDU it would refuse."""
    payload = bytes(range(256)) * 2
    lines = []
    with Transport(reader_name, trace=True, trace_sink=lines.append) as transport:
        transport.reader_max_apdu = 261  # what such a reader reports (the virtual reader reports none)
        select_probe(transport, probe_aid)
        assert transport.send(CommandAPDU(0x00, 0x10, 0, 0, payload, ne=256)) == payload
    assert any(line.startswith("> 10 10") for line in lines)
    assert not any("(extended)" in line for line in lines)
