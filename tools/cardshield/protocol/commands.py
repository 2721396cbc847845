"""Builders for every command of the CardShield applet (docs/apdu.md).

Each function validates its arguments (so a bad PIN or slot fails here with a message, not
on the card with a status word) and returns a Command; the transport decides whether it
goes as one short APDU, chained short APDUs or one extended APDU.
"""

from __future__ import annotations

from .command import EXTENDED_MAX_NE, SHORT_MAX_NE, Command
from .constants import (
    ATTESTATION_CERTIFICATE_FID,
    ATTESTATION_CERTIFICATE_PART,
    CERTIFICATE_PART_FIRST,
    CERTIFICATE_PART_LAST,
    CERTIFICATE_PART_NEXT,
    CHALLENGE_MAX,
    CHALLENGE_MIN,
    CLA_ISO,
    CLA_PROPRIETARY,
    PIN_MAX,
    PIN_MIN,
    PUK_LENGTH,
    SERVER_KEY_REFERENCE,
    Algorithm,
    Ins,
    KeyReference,
    Padding,
    PersonalizeStep,
    Slot,
    SlotPolicy,
    Template,
    certificate_fid,
)
from . import tlv
from .transaction import TAG_SERVER_SIGNATURE, Transaction

#: Ne meaning "everything the card has". ALL for answers that always fit one short
#: response; ALL_EXTENDED for answers that can exceed 256 bytes (a 7F49 public key, an RSA
#: signature or cryptogram with its TLVs), so that an extended-length reader brings the
#: whole answer in one response (extended Le, ISO/IEC 7816-4 5.1). Short forms of the same
#: command ask for 256 bytes and fetch the rest with GET RESPONSE (5.3.4).
#: ALL_EXTENDED is 65535 (Le FFFF), not 65536 (Le 0000): jcardsim hands Le 0000 to the
#: applet as setOutgoing() = 0, and the applet would then send nothing and answer 61xx.
ALL = SHORT_MAX_NE
ALL_EXTENDED = EXTENDED_MAX_NE - 1

_SHA256_LEN = 32
#: DigestInfo lengths the card accepts whole (SHA-256, SHA-384, SHA-512)
DIGEST_INFO_LENGTHS = (51, 67, 83)


def _slot(slot: int) -> int:
    try:
        return int(Slot(slot))
    except ValueError:
        raise ValueError(f"key slot must be 1 (payment) or 2 (authentication), got {slot!r}") from None


def _digits(secret: str, label: str, lengths: range) -> bytes:
    if not secret.isascii() or not secret.isdigit() or len(secret) not in lengths:
        raise ValueError(f"{label} must be {lengths.start}-{lengths.stop - 1} decimal digits")
    return secret.encode("ascii")


def _pin(pin: str) -> bytes:
    return _digits(pin, "PIN", range(PIN_MIN, PIN_MAX + 1))


def _puk(puk: str) -> bytes:
    return _digits(puk, "PUK", range(PUK_LENGTH, PUK_LENGTH + 1))


def _padded(secret: bytes) -> bytes:
    return secret + b"\xff" * (PIN_MAX - len(secret))


# --- selection and reading (ISO/IEC 7816-4 clauses 11.1.1, 11.2.3, 7.6.1) -------------


def select_applet(aid: bytes) -> Command:
    return Command(CLA_ISO, Ins.SELECT, 0x04, 0x00, bytes(aid), ne=ALL, name="SELECT applet")


def select_certificate(slot: int, fcp: bool = False) -> Command:
    """Select the certificate EF C1 0n; with fcp=True the card returns
    62{80 size, 82, 83, 85 SHA-256 of the certificate} (fci.parse_certificate_fcp)."""
    return _select_ef(certificate_fid(_slot(slot)), fcp)


def select_attestation_certificate(fcp: bool = False) -> Command:
    """Select the card's attestation certificate EF C1 0A (any lifecycle state, no PIN)."""
    return _select_ef(ATTESTATION_CERTIFICATE_FID, fcp)


def _select_ef(fid: bytes, fcp: bool) -> Command:
    if fcp:
        return Command(CLA_ISO, Ins.SELECT, 0x02, 0x04, fid, ne=ALL, name="SELECT certificate EF")
    return Command(CLA_ISO, Ins.SELECT, 0x02, 0x0C, fid, name="SELECT certificate EF")


def read_binary(offset: int, ne: int = ALL) -> Command:
    if not 0 <= offset <= 0x7FFF:
        raise ValueError(f"READ BINARY offset {offset} outside 0..32767")
    return Command(CLA_ISO, Ins.READ_BINARY, offset >> 8, offset & 0xFF, ne=ne, name="READ BINARY")


def get_response(ne: int = ALL) -> Command:
    return Command(CLA_ISO, Ins.GET_RESPONSE, 0x00, 0x00, ne=ne, name="GET RESPONSE")


