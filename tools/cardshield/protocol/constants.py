"""Bytes of the CardShield applet interface (docs/apdu.md is the normative text)."""

from __future__ import annotations

import enum

from cardshield.card.apdu import CLA_CHAINING  # noqa: F401  (ISO 7816-4 command chaining, used with these CLAs)

#: applet instance AID "CARDSHLD" || 01 (the package AID is without the trailing 01);
#: applet/applet.properties is the one place that defines them for the build.
APPLET_AID = bytes.fromhex("F0 43 41 52 44 53 48 4C 44 01")
PACKAGE_AID = APPLET_AID[:-1]


class Ins(enum.IntEnum):
    SELECT = 0xA4
    READ_BINARY = 0xB0
    PUT_DATA = 0xDA
    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
    MANAGE_SECURITY_ENVIRONMENT = 0x22
    PERFORM_SECURITY_OPERATION = 0x2A
    GET_RESPONSE = 0xC0
    SIGN_TRANSACTION = 0x54
    PROVE_POSSESSION = 0x56
    ATTEST = 0x58
    PERSONALIZE = 0xE0
    ISSUE = 0xE2


CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80


def class_without_channel(cla: int) -> int:
    """CLA as the applet judges it: the logical channel number dropped (ISO/IEC 7816-4
    clause 5.4.1). First classes 00-3F / 80-BF keep b3-b8 (SM 0C, chaining 10); further
    classes 40-7F / C0-FF become their first-class twin: b8, chaining 10, SM (b6) kept as 20."""
    if cla & 0x40:
        return cla & 0xB0
    return cla & 0xFC


class Slot(enum.IntEnum):
    PAYMENT = 0x01
    AUTHENTICATION = 0x02


class Lifecycle(enum.IntEnum):
    PERSONALIZATION = 0x01
    ISSUED = 0x02
    TERMINATED = 0x03


class Algorithm(enum.IntEnum):
    """Slot key algorithm bytes (PERSONALIZE P1=03, FCI slot info)."""

    NONE = 0x00
    RSA_2048 = 0x01
    RSA_3072 = 0x02
    RSA_4096 = 0x03
    EC_P256 = 0x11

    @property
    def is_rsa(self) -> bool:
        return self in (Algorithm.RSA_2048, Algorithm.RSA_3072, Algorithm.RSA_4096)

    @property
    def modulus_bytes(self) -> int:
        return {Algorithm.RSA_2048: 256, Algorithm.RSA_3072: 384, Algorithm.RSA_4096: 512}[self]


class AlgorithmSupport(enum.IntFlag):
    """FCI tag 82: what the card's crypto probed as available at install."""

    RSA_2048 = 0x01
    RSA_3072 = 0x02
    RSA_4096 = 0x04
    EC_P256 = 0x08
    RSA_OAEP = 0x10


#: which AlgorithmSupport bit a slot algorithm needs
ALGORITHM_SUPPORT_BIT = {
    Algorithm.RSA_2048: AlgorithmSupport.RSA_2048,
    Algorithm.RSA_3072: AlgorithmSupport.RSA_3072,
    Algorithm.RSA_4096: AlgorithmSupport.RSA_4096,
    Algorithm.EC_P256: AlgorithmSupport.EC_P256,
}


class SlotPolicy(enum.IntFlag):
    PIN_PER_SIGNATURE = 0x01
    SERVER_SIGNED_REQUESTS = 0x02


class SlotState(enum.IntFlag):
    KEY_PRESENT = 0x01
    CERTIFICATE_PRESENT = 0x02


class CardFlags(enum.IntFlag):
    PIN_SET = 0x01
    PUK_SET = 0x02
    SERVER_KEY_LOADED = 0x04
    PERSONALIZATION_KEYS_INSTALLED = 0x08
    DEVELOPMENT_CARD = 0x10
    #: the personalization key set was erased at ISSUE (docs/apdu.md, FCI tag 85)
    PERSONALIZATION_KEYS_ERASED = 0x20
    #: the server key (SERVER_KEY_LOADED) is EC P-256, so 8E is ECDSA; else RSA-2048
    SERVER_KEY_EC = 0x40


class PersonalizeStep(enum.IntEnum):
    SET_PIN = 0x01
    SET_PUK = 0x02
    CONFIGURE_SLOT = 0x03
    SERVER_PUBLIC_KEY = 0x04
    ATTESTATION_KEY = 0x05
    ATTESTATION_CERTIFICATE = 0x06


class KeyReference(enum.IntEnum):
    PIN = 0x81
    PUK = 0x82


#: MSE SET public key reference for the authentication server's key
SERVER_KEY_REFERENCE = 0x10


class Template(enum.IntEnum):
    """MSE SET P2: control reference templates (ISO/IEC 7816-4 clause 7.5.11)."""

    DIGITAL_SIGNATURE = 0xB6
    CONFIDENTIALITY = 0xB8


class Padding(enum.IntEnum):
    """PSO DECIPHER padding indicator byte (first data byte)."""

    PKCS1_V15 = 0x00
    OAEP_SHA1 = 0x02


#: file identifiers of the certificate EFs: C1 01 and C1 02
def certificate_fid(slot: int) -> bytes:
    return bytes([0xC1, int(Slot(slot))])


#: the card's attestation certificate (PERSONALIZE P1=06), readable like the slot certificates
ATTESTATION_CERTIFICATE_FID = bytes([0xC1, 0x0A])
#: PERSONALIZE P1=06: plain data bytes per part (a secured part then fits one short APDU)
ATTESTATION_CERTIFICATE_PART = 192
#: PERSONALIZE P1=06 P2: 00 first part, 01 next part, bit 80 on the last part
CERTIFICATE_PART_FIRST, CERTIFICATE_PART_NEXT, CERTIFICATE_PART_LAST = 0x00, 0x01, 0x80


PIN_MIN, PIN_MAX, PUK_LENGTH = 4, 12, 8
PIN_TRIES, PUK_TRIES = 3, 10
TRANSACTION_MAGIC = b"CSTX1"
REQUEST_MAGIC = b"CSRQ1"
POSSESSION_MAGIC = b"CSPOP1"
CHALLENGE_MIN, CHALLENGE_MAX = 16, 64
