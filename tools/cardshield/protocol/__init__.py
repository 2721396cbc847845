"""The CardShield applet's APDU interface as pure data: TLV, command builders, parsers and
the canonical encodings of signed data. No I/O here; docs/apdu.md is the normative text."""

from . import attestation, commands, tlv
from .command import Command
from .constants import (
    APPLET_AID,
    Algorithm,
    AlgorithmSupport,
    CardFlags,
    Lifecycle,
    Padding,
    Slot,
    SlotPolicy,
    SlotState,
    Template,
)
from .fci import FCI, CertificateFCP, MemoryInfo, SlotInfo, parse_certificate_fcp, parse_fci
from .keys import encode_rsa_public_key, parse_public_key
from .transaction import (
    Transaction,
    TransactionSignature,
    parse_sign_transaction_response,
    possession_data,
    request_data,
    signed_transaction_data,
)

__all__ = [
    "APPLET_AID", "Algorithm", "AlgorithmSupport", "CardFlags", "CertificateFCP", "Command", "FCI", "Lifecycle",
    "MemoryInfo", "Padding", "Slot", "SlotInfo", "SlotPolicy", "SlotState", "Template",
    "Transaction", "TransactionSignature", "attestation", "commands", "encode_rsa_public_key", "parse_certificate_fcp", "parse_fci",
    "parse_public_key", "parse_sign_transaction_response", "possession_data", "request_data",
    "signed_transaction_data", "tlv",
]