def put_certificate(slot: int, der: bytes) -> Command:
    """PUT DATA C1 0n: the whole DER certificate (empty deletes it). Send chained or
    extended; the card commits it atomically when the last APDU arrives."""
    return Command(CLA_ISO, Ins.PUT_DATA, 0xC1, _slot(slot), bytes(der), name="PUT DATA certificate")


# --- PIN and PUK (ISO/IEC 7816-4 clauses 11.5.6, 11.5.7, 11.5.10) ---------------------


def verify_pin(pin: str) -> Command:
    return Command(CLA_ISO, Ins.VERIFY, 0x00, KeyReference.PIN, _pin(pin), name="VERIFY", sensitive=True)


def pin_status() -> Command:
    """VERIFY without data: 9000 if verified in this session, else 63Cx (x tries left)."""
    return Command(CLA_ISO, Ins.VERIFY, 0x00, KeyReference.PIN, name="VERIFY status")


def reset_pin_status() -> Command:
    """VERIFY P1=FF: drop the verified state (ISO/IEC 7816-4:2013 clause 11.5.6)."""
    return Command(CLA_ISO, Ins.VERIFY, 0xFF, KeyReference.PIN, name="VERIFY reset")


def change_pin(old: str, new: str) -> Command:
    data = _padded(_pin(old)) + _padded(_pin(new))
    return Command(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0x00, KeyReference.PIN, data,
                   name="CHANGE REFERENCE DATA PIN", sensitive=True)


def change_puk(old: str, new: str) -> Command:
    data = _padded(_puk(old)) + _padded(_puk(new))
    return Command(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0x00, KeyReference.PUK, data,
                   name="CHANGE REFERENCE DATA PUK", sensitive=True)


def unblock_pin(puk: str, new_pin: str) -> Command:
    return Command(CLA_ISO, Ins.RESET_RETRY_COUNTER, 0x00, KeyReference.PIN, _puk(puk) + _pin(new_pin),
                   name="RESET RETRY COUNTER", sensitive=True)


# --- keys (ISO/IEC 7816-8 clause 5.1) -----------------------------------------------


def generate_key(slot: int) -> Command:
    return Command(CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, 0x80, _slot(slot), ne=ALL_EXTENDED,
                   name="GENERATE ASYMMETRIC KEY PAIR")


def read_public_key(slot: int) -> Command:
    return Command(CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, 0x81, _slot(slot), ne=ALL_EXTENDED,
                   name="READ PUBLIC KEY")


# --- security environment and operations (ISO/IEC 7816-4 7.5.11, 7816-8 clause 5.2) -


def mse_set(template: Template, *, private_slot: int | None = None, public_ref: int | None = None) -> Command:
    """MSE SET for the DST (B6: sign/verify) or CT (B8: decipher/encipher).
    private_slot -> 84 01 n; public_ref -> 83 01 n (1/2 a slot's public key, 0x10 the server key)."""
    if private_slot is None and public_ref is None:
        raise ValueError("MSE SET needs a private key slot, a public key reference, or both")
    data = b""
    if private_slot is not None:
        data += tlv.encode(0x84, bytes([_slot(private_slot)]))
    if public_ref is not None:
        if public_ref != SERVER_KEY_REFERENCE:
            public_ref = _slot(public_ref)
        data += tlv.encode(0x83, bytes([public_ref]))
    return Command(CLA_ISO, Ins.MANAGE_SECURITY_ENVIRONMENT, 0x41, Template(template), data, name="MSE SET")


def compute_signature(hash_or_digest_info: bytes) -> Command:
    """PSO COMPUTE DIGITAL SIGNATURE over a bare SHA-256 hash (the card adds the DigestInfo)
    or a complete DigestInfo for SHA-256/384/512."""
    if len(hash_or_digest_info) not in (_SHA256_LEN, *DIGEST_INFO_LENGTHS):
        raise ValueError("give a 32-byte SHA-256 hash or a SHA-256/384/512 DigestInfo")
    return Command(CLA_ISO, Ins.PERFORM_SECURITY_OPERATION, 0x9E, 0x9A, bytes(hash_or_digest_info), ne=ALL_EXTENDED,
                   name="PSO COMPUTE DIGITAL SIGNATURE")


def decipher(cryptogram: bytes, padding: Padding = Padding.PKCS1_V15) -> Command:
    return Command(CLA_ISO, Ins.PERFORM_SECURITY_OPERATION, 0x80, 0x86, bytes([padding]) + bytes(cryptogram),
                   ne=ALL_EXTENDED, name="PSO DECIPHER")


def encipher(plaintext: bytes) -> Command:
    if not plaintext:
        raise ValueError("nothing to encipher")
    return Command(CLA_ISO, Ins.PERFORM_SECURITY_OPERATION, 0x86, 0x80, bytes(plaintext), ne=ALL_EXTENDED,
                   name="PSO ENCIPHER")


