"""SIGN TRANSACTION (dynamic linking with the card's counter) and PROVE POSSESSION."""

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from applet_support import PIN, exchange
from cardshield.card.errors import CardError
from cardshield.protocol import Transaction, possession_data, request_data, signed_transaction_data, tlv

pytestmark = pytest.mark.card


def payment(amount=1234, payee="Bakery Müller") -> Transaction:
    return Transaction(amount=amount, currency="EUR", payee=payee, order_ref="ORDER-77", nonce=os.urandom(16))


def test_transaction_signature_binds_the_fields_and_the_counter(verified, reference):
    tx = payment()
    first = verified.sign_transaction(1, tx)
    reference.public_keys[1].verify(first.signature, signed_transaction_data(tx.tlvs(), first.counter),
                                    padding.PKCS1v15(), hashes.SHA256())
    second = verified.sign_transaction(1, tx)
    assert second.counter == first.counter + 1
    assert verified.select().counter == second.counter
    # the same payment with another amount is a different message
    with pytest.raises(Exception):
        reference.public_keys[1].verify(first.signature, signed_transaction_data(payment(999).tlvs(), first.counter),
                                        padding.PKCS1v15(), hashes.SHA256())


def test_counter_survives_reset_and_keeps_increasing(verified, transport):
    before = verified.sign_transaction(2, payment()).counter
    transport.reconnect("unpower")
    verified.select()
    verified.verify_pin(PIN)
    assert verified.sign_transaction(2, payment()).counter == before + 1


def test_optional_server_signature_is_checked_when_present(verified, reference, server_key):
    tx = payment()
    good = server_key.sign(request_data(tx.tlvs()), padding.PKCS1v15(), hashes.SHA256())
    signed = verified.sign_transaction(1, tx, good)
    reference.public_keys[1].verify(signed.signature, signed_transaction_data(tx.tlvs(), signed.counter),
                                    padding.PKCS1v15(), hashes.SHA256())
    forged = server_key.sign(request_data(payment(1).tlvs()), padding.PKCS1v15(), hashes.SHA256())
    before = verified.select().counter
    verified.verify_pin(PIN)
    with pytest.raises(CardError) as error:
        verified.sign_transaction(1, tx, forged)
    assert error.value.sw == 0x6982
    assert verified.select().counter == before  # a refused request does not move the counter


def _command(fields: bytes, p1p2: str = "0001"):
    from cardshield.card.apdu import CommandAPDU

    return CommandAPDU(0x80, 0x54, int(p1p2[:2], 16), int(p1p2[2:], 16), fields, ne=256)


def _raw(fields: bytes, p1p2: str = "0001") -> bytes:
    return _command(fields, p1p2).encode()


@pytest.mark.parametrize(
    "fields",
    [
        b"",
        bytes.fromhex("8101FF") + tlv.encode(0x82, b"EUR") + tlv.encode(0x83, b"p") + tlv.encode(0x84, b"o"),
        bytes.fromhex("8100") + tlv.encode(0x82, b"EUR") + tlv.encode(0x83, b"p") + tlv.encode(0x84, b"o")
        + tlv.encode(0x85, bytes(16)),  # empty amount
        bytes.fromhex("8101FF") + tlv.encode(0x82, b"eur") + tlv.encode(0x83, b"p") + tlv.encode(0x84, b"o")
        + tlv.encode(0x85, bytes(16)),  # lower-case currency
        bytes.fromhex("8101FF") + tlv.encode(0x82, b"EUR") + tlv.encode(0x84, b"o") + tlv.encode(0x83, b"p")
        + tlv.encode(0x85, bytes(16)),  # out of order
        bytes.fromhex("8101FF") + tlv.encode(0x82, b"EUR") + tlv.encode(0x83, b"p") + tlv.encode(0x84, b"o")
        + tlv.encode(0x85, bytes(15)),  # short nonce
        payment().tlvs() + bytes.fromhex("9901AA"),  # unknown trailing DO
        payment().tlvs() + tlv.encode(0x8E, bytes(255)),  # 8E of the wrong length
        bytes.fromhex("81810101") + payment().tlvs()[3:],  # long-form length
    ],
    ids=["empty", "no-nonce", "empty-amount", "lower-case-currency", "out-of-order", "short-nonce",
         "unknown-DO", "8E-length", "long-form-length"],
)
def test_malformed_transactions_are_refused(verified, transport, fields):
    # through the client's path: a command over 255 bytes is chained on a short-APDU card
    assert transport.transmit(_command(fields)).sw == 0x6A80


def test_transaction_refusals(card, transport):
    tx = payment().tlvs()
    assert exchange(transport, _raw(tx)).sw == 0x6982  # PIN
    card.verify_pin(PIN)
    assert exchange(transport, _raw(tx, "0103")).sw == 0x6A86
    assert exchange(transport, _raw(tx, "0003")).sw == 0x6A86


def test_transaction_through_a_command_chain(short_apdus, reference, server_key):
    """With an 8E server signature the command is over 255 bytes: chained on short APDUs."""
    tx = payment()
    short_apdus.verify_pin(PIN)
    server_signature = server_key.sign(request_data(tx.tlvs()), padding.PKCS1v15(), hashes.SHA256())
    signed = short_apdus.sign_transaction(1, tx, server_signature)
    reference.public_keys[1].verify(signed.signature, signed_transaction_data(tx.tlvs(), signed.counter),
                                    padding.PKCS1v15(), hashes.SHA256())


def test_prove_possession(verified, reference):
    challenge = os.urandom(32)
    signature = verified.prove_possession(2, challenge)
    reference.public_keys[2].verify(signature, possession_data(challenge), padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("apdu, sw", [("805600010F" + "00" * 15, 0x6700), ("8056000141" + "00" * 65, 0x6700),
                                      ("8056000310" + "00" * 16, 0x6A86), ("8056010110" + "00" * 16, 0x6A86)])
def test_prove_possession_errors(verified, transport, apdu, sw):
    assert exchange(transport, apdu).sw == sw
