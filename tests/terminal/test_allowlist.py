"""The relay's allow-list: every command the server composes for enrollment and payment
passes; nothing that gives the server the card (other applets, the card manager, the
PIN, personalization) does."""
from __future__ import annotations

import pytest

from cardshield.protocol import commands
from cardshield.protocol.constants import APPLET_AID, Template
from cardshield.protocol.transaction import Transaction
from cardshield.terminal.allowlist import RefusedCommand, check

TX = Transaction(1250, "EUR", "Example Shop", "order-1", bytes(32))

SERVER_COMMANDS = [
    commands.select_applet(APPLET_AID).short(),
    commands.generate_key(1).short(),
    commands.read_public_key(2).short(),
    commands.prove_possession(1, bytes(32)).short(),
    commands.select_certificate(1).short(),
    commands.select_certificate(2, fcp=True).short(),
    commands.read_binary(512, ne=256).short(),
    *commands.put_certificate(1, b"\x30\x82\x01\x2c" + bytes(300)).chained(),
    commands.sign_transaction(1, TX).short(),
    *commands.sign_transaction(1, TX, bytes(256)).chained(),
    commands.compute_signature(bytes(32)).short(),
    commands.mse_set(Template.DIGITAL_SIGNATURE, private_slot=1).short(),
    commands.pin_status().short(),
    commands.get_response().short(),
]


@pytest.mark.parametrize("apdu", SERVER_COMMANDS, ids=lambda apdu: apdu[:4].hex().upper())
def test_applet_commands_pass(apdu):
    command, rule = check(apdu)
    assert command.ins == apdu[1] and rule.name


REFUSED = {
    "SELECT card manager": "00A4040008A000000151000000",
    "SELECT other applet": "00A4040007A0000000041010",
    "SELECT applet by partial AID": "00A4040009F04341524453484C44",
    "SELECT other EF": "00A4020C023F00",
    "GP INITIALIZE UPDATE": "8050000008" + "11" * 8 + "00",
    "GP DELETE": "80E400000A4F08A000000151000000",
    "VERIFY with a PIN": "002000810431323334",
    "CHANGE REFERENCE DATA": "0024008118" + "31" * 4 + "FF" * 8 + "35" * 4 + "FF" * 8,
    "RESET RETRY COUNTER": "002C00810C" + "31" * 8 + "35" * 4,
    "PERSONALIZE set PIN": "80E00100043132333400",
    "ISSUE": "80E20000",
    "secure messaging CLA": "0CA4040C0AF04341524453484C4401",
    "logical channel CLA": "01B0000000",
    "secured PERSONALIZE (CLA 84)": "84E0010008" + "00" * 8,
    "READ BINARY with a short EF id": "00B0810000",
    "GENERATE in an unknown slot": "0047800300",
    "chained GENERATE": "1047800100",
    "unknown INS": "00CA9F7F00",
}


@pytest.mark.parametrize("apdu", REFUSED.values(), ids=REFUSED.keys())
def test_card_access_beyond_the_applet_is_refused(apdu):
    with pytest.raises(RefusedCommand) as refusal:
        check(bytes.fromhex(apdu))
    assert "refused" in str(refusal.value) or "class" in str(refusal.value)


def test_a_pin_from_the_server_is_refused_and_not_echoed():
    with pytest.raises(RefusedCommand) as refusal:
        check(bytes.fromhex("002000810439383736"))
    assert "entered at this terminal" in str(refusal.value)
    assert "9876" not in str(refusal.value) and "39383736" not in str(refusal.value)


def test_malformed_apdu_is_refused():
    with pytest.raises(RefusedCommand, match="malformed"):
        check(bytes.fromhex("00A40400FF01"))