def verify_signature(sha256_hash: bytes, signature: bytes) -> Command:
    if len(sha256_hash) != _SHA256_LEN:
        raise ValueError("VERIFY DIGITAL SIGNATURE takes a 32-byte SHA-256 hash")
    data = tlv.encode(0x90, bytes(sha256_hash)) + tlv.encode(0x9E, bytes(signature))
    return Command(CLA_ISO, Ins.PERFORM_SECURITY_OPERATION, 0x00, 0xA8, data, name="PSO VERIFY DIGITAL SIGNATURE")


# --- proprietary commands (CLA 80) -----------------------------------------------------


def prove_possession(slot: int, challenge: bytes) -> Command:
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise ValueError(f"challenge must be {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes")
    return Command(CLA_PROPRIETARY, Ins.PROVE_POSSESSION, 0x00, _slot(slot), bytes(challenge), ne=ALL_EXTENDED,
                   name="PROVE POSSESSION")


def sign_transaction(slot: int, transaction: Transaction | bytes, server_signature: bytes | None = None) -> Command:
    """SIGN TRANSACTION; transaction is a Transaction or its 81..85 TLVs as composed by the
    server; server_signature (8E) is required when the slot's policy says so."""
    tlvs = transaction.tlvs() if isinstance(transaction, Transaction) else Transaction.from_tlvs(transaction).tlvs()
    data = tlvs + (tlv.encode(TAG_SERVER_SIGNATURE, server_signature) if server_signature else b"")
    return Command(CLA_PROPRIETARY, Ins.SIGN_TRANSACTION, 0x00, _slot(slot), data, ne=ALL_EXTENDED,
                   name="SIGN TRANSACTION")


def personalize_pin(pin: str) -> Command:
    return Command(CLA_PROPRIETARY, Ins.PERSONALIZE, PersonalizeStep.SET_PIN, 0x00, _pin(pin),
                   name="PERSONALIZE PIN", sensitive=True)


def personalize_puk(puk: str) -> Command:
    return Command(CLA_PROPRIETARY, Ins.PERSONALIZE, PersonalizeStep.SET_PUK, 0x00, _puk(puk),
                   name="PERSONALIZE PUK", sensitive=True)


def personalize_slot(slot: int, algorithm: Algorithm, policy: SlotPolicy = SlotPolicy(0)) -> Command:
    if Algorithm(algorithm) == Algorithm.NONE:
        raise ValueError("a slot needs an algorithm")
    return Command(CLA_PROPRIETARY, Ins.PERSONALIZE, PersonalizeStep.CONFIGURE_SLOT, _slot(slot),
                   bytes([Algorithm(algorithm), SlotPolicy(policy)]), name="PERSONALIZE slot")


def personalize_server_key(public_key_7f49: bytes) -> Command:
    """The server's RSA public key as 7F49{81,82} (see keys.encode_rsa_public_key)."""
    return Command(CLA_PROPRIETARY, Ins.PERSONALIZE, PersonalizeStep.SERVER_PUBLIC_KEY, 0x00,
                   bytes(public_key_7f49), name="PERSONALIZE server key")


def personalize_attestation_key() -> Command:
    """PERSONALIZE P1=05: generate the card's attestation key pair (secured channel only; the
    response is its 7F49 public key, which the secured receipt covers)."""
    return Command(CLA_PROPRIETARY, Ins.PERSONALIZE, PersonalizeStep.ATTESTATION_KEY, 0x00, ne=ALL_EXTENDED,
                   name="PERSONALIZE attestation key")


def personalize_attestation_certificate(der: bytes, part_size: int = ATTESTATION_CERTIFICATE_PART) -> list[Command]:
    """PERSONALIZE P1=06: the attestation certificate in parts of part_size plain bytes
    (P2 00 first, 01 next, bit 80 on the last: 80 alone for one part). Each part goes
    through the secured channel; the card swaps the certificate in on the last part."""
    der = bytes(der)
    if not der:
        raise ValueError("the attestation certificate is empty")
    if not 1 <= part_size <= ATTESTATION_CERTIFICATE_PART:
        raise ValueError(f"part size must be 1..{ATTESTATION_CERTIFICATE_PART} bytes")
    pieces = [der[i : i + part_size] for i in range(0, len(der), part_size)]
    parts = []
    for index, piece in enumerate(pieces):
        p2 = CERTIFICATE_PART_FIRST if index == 0 else CERTIFICATE_PART_NEXT
        if index == len(pieces) - 1:
            p2 |= CERTIFICATE_PART_LAST
        parts.append(Command(CLA_PROPRIETARY, Ins.PERSONALIZE, PersonalizeStep.ATTESTATION_CERTIFICATE, p2, piece,
                             name=f"PERSONALIZE attestation certificate part {index + 1}/{len(pieces)}"))
    return parts


def issue() -> Command:
    return Command(CLA_PROPRIETARY, Ins.ISSUE, 0x00, 0x00, name="ISSUE")
