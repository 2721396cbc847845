"""Key diversification, secure messaging and its card-side model, checked three ways:
fixed vectors (docs/personalization.md), an independent recomputation with raw AES
from pyca/cryptography, and the refusal of every tampered byte."""
import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cardshield.perso import keys, secure_messaging as sm
from cardshield.protocol import commands
from cardshield.protocol.command import Command

from . import vectors as v


@pytest.fixture
def card_keys():
    return keys.diversify(keys.software_master(v.MASTER_KEY), v.KEY_VERSION, v.CARD_ID)


def _raw_cmac(key, msg):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def test_kdf_follows_sp800_108_counter_mode(card_keys):
    assert keys.kdf_input(keys.LABEL_ENC, 1, v.CARD_ID).hex().upper() == v.KDF_INPUT_ENC
    expected_enc = _raw_cmac(v.MASTER_KEY, b"\x01CSPERSO-ENC\x00\x01" + v.CARD_ID + b"\x00\x80")
    assert card_keys.enc == expected_enc == bytes.fromhex(v.K_ENC)
    assert card_keys.mac.hex().upper() == v.K_MAC


def test_keys_differ_per_card_and_per_version(card_keys):
    master = keys.software_master(v.MASTER_KEY)
    other_card = keys.diversify(master, 1, bytes.fromhex("0102030405060709"))
    other_version = keys.diversify(master, 2, v.CARD_ID)
    assert len({card_keys.enc, card_keys.mac, other_card.enc, other_version.enc}) == 4


def test_card_id_length_is_checked():
    with pytest.raises(ValueError, match="card id must be 8-16 bytes"):
        keys.diversify(keys.software_master(v.MASTER_KEY), 1, b"\x01" * 7)


def test_key_set_never_prints_its_keys(card_keys):
    assert v.K_ENC.lower() not in repr(card_keys).lower()
    assert card_keys.install_parameter() == b"\x01" + card_keys.enc + card_keys.mac


def _plain(p1, data):
    return Command(0x80, sm.INS_PERSONALIZE, p1, 0x00, data)


def test_set_pin_vector_and_independent_layout(card_keys):
    cmd = sm.wrap(card_keys, commands.personalize_pin("123456"), 1)
    apdu = sm.apdu_bytes(cmd)
    assert apdu.hex().upper() == v.SET_PIN_APDU
    header, lc, data, le = apdu[:4], apdu[4], apdu[5:-1], apdu[-1]
    assert header == bytes.fromhex("84E00100") and lc == len(data) == 30 and le == 0
    kvn, cntr, cryptogram, mac = data[0], data[1:6], data[6:22], data[22:]
    assert kvn == 1 and cntr == bytes.fromhex("0000000001")
    assert _raw_cmac(card_keys.mac, header + data[:22])[:8] == mac
    ecb = Cipher(algorithms.AES(card_keys.enc), modes.ECB()).encryptor()
    iv = ecb.update(bytes(11) + cntr) + ecb.finalize()
    assert iv.hex().upper() == v.SET_PIN_IV
    dec = Cipher(algorithms.AES(card_keys.enc), modes.CBC(iv)).decryptor()
    assert dec.update(cryptogram) + dec.finalize() == b"123456\x80" + bytes(9)
    assert sm.receipt(card_keys, 0xE0, 1, 0, 1).hex().upper() == v.SET_PIN_RECEIPT


def test_issue_vector_has_one_padding_block(card_keys):
    cmd = sm.wrap(card_keys, commands.issue(), 2)
    assert sm.apdu_bytes(cmd).hex().upper() == v.ISSUE_APDU
    assert sm.unwrap(card_keys, cmd.header, cmd.data, last_counter=1) == sm.Unwrapped(2, b"")
    assert sm.receipt(card_keys, 0xE2, 0, 0, 2).hex().upper() == v.ISSUE_RECEIPT


def test_long_command_uses_extended_length(card_keys):
    cmd = sm.wrap(card_keys, _plain(0x04, bytes(300)), 3)
    apdu = sm.apdu_bytes(cmd)
    assert apdu[4] == 0 and int.from_bytes(apdu[5:7], "big") == len(cmd.data) == 1 + 5 + 304 + 8
    assert apdu[-2:] == b"\x01\x00"  # extended Le: 256, room for the receipt
    assert sm.unwrap(card_keys, cmd.header, cmd.data, 2).data == bytes(300)


def test_every_flipped_byte_is_refused(card_keys):
    cmd = sm.wrap(card_keys, _plain(0x01, b"123456"), 5)
    for i in range(len(cmd.header)):
        if i == 0:
            continue  # the CLA is checked by the dispatcher, not the MAC model
        header = bytearray(cmd.header)
        header[i] ^= 0x01
        with pytest.raises(sm.Refused) as err:
            sm.unwrap(card_keys, bytes(header), cmd.data, 0)
        assert err.value.sw == sm.SW_BAD_MAC
    for i in range(len(cmd.data)):
        for bit in (0x01, 0x80):
            data = bytearray(cmd.data)
            data[i] ^= bit
            with pytest.raises(sm.Refused) as err:
                sm.unwrap(card_keys, cmd.header, bytes(data), 0)
            assert err.value.sw == (sm.SW_WRONG_KEY_VERSION if i == 0 else sm.SW_BAD_MAC), i


def test_refusals_have_precise_status_words(card_keys):
    cmd = sm.wrap(card_keys, _plain(0x01, b"123456"), 5)
    for last in (5, 6, sm.COUNTER_MAX):
        with pytest.raises(sm.Refused) as err:
            sm.unwrap(card_keys, cmd.header, cmd.data, last)
        assert err.value.sw == 0x6985
    for cut in (1, 8, len(cmd.data) - 1, 29):
        with pytest.raises(sm.Refused) as err:
            sm.unwrap(card_keys, cmd.header, cmd.data[:cut], 0)
        assert err.value.sw == 0x6700
    other = keys.diversify(keys.software_master(v.MASTER_KEY), 2, v.CARD_ID)
    with pytest.raises(sm.Refused) as err:
        sm.unwrap(other, cmd.header, cmd.data, 0)
    assert err.value.sw == 0x6A88
    other_card = keys.diversify(keys.software_master(v.MASTER_KEY), 1, bytes(8))
    with pytest.raises(sm.Refused) as err:
        sm.unwrap(other_card, cmd.header, cmd.data, 0)
    assert err.value.sw == 0x6988
    assert sm.unwrap(card_keys, cmd.header, cmd.data, 4).data == b"123456"


def test_chained_class_byte_is_macced_as_84(card_keys):
    cmd = sm.wrap(card_keys, _plain(0x04, bytes(300)), 1)
    chained = cmd.chained()
    assert [c[0] for c in chained] == [0x94, 0x84]
    assert sm.unwrap(card_keys, chained[0][:4], cmd.data, 0).data == bytes(300)


def test_install_parameters_carry_key_set_and_card_id(card_keys):
    params = keys.install_parameters(card_keys, v.CARD_ID)
    assert params[:2] == b"\xc0\x21" and params[2] == v.KEY_VERSION
    assert params[35:] == b"\xc1\x08" + v.CARD_ID
