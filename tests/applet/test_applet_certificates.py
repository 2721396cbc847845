"""The certificate store: PUT DATA (chained / extended), SELECT EF + READ BINARY (short /
extended; a short-APDU card refuses the extended ones with 6700), atomic commit under card
reset between any two APDUs of a write."""

import hashlib

import pytest
from cryptography import x509

from applet_support import PIN, certificate_of_size, exchange, make_certificate, short_apdus_only
from cardshield.card.apdu import CommandAPDU, ResponseAPDU
from cardshield.card.errors import CardError
from cardshield.protocol import commands, encode_rsa_public_key, parse_certificate_fcp
from cardshield.protocol.command import Command

pytestmark = pytest.mark.card


@pytest.fixture
def certs(verified, reference, server_key):
    """Two certificates for slot 1's key: a small one and one of the maximum size."""
    key = reference.public_keys[1]
    yield make_certificate(key, server_key, serial=1), certificate_of_size(key, server_key, 3072, serial=2)
    verified.verify_pin(PIN)
    verified.write_certificate(1, b"")
    verified.write_certificate(2, b"")


def test_a_3k_certificate_round_trips_with_short_apdus_only(certs, short_apdus):
    _, big = certs
    short_apdus.verify_pin(PIN)
    short_apdus.write_certificate(1, big)
    assert short_apdus.read_certificate(1) == big
    x509.load_der_x509_certificate(big)
    fci = short_apdus.select()
    assert fci.slots[1].has_certificate and fci.slots[1].certificate_length == 3072


def test_extended_write_and_extended_read(verified, certs):
    _, big = certs
    transport = verified.transport
    if short_apdus_only(transport):  # a SIM: the extended PUT DATA and READ BINARY are refused
        put = commands.put_certificate(2, big).apdu(True).encode()
        assert transport.exchange_raw(put) == ResponseAPDU(b"", 0x6700)
        assert verified.read_certificate(2) is None  # nothing stored
        verified.write_certificate(2, big)
        assert transport.transmit(commands.select_certificate(2).apdu()).sw == 0x9000
        read = commands.read_binary(0, ne=len(big)).apdu(True).encode()
        assert transport.exchange_raw(read) == ResponseAPDU(b"", 0x6700)
    else:
        verified.write_certificate(2, big, extended=True)
        assert verified.read_certificate(2, extended=True) == big
    assert verified.read_certificate(2) == big


def test_read_binary_with_offsets_and_bounds(verified, certs, transport):
    small, _ = certs
    verified.write_certificate(1, small)
    assert exchange(transport, "00B0000010").sw == 0x6986  # no EF selected yet
    assert exchange(transport, "00A4020C02C101").sw == 0x9000
    part = exchange(transport, "00B0000510")
    assert part.sw == 0x9000 and part.data == small[5:21]
    tail = exchange(transport, f"00B0{len(small) - 3:04X}00")
    assert tail.data == small[-3:]  # fewer than Ne bytes: the end of the EF
    assert exchange(transport, f"00B0{len(small):04X}00").sw == 0x6B00
    assert exchange(transport, "00B0800000").sw == 0x6A86  # short EF identifier form
    fcp = transport.transmit(CommandAPDU.decode(bytes.fromhex("00A4020402C10100")))  # T=0: 61xx, GET RESPONSE
    assert fcp.data == (bytes.fromhex("622D8002") + len(small).to_bytes(2, "big") + bytes.fromhex("820101 8302C101")
                        + b"\x85\x20" + hashlib.sha256(small).digest())


