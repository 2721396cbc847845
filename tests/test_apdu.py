"""APDU encoding per ISO/IEC 7816-4 clause 5 and status-word meanings."""

import pytest

from cardshield.card.apdu import APDUFormatError, CommandAPDU, ResponseAPDU, status_word_meaning


@pytest.mark.parametrize(
    "command, encoded",
    [
        (CommandAPDU(0x00, 0xA4, 0x04, 0x00), "00A40400"),  # case 1
        (CommandAPDU(0x00, 0xB0, 0x00, 0x00, ne=256), "00B0000000"),  # case 2S, Ne 256 -> 00
        (CommandAPDU(0x00, 0xB0, 0x00, 0x00, ne=16), "00B0000010"),
        (CommandAPDU(0x00, 0x20, 0x00, 0x81, b"1234"), "002000810431323334"),  # case 3S
        (CommandAPDU(0x00, 0xA4, 0x04, 0x00, bytes(5), ne=256), "00A40400050000000000" + "00"),  # case 4S
        (CommandAPDU(0x00, 0xB0, 0x00, 0x00, ne=65536), "00B00000000000"),  # case 2E, 65536 -> 0000
        (CommandAPDU(0x00, 0xB0, 0x00, 0x00, ne=257), "00B00000000101"),
        (CommandAPDU(0x00, 0xDA, 0xC1, 0x01, bytes(300)), "00DAC10100012C" + "00" * 300),  # case 3E
        (CommandAPDU(0x00, 0x2A, 0x80, 0x86, bytes(257), ne=512), "002A8086000101" + "00" * 257 + "0200"),
        (CommandAPDU(0x00, 0xB0, 0x00, 0x00, ne=16, extended=True), "00B00000000010"),  # forced
    ],
)
def test_encode_and_decode_every_case(command, encoded):
    assert command.encode().hex().upper() == encoded.upper()
    decoded = CommandAPDU.decode(bytes.fromhex(encoded))
    assert (decoded.cla, decoded.ins, decoded.p1, decoded.p2, decoded.data, decoded.ne) == (
        command.cla, command.ins, command.p1, command.p2, command.data, command.ne)
    assert decoded.encode() == command.encode()


@pytest.mark.parametrize("raw", ["00A404", "00A4040005AABB", "00B000000000", "00A40400000003AABB", "00B0000000000101FF"])
def test_decode_rejects_inconsistent_lengths(raw):
    with pytest.raises(APDUFormatError):
        CommandAPDU.decode(bytes.fromhex(raw))


@pytest.mark.parametrize(
    "fields",
    [dict(cla=0xFF, ins=0xA4, p1=0, p2=0), dict(cla=0, ins=0x61, p1=0, p2=0), dict(cla=0, ins=0xA4, p1=256, p2=0),
     dict(cla=0, ins=0xA4, p1=0, p2=0, ne=0), dict(cla=0, ins=0xA4, p1=0, p2=0, data=bytes(65536)),
     dict(cla=0, ins=0xA4, p1=0, p2=0, data=bytes(256), extended=False)],
)
def test_invalid_fields_are_refused(fields):
    with pytest.raises(APDUFormatError):
        CommandAPDU(**fields)


def test_chain_splits_data_and_sets_cla_bit_on_all_but_last():
    command = CommandAPDU(0x00, 0xDA, 0xC1, 0x01, bytes(range(256)) * 2 + b"xyz", ne=256)
    parts = command.chain()
    assert [len(p.data) for p in parts] == [255, 255, 5]
    assert [p.cla for p in parts] == [0x10, 0x10, 0x00]
    assert [p.ne for p in parts] == [None, None, 256]
    assert b"".join(p.data for p in parts) == command.data
    assert all(not p.is_extended for p in parts)


def test_chain_keeps_proprietary_class_and_refuses_double_chaining():
    parts = CommandAPDU(0x80, 0x54, 0x00, 0x01, bytes(300)).chain(100)
    assert [p.cla for p in parts] == [0x90, 0x90, 0x80]
    with pytest.raises(APDUFormatError):
        CommandAPDU(0x10, 0xDA, 0, 0, bytes(300)).chain()


@pytest.mark.parametrize(
    "sw, meaning",
    [(0x9000, "success"), (0x6A82, "file or application not found"), (0x6982, "security status not satisfied"),
     (0x63C2, "verification failed, 2 tries left"), (0x6110, "16 more response bytes available (GET RESPONSE)"),
     (0x6C20, "wrong Le: exactly 32 bytes available"), (0x6983, "authentication method blocked"),
     (0x6D00, "instruction code not supported or invalid"), (0x6A99, "wrong parameters (SW2=99)"),
     (0x1234, "unknown status word")],
)
def test_status_word_meanings(sw, meaning):
    assert status_word_meaning(sw) == meaning
    assert ResponseAPDU.from_bytes(sw.to_bytes(2, "big")).meaning == meaning


def test_response_parsing():
    response = ResponseAPDU.from_bytes(bytes.fromhex("6F0584030102039000"))
    assert (response.data, response.sw, response.sw1, response.sw2, response.ok) == (
        bytes.fromhex("6F05840301020 3".replace(" ", "")), 0x9000, 0x90, 0x00, True)
    with pytest.raises(APDUFormatError):
        ResponseAPDU.from_bytes(b"\x90")


@pytest.mark.parametrize(
    "command",
    [CommandAPDU(0x00, 0x20, 0x00, 0x81, b"123456"),  # VERIFY
     CommandAPDU(0x00, 0x24, 0x00, 0x81, b"1234" + b"\xff" * 8 + b"5678" + b"\xff" * 8),  # CHANGE REFERENCE DATA
     CommandAPDU(0x00, 0x2C, 0x00, 0x81, b"87654321" + b"1234"),  # RESET RETRY COUNTER
     CommandAPDU(0x80, 0xE0, 0x01, 0x00, b"123456"),  # PERSONALIZE set PIN
     CommandAPDU(0x00, 0xDA, 0x00, 0x00, b"123456", sensitive=True)],
)
def test_trace_masks_secret_data(command):
    trace = command.trace()
    assert command.data.hex().upper() not in trace and command.data.hex() not in trace
    assert f"[{len(command.data)} bytes masked]" in trace


def test_trace_shows_ordinary_data():
    assert "F04341524453484C44" in CommandAPDU(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("F04341524453484C44")).trace()
