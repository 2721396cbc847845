"""What the applet's one I/O place guarantees (docs/applet.md, "One place for I/O"):
process() alone applies Ne (ISO/IEC 7816-4 clause 5.1), answers 61xx and keeps the rest for
GET RESPONSE (clause 11.7.1), and at the end of every command, errors included, zeroes the
command's bytes: the data field in the APDU buffer (a global array) and the applet's whole
transient buffer, except the rest of a pending response or what an open chain delivered.

RAM is read with the virtual card's host-only INSPECT control (KeyProbe.java): the applet's
transient buffer (field t.buffer) and the APDU buffer as the last command left it; neither
is reachable by APDU. Not covered: a real card's RAM (the same code runs there; jcardsim
zeroes its APDU buffer before each command as the Java Card API requires of every card).
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import padding

from applet_support import PIN, exchange
from cardshield.card.apdu import CommandAPDU
from cardshield.protocol.constants import APPLET_AID

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

#: ISO/IEC 7816-4 clause 5.1: CLA INS P1 P2 Lc, then the data field (short APDUs)
HEADER = 5
#: READ PUBLIC KEY of an RSA-2048 slot: 7F49 82 01 09 { 81 82 01 00 modulus, 82 03 exponent }
PUBLIC_KEY_DO = 270


def transient_buffer(virtual_card) -> str:
    answer = virtual_card.inspect_applet(APPLET_AID, "t.buffer")
    assert answer.startswith("length="), answer
    return answer


def apdu_buffer_data_is_zero(virtual_card) -> bool:
    """Whether the APDU buffer holds nothing but a header: zero from offset 5 on."""
    answer = virtual_card.inspect_applet(APPLET_AID, "APDU_BUFFER")
    if "zero=yes" in answer:
        return True
    last = int(answer.split("nonzero=")[1].split("-")[1])
    return last < HEADER


def t0(transport) -> bool:
    """A T=0 card (the SIM profile): short APDUs only, and a case-4 command's TPDU carries no
    Le, so the runtime holds its answer and announces it with 61xx (ISO/IEC 7816-3 clause 12.2)."""
    return transport.protocol_name == "T0"


def decipher(transport, cryptogram: bytes, ne: int):
    """DECIPHER in short APDUs, any card's way (command chaining, ISO/IEC 7816-4 clause 5.3;
    Ne on the last part); returns the last part's answer."""
    for part in CommandAPDU(0x00, 0x2A, 0x80, 0x86, b"\x00" + cryptogram, ne=ne).chain():
        answer = transport.exchange(part)
    return answer


@pytest.fixture
def secret_cryptogram(reference):
    secret = os.urandom(32)
    return secret, reference.public_keys[2].encrypt(secret, padding.PKCS1v15())


def test_a_deciphered_secret_leaves_no_byte_in_the_applets_ram(verified, virtual_card, secret_cryptogram):
    secret, cryptogram = secret_cryptogram
    assert verified.decipher(cryptogram) == secret
    assert "zero=yes" in transient_buffer(virtual_card)


def test_a_verified_or_refused_pin_leaves_no_byte_in_ram(card, transport, virtual_card):
    for pin, sw in ((PIN, 0x9000), ("9999", 0x63C2), (PIN, 0x9000)):  # the right PIN restores the tries
        answer = exchange(transport, "00 20 00 81 04" + pin.encode().hex())
        assert answer.sw == sw, f"{answer.sw:04X}"
        assert "zero=yes" in transient_buffer(virtual_card)
        assert apdu_buffer_data_is_zero(virtual_card)


@pytest.mark.parametrize("apdu, sw", [
    ("00 20 00 81 0D 31 32 33 34 35 36 37 38 39 30 31 32 33", 0x6700),  # above the PIN's 12 digits
    ("00 20 00 82 04 31 32 33 34", 0x6A86),  # refused by its header, before its data was read
    ("00 24 00 81 04 31 32 33 34", 0x6700),  # CHANGE REFERENCE DATA needs 2 x 12 bytes
])
def test_a_pin_command_refused_leaves_no_byte_of_its_data(card, transport, virtual_card, apdu, sw):
    answer = exchange(transport, apdu)
    assert answer.sw == sw, f"{answer.sw:04X}"
    assert "zero=yes" in transient_buffer(virtual_card)
    if sw == 0x6A86 and t0(transport):
        return  # on T=0 a data field nobody asked for stays in the reader; jcardsim's buffer has it anyway
    assert apdu_buffer_data_is_zero(virtual_card)


def test_a_chained_pin_stays_only_where_the_chain_needs_it(card, transport, virtual_card):
    first = exchange(transport, "10 20 00 81 02 31 32")
    assert first.sw == 0x9000
    assert apdu_buffer_data_is_zero(virtual_card)
    assert transient_buffer(virtual_card).endswith("nonzero=0-1")  # "12", kept for the last part
    last = exchange(transport, "00 20 00 81 02 33 34")
    assert last.sw == 0x9000
    assert "zero=yes" in transient_buffer(virtual_card)
    assert exchange(transport, "00 20 00 81").sw == 0x9000  # the PIN of both parts was verified


