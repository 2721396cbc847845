"""What the user is shown before authorizing: the payment the card is about to sign,
decoded from the SIGN TRANSACTION command itself (docs/apdu.md), never from what the
merchant page claims. "What you see is what you sign" (PSD2 RTS article 5)."""
from __future__ import annotations

from dataclasses import dataclass

from cardshield.protocol import tlv
from cardshield.protocol.transaction import TAG_SERVER_SIGNATURE, Transaction

# ISO 4217 minor-unit exponents that differ from 2 (the common case).
MINOR_UNIT_EXPONENT = {
    "BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KMF": 0,
    "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3, "UGX": 0, "UYI": 0, "VND": 0,
    "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}


def format_amount(amount_minor: int, currency: str) -> str:
    """12345 EUR -> '123.45 EUR'; 500 JPY -> '500 JPY'."""
    exponent = MINOR_UNIT_EXPONENT.get(currency, 2)
    if exponent == 0:
        return f"{amount_minor:,} {currency}"
    whole, fraction = divmod(amount_minor, 10 ** exponent)
    return f"{whole:,}.{fraction:0{exponent}d} {currency}"


@dataclass(frozen=True)
class PaymentToConfirm:
    amount_minor: int
    currency: str
    payee: str
    order_ref: str
    server_signed: bool  # the request carries the bank's signature (tag 8E), checked by the card

    @property
    def amount_text(self) -> str:
        return format_amount(self.amount_minor, self.currency)

    def as_dict(self) -> dict:
        return {"amount_minor": self.amount_minor, "currency": self.currency, "amount": self.amount_text,
                "payee": self.payee, "order_ref": self.order_ref, "server_signed": self.server_signed}

    def summary(self) -> str:
        return f"pay {self.amount_text} to {self.payee!r} (order {self.order_ref})"


def transaction_fields(data: bytes) -> tuple[Transaction, bool]:
    """SIGN TRANSACTION data: 81 amount, 82 currency, 83 payee, 84 order ref, 85 nonce
    [, 8E server signature] -> the transaction (whose tlvs() are the signed bytes) and
    whether 8E is present. Raises ValueError when it does not decode as the card would."""
    items = tlv.decode(data)
    if len(items) not in (5, 6) or (len(items) == 6 and items[5].tag != TAG_SERVER_SIGNATURE):
        raise ValueError("expected the data objects 81..85 and an optional 8E")
    transaction = Transaction.from_tlvs(b"".join(tlv.encode(item.tag, item.value) for item in items[:5]))
    return transaction, len(items) == 6


def decode_sign_transaction(data: bytes) -> PaymentToConfirm:
    transaction, server_signed = transaction_fields(data)
    return PaymentToConfirm(transaction.amount, transaction.currency, transaction.payee, transaction.order_ref,
                            server_signed)
