"""Constants and helpers shared by the applet tests (imported by conftest and tests)."""

from __future__ import annotations

from cardshield.card.apdu import CommandAPDU, ResponseAPDU
from cardshield.card.transport import atr_supports_extended_length
from cardshield.protocol.constants import Algorithm, AlgorithmSupport, SlotPolicy

#: the reference card's secrets (test values only)
PIN = "1234"
PUK = "12345678"
#: slot 01 configured explicitly without policy flags: a development card issued without a
#: server key (ISSUE alone would give slot 01 PIN per signature + server-signed, and needs it)
RELAXED_PAYMENT_SLOT = {1: (Algorithm.RSA_2048, SlotPolicy(0))}


#: the refusal of an algorithm the card lacks (docs/apdu.md: slot configuration, OAEP, EC)
SW_ALGORITHM_NOT_AVAILABLE = 0x6A81


def short_apdus_only(transport) -> bool:
    """A card that takes no extended APDU: T=0 carries none (ISO/IEC 7816-3 12.2; a SIM), and a
    T=1 card announces extended Lc/Le in its card capabilities (ISO/IEC 7816-4 12.1.1.9). Such
    a card refuses an extended APDU with 6700; the client chains and uses GET RESPONSE instead."""
    return transport.protocol_name == "T0" or not atr_supports_extended_length(transport.atr)


def card_has(card, algorithm: AlgorithmSupport) -> bool:
    """Whether the applet's install-time probe found the algorithm on this card (FCI tag 82)."""
    return algorithm in card.select().algorithms


def exchange(transport, apdu: bytes | str) -> ResponseAPDU:
    """Exactly one APDU as given (no chaining, no GET RESPONSE): for status-word tests."""
    raw = bytes.fromhex(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu
    return transport.exchange(CommandAPDU.decode(raw))


def make_certificate(subject_key, issuer_key, filler: int = 0, serial: int = 1) -> bytes:
    """A DER X.509 certificate for subject_key signed by issuer_key; `filler` bytes of an
    opaque non-critical extension let a test choose the certificate size."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CardShield test holder")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CardShield test CA")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(subject_key)
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if filler:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x04\x82" +
                                       filler.to_bytes(2, "big") + b"\xa5" * filler),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)


def certificate_of_size(subject_key, issuer_key, size: int, serial: int = 1) -> bytes:
    """A certificate of exactly `size` bytes (size >= about 800)."""
    base = len(make_certificate(subject_key, issuer_key, 200, serial))
    for filler in range(200 + size - base - 8, 200 + size - base + 8):
        der = make_certificate(subject_key, issuer_key, filler, serial)
        if len(der) == size:
            return der
    raise AssertionError(f"no certificate of exactly {size} bytes")