def test_fcp_reference_is_the_sha256_of_the_stored_certificate_and_goes_with_it(verified, certs):
    """Tag 85 lets the payment path check which certificate the card holds in one short APDU."""
    small, big = certs
    for der in (small, big, small):
        verified.write_certificate(1, der)
        answer = verified.transmit(commands.select_certificate(1, fcp=True))
        fcp = parse_certificate_fcp(answer.data)
        assert (fcp.file_id, fcp.size, fcp.sha256) == (b"\xc1\x01", len(der), hashlib.sha256(der).digest())
        assert len(answer.data) + 2 <= 49
    verified.write_certificate(1, b"")
    assert verified.transmit(commands.select_certificate(1, fcp=True)).sw == 0x6A82


@pytest.mark.parametrize("apdu, sw", [("00A4020C02C103", 0x6A82), ("00A4020C02C102", 0x6A82),
                                      ("00A4020C03C10100", 0x6700), ("00A4010C02C101", 0x6A86),
                                      ("00A4020802C101", 0x6A86)])
def test_select_ef_errors(card, transport, apdu, sw):
    assert exchange(transport, apdu).sw == sw


def test_write_needs_the_pin(card, certs):
    card.forget_pin()
    with pytest.raises(CardError) as error:
        card.write_certificate(1, certs[0])
    assert error.value.sw == 0x6982


def test_too_large_and_malformed_certificates_are_refused(verified, certs, reference, server_key):
    small, _ = certs
    verified.write_certificate(1, small)
    with pytest.raises(CardError) as error:
        verified.write_certificate(1, certificate_of_size(reference.public_keys[1], server_key, 3073))
    assert error.value.sw == 0x6A84
    for bad in (b"\x31" + small[1:], small[:-1], small + b"\x00"):
        with pytest.raises(CardError) as error:
            verified.write_certificate(1, bad)
        assert error.value.sw == 0x6A80
    assert verified.read_certificate(1) == small  # every refusal left the old one
    assert verified.transmit(Command(0x00, 0xDA, 0xC2, 0x01, small)).sw == 0x6A86
    assert verified.transmit(Command(0x00, 0xDA, 0xC1, 0x03, small)).sw == 0x6A86


def test_empty_put_data_deletes(verified, certs):
    verified.write_certificate(1, certs[0])
    verified.write_certificate(1, b"")
    assert verified.read_certificate(1) is None
    assert not verified.select().slots[1].has_certificate


@pytest.mark.parametrize("disposition", ["reset", "unpower"])
def test_interrupted_chained_write_leaves_the_previous_certificate(verified, certs, transport, disposition):
    """Reset the card (PC/SC reset, or unpower: a cold reset like a tear) after each possible
    APDU of a chained write: the card must keep the previous certificate every time, and
    commit only a whole chain."""
    old, new = certs
    verified.write_certificate(1, old)
    chain = commands.put_certificate(1, new).chained()
    assert len(chain) == 13
    for cut in range(1, len(chain)):
        for apdu in chain[:cut]:
            assert exchange(transport, apdu).sw == 0x9000
        transport.reconnect(disposition)
        verified.select()
        assert verified.read_certificate(1) == old, f"certificate changed by a write cut after APDU {cut}"
        verified.verify_pin(PIN)
    # the remaining APDUs of a cut chain sent alone (no chain open any more) are refused
    for apdu in chain[5:]:
        last = exchange(transport, apdu)
    assert last.sw == 0x6A80
    assert verified.read_certificate(1) == old
    for apdu in chain:
        assert exchange(transport, apdu).sw == 0x9000
    assert verified.read_certificate(1) == new


def test_key_regeneration_discards_the_certificate(fresh_card, server_key):
    from applet_support import PUK
    fresh_card.personalize_development_card(PIN, PUK, server_key_7f49=encode_rsa_public_key(server_key.public_key()))
    fresh_card.verify_pin(PIN)
    key = fresh_card.generate_key(1)
    fresh_card.write_certificate(1, make_certificate(key, server_key))
    assert fresh_card.select().slots[1].has_certificate
    fresh_card.verify_pin(PIN)
    fresh_card.generate_key(1)
    assert fresh_card.read_certificate(1) is None
    assert not fresh_card.select().slots[1].has_certificate
