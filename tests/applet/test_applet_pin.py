"""PIN and PUK: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER (ISO/IEC 7816-4 11.5)."""

import pytest

from cardshield.card.errors import CardError
from cardshield.protocol import commands

from applet_support import PIN, PUK, exchange

pytestmark = pytest.mark.card


def test_verify_status_and_reset(card, transport):
    assert card.pin_tries_left() == 3
    card.verify_pin(PIN)
    assert card.pin_tries_left() is None
    card.forget_pin()
    assert card.pin_tries_left() == 3


def test_pin_validity_ends_with_card_reset(card, transport):
    card.verify_pin(PIN)
    transport.reconnect("reset")
    card.select()
    assert card.pin_tries_left() == 3


def test_wrong_pin_counts_down_blocks_and_puk_unblocks(card):
    for left in (2, 1):
        with pytest.raises(CardError) as error:
            card.verify_pin("9999")
        assert error.value.sw == 0x63C0 | left
    with pytest.raises(CardError) as error:
        card.verify_pin("9999")
    assert error.value.sw == 0x63C0  # the try that blocks it
    with pytest.raises(CardError) as error:
        card.verify_pin(PIN)
    assert error.value.sw == 0x6983
    assert card.pin_tries_left() == 0
    with pytest.raises(CardError) as error:
        card.unblock_pin("87654321", PIN)
    assert error.value.sw == 0x63C9
    card.unblock_pin(PUK, PIN)
    assert card.select().puk_tries == 10 and card.pin_tries_left() == 3
    card.verify_pin(PIN)


@pytest.mark.parametrize(
    "apdu, sw",
    [
        ("0020008103313233", 0x6700),  # 3 digits
        ("002000810D31323334353637383930313233", 0x6700),  # 13 digits
        ("0020008104313233FF", 0x6A80),  # not digits: costs no try
        ("0020018104" + "31323334", 0x6A86),
        ("0020008204" + "31323334", 0x6A86),
        ("002400810431323334", 0x6700),  # CHANGE needs 24 bytes
        ("0024008318" + "31323334" + "FF" * 8 + "35363738" + "FF" * 8, 0x6A86),
        ("0024008118" + "3132FF34" + "FF" * 8 + "35363738" + "FF" * 8, 0x6A80),  # padding inside
        ("0024008218" + "31323334" + "FF" * 8 + "31323334" + "FF" * 8, 0x6A80),  # PUK must be 8
        ("002C00810B3132333435363738313233", 0x6700),  # new PIN of 3 digits
        ("002C01810C313233343536373831323334", 0x6A86),
    ],
)
def test_pin_command_format_errors(card, transport, apdu, sw):
    assert exchange(transport, apdu).sw == sw
    assert card.pin_tries_left() == 3


def test_change_pin_and_back(card):
    card.change_pin(PIN, "24681357")
    with pytest.raises(CardError) as error:
        card.verify_pin(PIN)
    assert error.value.sw == 0x63C2
    card.verify_pin("24681357")
    card.change_pin("24681357", PIN)
    card.verify_pin(PIN)


def test_change_pin_with_wrong_old_pin_costs_a_try(card):
    with pytest.raises(CardError) as error:
        card.change_pin("0000", "1111")
    assert error.value.sw == 0x63C2
    card.verify_pin(PIN)  # a good verification resets the counter
    assert card.select().pin_tries == 3


def test_change_puk_and_back(card):
    card.change_puk(PUK, "11223344")
    with pytest.raises(CardError) as error:
        card.change_puk(PUK, "11223344")
    assert error.value.sw == 0x63C9
    card.change_puk("11223344", PUK)
    assert card.select().puk_tries == 10


def test_pin_apdus_are_marked_secret_for_traces():
    for command in (commands.verify_pin(PIN), commands.change_pin(PIN, "5678"), commands.unblock_pin(PUK, PIN),
                    commands.personalize_pin(PIN), commands.personalize_puk(PUK)):
        assert command.apdu().is_secret and PIN not in command.apdu().trace()