def test_a_pending_secret_is_kept_for_get_response_and_wiped_once_fetched(verified, transport, virtual_card,
                                                                           secret_cryptogram):
    secret, cryptogram = secret_cryptogram
    first = decipher(transport, cryptogram, ne=10)
    if t0(transport):  # the TPDU carried no Le: all 32 bytes announced, held by the applet or the runtime
        assert first.sw == 0x6120 and first.data == b""
        first = exchange(transport, "00 C0 00 00 0A")
    else:  # the applet sent Ne = 10 bytes and keeps the rest (clause 5.1)
        assert "zero=no" in transient_buffer(virtual_card)
    assert first.sw == 0x6116 and first.data == secret[:10]
    second = exchange(transport, "00 C0 00 00 0C")
    assert second.sw == 0x610A and second.data == secret[10:22]
    last = exchange(transport, "00 C0 00 00 00")
    assert last.sw == 0x9000 and last.data == secret[22:]
    assert "zero=yes" in transient_buffer(virtual_card)
    assert exchange(transport, "00 C0 00 00 00").sw == 0x6985  # nothing left


def test_a_pending_secret_another_command_discards_is_wiped(verified, transport, virtual_card, secret_cryptogram):
    _, cryptogram = secret_cryptogram
    assert decipher(transport, cryptogram, ne=8).sw == (0x6120 if t0(transport) else 0x6118)
    assert exchange(transport, "00 20 00 81").sw == 0x9000  # VERIFY status: not GET RESPONSE
    assert "zero=yes" in transient_buffer(virtual_card)
    assert exchange(transport, "00 C0 00 00 00").sw == 0x6985


def test_a_failed_decipher_leaves_no_byte_in_ram(verified, transport, virtual_card):
    bad = bytes(255) + b"\x01"  # below the modulus, but no PKCS#1 v1.5 block inside
    answer = decipher(transport, bad, ne=256)
    assert answer.sw == 0x6A80, f"{answer.sw:04X}"
    assert "zero=yes" in transient_buffer(virtual_card)


def fetch_in_parts(transport, first_ne: int, nes: list[int], extended: bool | None, total: int) -> bytes:
    """READ PUBLIC KEY of slot 01 asking for first_ne bytes, then GET RESPONSE with each Ne
    of nes: every answer must hold exactly min(Ne, what is left) and announce the rest
    (61xx, xx = 00 for 256 or more) until the last, 9000."""
    got = b""
    commands = [CommandAPDU(0x00, 0x47, 0x81, 0x01, ne=first_ne, extended=extended)]
    commands += [CommandAPDU(0x00, 0xC0, 0x00, 0x00, ne=ne, extended=extended) for ne in nes]
    for command in commands:
        answer = transport.exchange(command)
        assert len(answer.data) == min(command.ne, total - len(got)), (command.ne, len(got), len(answer.data))
        got += answer.data
        left = total - len(got)
        assert answer.sw == (0x9000 if left == 0 else 0x6100 | (left if left < 256 else 0)), f"{answer.sw:04X}"
    return got


def extended_refused(transport, raw_hex: str) -> bool:
    """On a card with short APDUs only (T=0): the extended APDU is refused with 6700, docs/apdu.md
    "Lengths" (here by the T=0 layer, before any applet). Returns whether the card is such a card."""
    if not t0(transport):
        return False
    assert transport.exchange_raw(bytes.fromhex(raw_hex)).sw == 0x6700
    return True


@pytest.mark.parametrize("extended", [False, True], ids=["short", "extended"])
def test_get_response_returns_the_exact_rest_of_a_response_longer_than_ne(card, transport, extended):
    whole = fetch_in_parts(transport, 256, [256], False, PUBLIC_KEY_DO)
    if extended and extended_refused(transport, "00 47 81 01 00 00 64"):
        return
    assert fetch_in_parts(transport, 100, [7, 58, 256], extended, PUBLIC_KEY_DO) == whole


def test_an_extended_ne_above_the_response_gets_it_whole_and_a_short_one_at_most_256(card, transport):
    short = transport.exchange(CommandAPDU(0x00, 0x47, 0x81, 0x01, ne=256, extended=False))
    assert short.sw == 0x610E and len(short.data) == 256  # Le 00 of a short APDU: 256 (clause 5.1)
    if extended_refused(transport, "00 47 81 01 00 01 2C"):
        return
    whole = transport.exchange(CommandAPDU(0x00, 0x47, 0x81, 0x01, ne=300, extended=True))
    assert whole.sw == 0x9000 and len(whole.data) == PUBLIC_KEY_DO and whole.data[:256] == short.data


def test_a_command_without_le_gets_its_answer_announced_and_fetched_whole(card, transport):
    """No Le field: Ne = 0 (ISO/IEC 7816-4 clause 5.1), so nothing comes with the status word
    but 61xx, and GET RESPONSE brings the whole answer."""
    whole = fetch_in_parts(transport, 256, [256], False, PUBLIC_KEY_DO)
    announced = exchange(transport, "00 47 81 01")
    assert announced.sw == 0x6100 and announced.data == b""
    first = exchange(transport, "00 C0 00 00 00")
    assert first.sw == 0x610E and first.data == whole[:256]
    rest = exchange(transport, "00 C0 00 00 0E")
    assert rest.sw == 0x9000 and rest.data == whole[256:]
