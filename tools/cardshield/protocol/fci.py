"""The applet's FCI (SELECT response, ISO/IEC 7816-4 clause 7.4.1): what a tool needs to
know to adapt to the card: version, lifecycle, algorithms the card's crypto probed as
available, certificate capacity, slots, PIN/PUK tries, counter and free memory."""

from __future__ import annotations

from dataclasses import dataclass

from . import tlv
from .constants import (
    ALGORITHM_SUPPORT_BIT,
    Algorithm,
    AlgorithmSupport,
    CardFlags,
    Lifecycle,
    SlotPolicy,
    SlotState,
)

TAG_FCI, TAG_AID, TAG_PROPRIETARY = 0x6F, 0x84, 0xA5
TAG_VERSION, TAG_LIFECYCLE, TAG_ALGORITHMS, TAG_MAX_CERT = 0x80, 0x81, 0x82, 0x83
TAG_SLOT, TAG_FLAGS, TAG_TRIES, TAG_COUNTER, TAG_MEMORY = 0x84, 0x85, 0x86, 0x87, 0x88


@dataclass(frozen=True)
class SlotInfo:
    slot: int
    algorithm: Algorithm
    policy: SlotPolicy
    state: SlotState
    certificate_length: int

    @property
    def has_key(self) -> bool:
        return SlotState.KEY_PRESENT in self.state

    @property
    def has_certificate(self) -> bool:
        return SlotState.CERTIFICATE_PRESENT in self.state


@dataclass(frozen=True)
class MemoryInfo:
    """JCSystem.getAvailableMemory, saturated at 32767 by the Java Card 3.0.4 API."""

    persistent: int
    transient_reset: int
    transient_deselect: int


@dataclass(frozen=True)
class FCI:
    aid: bytes
    version: tuple[int, int]
    lifecycle: Lifecycle
    algorithms: AlgorithmSupport
    max_certificate_size: int
    slots: dict[int, SlotInfo]
    flags: CardFlags
    pin_tries: int
    puk_tries: int
    counter: int
    memory: MemoryInfo

    def supports(self, algorithm: Algorithm) -> bool:
        return ALGORITHM_SUPPORT_BIT[algorithm] in self.algorithms

    @property
    def server_key_algorithm(self) -> Algorithm:
        """The algorithm of the server (bank) key that checks 8E: RSA_2048 or EC_P256;
        NONE while no server key is loaded (FCI tag 85 flags 04 and 40)."""
        if CardFlags.SERVER_KEY_LOADED not in self.flags:
            return Algorithm.NONE
        return Algorithm.EC_P256 if CardFlags.SERVER_KEY_EC in self.flags else Algorithm.RSA_2048


def _fixed(value: bytes, size: int, tag: int) -> bytes:
    if len(value) != size:
        raise tlv.TLVError(f"FCI data object {tag:02X} must be {size} bytes, got {len(value)}")
    return value


def parse_fci(data: bytes) -> FCI:
    outer = tlv.decode(data)
    if len(outer) != 1 or outer[0].tag != TAG_FCI:
        raise tlv.TLVError("SELECT response is not an FCI template (6F)")
    fci = outer[0].children()
    aid = tlv.require(fci, TAG_AID, "FCI")
    prop = tlv.decode(tlv.require(fci, TAG_PROPRIETARY, "FCI"))

    def get(tag: int, size: int) -> bytes:
        return _fixed(tlv.require(prop, tag, "FCI proprietary template A5"), size, tag)

    slots: dict[int, SlotInfo] = {}
    for item in prop:
        if item.tag == TAG_SLOT:
            v = _fixed(item.value, 6, TAG_SLOT)
            slots[v[0]] = SlotInfo(
                slot=v[0],
                algorithm=Algorithm(v[1]),
                policy=SlotPolicy(v[2]),
                state=SlotState(v[3]),
                certificate_length=int.from_bytes(v[4:6], "big"),
            )
    version = get(TAG_VERSION, 2)
    tries = get(TAG_TRIES, 2)
    memory = get(TAG_MEMORY, 6)
    return FCI(
        aid=aid,
        version=(version[0], version[1]),
        lifecycle=Lifecycle(get(TAG_LIFECYCLE, 1)[0]),
        algorithms=AlgorithmSupport(get(TAG_ALGORITHMS, 1)[0]),
        max_certificate_size=int.from_bytes(get(TAG_MAX_CERT, 2), "big"),
        slots=slots,
        flags=CardFlags(get(TAG_FLAGS, 1)[0]),
        pin_tries=tries[0],
        puk_tries=tries[1],
        counter=int.from_bytes(get(TAG_COUNTER, 4), "big"),
        memory=MemoryInfo(
            int.from_bytes(memory[0:2], "big"),
            int.from_bytes(memory[2:4], "big"),
            int.from_bytes(memory[4:6], "big"),
        ),
    )


TAG_FCP, TAG_FILE_SIZE, TAG_DESCRIPTOR, TAG_FILE_ID, TAG_CERTIFICATE_SHA256 = 0x62, 0x80, 0x82, 0x83, 0x85


@dataclass(frozen=True)
class CertificateFCP:
    """SELECT EF C1 0n with P2=04: the FCP of a certificate EF (ISO/IEC 7816-4 clause 5.3.3)."""

    file_id: bytes
    size: int
    #: SHA-256 of the stored certificate (tag 85), kept by the card since PUT DATA committed it
    sha256: bytes | None


def parse_certificate_fcp(data: bytes) -> CertificateFCP:
    outer = tlv.decode(data)
    if len(outer) != 1 or outer[0].tag != TAG_FCP:
        raise tlv.TLVError("SELECT EF response is not an FCP template (62)")
    fcp = outer[0].children()
    digest = tlv.find(fcp, TAG_CERTIFICATE_SHA256)
    return CertificateFCP(
        file_id=_fixed(tlv.require(fcp, TAG_FILE_ID, "FCP"), 2, TAG_FILE_ID),
        size=int.from_bytes(_fixed(tlv.require(fcp, TAG_FILE_SIZE, "FCP"), 2, TAG_FILE_SIZE), "big"),
        sha256=None if digest is None else _fixed(digest, 32, TAG_CERTIFICATE_SHA256),
    )
