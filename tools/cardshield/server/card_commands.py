"""The card commands the server composes, as CardSteps, built with cardshield.protocol.

Enrollment (figure 5): SELECT, GENERATE ASYMMETRIC KEY PAIR, READ PUBLIC KEY, PROVE
POSSESSION, ATTEST, PUT DATA (chained), SELECT cert EF + READ BINARY for the read-back.
Payment (figure 6), one batch: SELECT, SELECT cert EF answering the certificate's
SHA-256 (FCP tag 85: a reference instead of the whole certificate), SIGN TRANSACTION.
"""
from __future__ import annotations

from functools import cache

from cardshield.protocol import commands
from cardshield.protocol.attestation import attest_command
from cardshield.protocol.constants import APPLET_AID
from cardshield.protocol.transaction import Transaction

from .batches import CardStep

# Short APDUs everywhere (many readers and T=0 have no extended length);
# long data goes with ISO command chaining, long responses with GET RESPONSE.
READ_CHUNK = 256


@cache  # constant steps (a CardStep is immutable): composed once, not per payment
def select_applet() -> CardStep:
    return CardStep("SELECT applet", commands.select_applet(APPLET_AID).short())


def generate_key(slot: int) -> CardStep:
    return CardStep("GENERATE ASYMMETRIC KEY PAIR", commands.generate_key(slot).short(),
                    pin_required=True)


def read_public_key(slot: int) -> CardStep:
    return CardStep("READ PUBLIC KEY", commands.read_public_key(slot).short())


def prove_possession(slot: int, challenge: bytes) -> CardStep:
    return CardStep("PROVE POSSESSION", commands.prove_possession(slot, challenge).short(),
                    pin_required=True)


ATTEST_NAME = "ATTEST"


def attest(slot: int, challenge: bytes) -> CardStep:
    """The card's signed statement about the slot's key (no PIN: it reveals nothing)."""
    return CardStep(ATTEST_NAME, attest_command(slot, challenge).short())


def put_certificate(slot: int, der: bytes) -> list[CardStep]:
    """The applet needs the PIN for PUT DATA (docs/apdu.md), and SELECT clears it."""
    apdus = commands.put_certificate(slot, der).chained()
    return [CardStep(f"PUT DATA certificate {i + 1}/{len(apdus)}", apdu, pin_required=i == 0)
            for i, apdu in enumerate(apdus)]


def read_certificate(slot: int, length: int) -> list[CardStep]:
    """SELECT the slot's certificate EF, then READ BINARY in 256-byte pieces (ISO 7816-4
    11.2.3) covering `length` bytes."""
    steps = [CardStep("SELECT certificate EF", commands.select_certificate(slot).short())]
    for offset in range(0, length, READ_CHUNK):
        size = min(READ_CHUNK, length - offset)
        steps.append(CardStep(f"READ BINARY offset {offset}",
                              commands.read_binary(offset, ne=size).short()))
    return steps


@cache
def certificate_reference(slot: int) -> CardStep:
    """SELECT the slot's certificate EF with P2=04: the FCP carries SHA-256 of the stored
    certificate (tag 85), 45 bytes instead of the certificate (docs/apdu.md)."""
    return CardStep("SELECT certificate EF (reference)",
                    commands.select_certificate(slot, fcp=True).short())


def sign_transaction(slot: int, transaction: Transaction,
                     server_signature: bytes | None) -> list[CardStep]:
    """With an RSA-2048 8E the data exceeds 255 bytes and goes chained; with an EC P-256 8E
    (64 bytes) it fits one short APDU. Takes the Transaction, already checked against the
    card's field rules, rather than its TLVs (which would be parsed again to check them)."""
    apdus = commands.sign_transaction(slot, transaction, server_signature).chained()
    return [CardStep("SIGN TRANSACTION" if i == len(apdus) - 1 else
                     f"SIGN TRANSACTION part {i + 1}/{len(apdus)}", apdu,
                     pin_required=i == 0) for i, apdu in enumerate(apdus)]
