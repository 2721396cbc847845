"""What the card holder is shown comes from the signing command itself."""
from __future__ import annotations

import pytest

from cardshield.protocol.transaction import Transaction
from cardshield.terminal.display import decode_sign_transaction, format_amount


@pytest.mark.parametrize("minor, currency, text", [
    (1250, "EUR", "12.50 EUR"), (5, "EUR", "0.05 EUR"), (123456789, "USD", "1,234,567.89 USD"),
    (500, "JPY", "500 JPY"), (1500, "KWD", "1.500 KWD"), (0, "EUR", "0.00 EUR"),
])
def test_amounts_use_the_currency_minor_unit(minor, currency, text):
    assert format_amount(minor, currency) == text


def test_decodes_the_fields_the_card_signs():
    tx = Transaction(99999, "EUR", "Bäckerei Müller", "A-17", bytes(range(32)))
    shown = decode_sign_transaction(tx.tlvs())
    assert (shown.amount_text, shown.payee, shown.order_ref, shown.server_signed) == (
        "999.99 EUR", "Bäckerei Müller", "A-17", False)
    assert decode_sign_transaction(tx.tlvs() + b"\x8e\x81\x80" + bytes(128)).server_signed


@pytest.mark.parametrize("data", [
    b"", bytes.fromhex("810100"), Transaction(1, "EUR", "x", "y", bytes(16)).tlvs() + bytes.fromhex("9F0100"),
    bytes.fromhex("8201418101018301418401418510") + bytes(16),  # fields out of order
])
def test_anything_else_does_not_decode(data):
    with pytest.raises(ValueError):
        decode_sign_transaction(data)
