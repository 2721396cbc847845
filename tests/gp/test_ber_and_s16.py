"""Card answers read leniently (vendor tags, padding, the legacy status format) while the
applet protocol stays strict; SCP03 S16 checked against an independent computation with
cryptography's KBKDFCMAC and CMAC (no published S16 vectors are at hand)."""
import os

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from cardshield.gp import ber, commands as gp, scp03
from cardshield.gp.secure_channel import C_MAC, InitUpdateResponse, split_apdu
from cardshield.protocol import tlv

H = bytes.fromhex

# an E3 entry as some cards send it: a proprietary three-byte tag (DF8101), a long-form
# length (81) that the strict parser would also take, and FF padding after the entries
VENDOR_STATUS = (H("E3 81 1E") + H("4F 07 A0000000031010") + H("9F70 01 07") + H("C5 01 00")
                 + H("DF8101 03 010203") + H("C4 05 A000000003") + H("FFFF"))


def test_lenient_status_parser_reads_vendor_tags_and_padding():
    [entry] = gp.parse_status(gp.STATUS_APPLICATIONS, VENDOR_STATUS)
    assert entry.aid == H("A0000000031010") and entry.life_cycle_name == "SELECTABLE"
    assert entry.load_file_aid == H("A000000003")


def test_the_applet_protocol_parser_stays_strict():
    with pytest.raises(tlv.TLVError, match="longer than two bytes"):
        tlv.decode(H("DF8101 01 00"))


def test_lenient_parser_still_refuses_what_cannot_be_read():
    with pytest.raises(tlv.TLVError, match="announces 9 bytes"):
        ber.decode(H("E3 09 4F 07 A0000000"))


def test_legacy_status_format():
    data = H("07 A0000000031010 07 00") + H("05 A000000003 01 00")
    entries = gp.parse_legacy_status(gp.STATUS_APPLICATIONS, data)
    assert [(e.aid, e.life_cycle) for e in entries] == [(H("A0000000031010"), 7), (H("A000000003"), 1)]
    modules = gp.parse_legacy_status(gp.STATUS_LOAD_FILES_AND_MODULES, H("05 A000000003 01 00 02 05 A000000001 06"
                                                                         " A00000000102"))
    assert modules[0].modules == (H("A000000001"), H("A00000000102"))
    with pytest.raises(tlv.TLVError, match="truncated"):
        gp.parse_legacy_status(gp.STATUS_APPLICATIONS, H("07 A00000"))


def test_fci_names_the_security_domain_and_its_buffer():
    fci = gp.SecurityDomainFci.parse(H("6F 10 84 08 A000000151000000 A5 04 9F65 01 40"))
    assert fci.aid == H("A000000151000000") and fci.max_command_data == 0x40 and not fci.is_security_domain
    assert gp.SecurityDomainFci.parse(H("6F 05 84 03 0102")).aid is None  # unreadable: names nothing


def reference_kdf(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """Amendment D 6.2.2 as NIST SP 800-108 counter mode: fixed data = label (11 x 00,
    constant) || 00 || L, the 1-byte counter after it, then the context."""
    fixed = bytes(11) + bytes([constant, 0]) + bits.to_bytes(2, "big") + context
    return KBKDFCMAC(algorithms.AES, Mode.CounterMode, bits // 8, 1, None, CounterLocation.MiddleFixed, None, None,
                     fixed, break_location=15).derive(key)


@pytest.mark.parametrize("key_length", [16, 32])
def test_s16_session_matches_an_independent_computation(key_length):
    key = os.urandom(key_length)
    host, card = os.urandom(16), os.urandom(16)
    session = scp03.SCP03Session(key, key, key, host, card, s16=True)
    context = host + card
    s_mac = reference_kdf(key, 0x06, context, key_length * 8)
    assert session.s_mac == s_mac
    assert session.s_enc == reference_kdf(key, 0x04, context, key_length * 8)
    assert session.card_cryptogram() == reference_kdf(s_mac, 0x00, context, 128)
    assert session.host_cryptogram() == reference_kdf(s_mac, 0x01, context, 128)
    assert len(session.host_cryptogram()) == 16
    # EXTERNAL AUTHENTICATE: the full 16-byte CMAC over chaining value 0 || header || cryptogram
    apdu = session.external_authenticate(C_MAC)
    cla, ins, p1, p2, data, _ = split_apdu(apdu)
    mac = cmac.CMAC(algorithms.AES(s_mac))
    mac.update(bytes(16) + bytes([0x84, 0x82, 0x01, 0x00, 32]) + session.host_cryptogram())
    assert data == session.host_cryptogram() + mac.finalize()


def test_s16_initialize_update_response_layout():
    kdd, challenge, cryptogram, counter = bytes(10), os.urandom(16), os.urandom(16), H("000001")
    response = InitUpdateResponse.parse(kdd + H("30 03 11") + challenge + cryptogram + counter)
    assert (response.card_challenge, response.card_cryptogram, response.sequence_counter) == (challenge, cryptogram,
                                                                                             counter)
    with pytest.raises(ValueError, match="S16 .* must be 45 or 48 bytes"):
        InitUpdateResponse.parse(kdd + H("30 03 11") + bytes(16))


def test_pseudo_random_s16_card_challenge_matches_the_reference():
    key, counter, aid = os.urandom(16), H("00002A"), H("A0000001515350")
    assert scp03.pseudo_random_card_challenge(key, counter, aid, s16=True) == reference_kdf(key, 0x02,
                                                                                             counter + aid, 128)
