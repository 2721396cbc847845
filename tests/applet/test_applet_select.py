"""SELECT and the FCI, class/instruction errors, GET RESPONSE and chaining rules."""

import pytest

from cardshield.card.apdu import CommandAPDU, ResponseAPDU
from cardshield.protocol import APPLET_AID, AlgorithmSupport, CardFlags, Lifecycle, commands

from applet_support import exchange, short_apdus_only

pytestmark = pytest.mark.card


def test_fci_describes_the_issued_reference_card(card):
    fci = card.select()
    assert fci.aid == APPLET_AID
    assert fci.version == (1, 2)
    assert fci.lifecycle is Lifecycle.ISSUED
    assert AlgorithmSupport.RSA_2048 in fci.algorithms
    assert fci.max_certificate_size == 3072
    assert fci.slots[1].has_key and fci.slots[2].has_key
    assert {CardFlags.PIN_SET, CardFlags.PUK_SET, CardFlags.SERVER_KEY_LOADED, CardFlags.DEVELOPMENT_CARD} <= set(
        CardFlags(f) for f in CardFlags if f in fci.flags
    )
    assert (fci.pin_tries, fci.puk_tries) == (3, 10)


def test_select_without_le_answers_61xx_and_get_response_returns_the_fci(card, transport):
    first = exchange(transport, "00A404000A" + APPLET_AID.hex())
    assert first.sw1 == 0x61
    rest = exchange(transport, f"00C00000{first.sw2:02X}")
    assert rest.sw == 0x9000 and rest.data[0] == 0x6F and len(rest.data) == first.sw2


def test_long_response_comes_in_parts_through_get_response(card, transport):
    # READ PUBLIC KEY of RSA-2048 is 270 bytes: Le=100 gives 100 bytes and 61xx
    part = exchange(transport, "0047810164")
    assert part.sw == 0x61AA and len(part.data) == 100
    more = exchange(transport, "00C0000064")
    assert more.sw == 0x6146 and len(more.data) == 100
    last = exchange(transport, "00C0000046")
    assert last.sw == 0x9000 and len(last.data) == 70
    whole = card.transmit(commands.read_public_key(1)).data
    assert part.data + more.data + last.data == whole


def test_get_response_without_pending_data_is_refused(card, transport):
    assert exchange(transport, "00C0000000").sw == 0x6985
    assert exchange(transport, "00C0010000").sw == 0x6A86


def test_another_command_discards_a_pending_response(card, transport):
    assert exchange(transport, "0047810110").sw1 == 0x61
    assert exchange(transport, "0020008100").sw1 == 0x63
    assert exchange(transport, "00C0000000").sw == 0x6985


@pytest.mark.parametrize(
    "apdu, sw",
    [
        ("0C20008100", 0x6882),  # secure messaging bits
        ("A020008100", 0x6E00),  # unknown class
        ("8020008100", 0x6E00),  # ISO INS with the proprietary class
        ("00540001", 0x6E00),  # proprietary INS with the ISO class
        ("0050000000", 0x6D00),  # unknown INS
        ("8050000000", 0x6D00),
        ("00A4040005F000000000", 0x6A82),  # another AID while selected
        ("1047810100", 0x6884),  # chaining a command without data
        ("10C0000000", 0x6884),
    ],
)
def test_class_and_instruction_errors(card, transport, apdu, sw):
    assert exchange(transport, apdu).sw == sw


def test_a_different_command_inside_a_chain_gets_6883(verified, transport):
    assert exchange(transport, "90540001038101FF").sw == 0x9000  # opens a chain
    assert exchange(transport, "0047810100").sw == 0x6883
    # the chain is gone: the next command works normally
    assert exchange(transport, "0047810100").sw1 in (0x61, 0x90)


def test_selection_clears_pin_and_chain(verified, transport):
    assert verified.pin_tries_left() is None
    exchange(transport, "90540001038101FF")
    verified.select()
    assert verified.pin_tries_left() == 3
    assert exchange(transport, "00540001").sw != 0x6883


def test_extended_apdu_reaches_the_applet(card, transport):
    """READ PUBLIC KEY with an extended Le: the whole 7F49 template in one answer, or on a card
    without extended length (a SIM, T=0) 6700 and no data, as the card's runtime refuses it."""
    read_public_key = CommandAPDU(0x00, 0x47, 0x81, 0x01, ne=4096, extended=True)
    if short_apdus_only(transport):  # sent as is: the client itself would not send it on T=0
        assert transport.exchange_raw(read_public_key.encode()) == ResponseAPDU(b"", 0x6700)
        return
    response = transport.exchange(read_public_key)
    assert response.sw == 0x9000 and len(response.data) == 270


def test_status_command_describes_the_card(card, reader_name, capsys):
    from cardshield.cli import main

    assert main(["card", "status", "--reader", reader_name]) == 0
    out = capsys.readouterr().out
    assert "lifecycle:        ISSUED" in out and "slot 1:           RSA-2048, key present" in out
    assert "PIN tries left:   3" in out
