"""Secured PERSONALIZE / ISSUE commands (docs/personalization.md, "Secure messaging").

Secured C-APDU (CLA 84 = proprietary class 80 with the secure-messaging bit):

    84 INS P1 P2 Lc | KVN(1) | CNTR(5) | CRYPTOGRAM(16*n) | MAC(8) | Le 00

    IV         = AES(K-ENC, 00*11 || CNTR)                  unique per counter
    CRYPTOGRAM = AES-128-CBC(K-ENC, IV, data || 80 00..)    ISO/IEC 9797-1 method 2
    MAC        = AES-CMAC(K-MAC, 84 INS P1 P2 || KVN || CNTR || CRYPTOGRAM)[0:8]

Successful response data: the command's own response data (only PERSONALIZE P1=05 has
any: the attestation public key) followed by the 8-byte receipt, which covers it

    RECEIPT    = AES-CMAC(K-MAC, 00 INS P1 P2 || KVN || CNTR || response data || 90 00)[0:8]

(first byte 00, never 84, so a receipt can never be replayed as a command MAC).

This module builds secured commands (issuer side) and holds the reference model of
the card-side checks, `unwrap`, which the applet's SecureChannel.java mirrors and the
tests use for vectors.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..card.apdu import CommandAPDU

from ..gp.crypto import AES_BLOCK as BLOCK
from ..gp.crypto import aes_cbc, aes_cbc_decrypt, aes_cmac, aes_cmac_verify, aes_ecb, pad80, unpad80
from ..protocol.command import Command
from ..protocol.constants import Ins
from .keys import PersoKeySet

CLA_SECURED = 0x84
INS_PERSONALIZE = Ins.PERSONALIZE
INS_ISSUE = Ins.ISSUE
COUNTER_LEN = 5
MAC_LEN = 8
COUNTER_MAX = (1 << (8 * COUNTER_LEN)) - 1
# KVN + CNTR + one block + MAC: the shortest well-formed secured data field.
MIN_SECURED_LEN = 1 + COUNTER_LEN + BLOCK + MAC_LEN
RECEIPT_NE = 256  # Le 00 in a short APDU

# Status words of the card-side checks (docs/apdu.md, PERSONALIZE).
SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_COUNTER_NOT_HIGHER = 0x6985
SW_BAD_MAC = 0x6988
SW_WRONG_KEY_VERSION = 0x6A88


def counter_bytes(counter: int) -> bytes:
    if not 1 <= counter <= COUNTER_MAX:
        raise ValueError(f"counter must be 1..{COUNTER_MAX}")
    return counter.to_bytes(COUNTER_LEN, "big")


def command_iv(keys: PersoKeySet, cntr: bytes) -> bytes:
    return aes_ecb(keys.enc, bytes(BLOCK - COUNTER_LEN) + cntr)


def command_mac(keys: PersoKeySet, header: bytes, kvn_cntr_cryptogram: bytes) -> bytes:
    """AES-CMAC (SP 800-38B) truncated to its leftmost 8 bytes."""
    return aes_cmac(keys.mac, header + kvn_cntr_cryptogram)[:MAC_LEN]


def receipt(keys: PersoKeySet, ins: int, p1: int, p2: int, counter: int, response_data: bytes = b"") -> bytes:
    """The 8-byte proof of execution the card returns with 9000, after the response data
    it authenticates (empty for every command but PERSONALIZE P1=05)."""
    message = (bytes([0x00, ins, p1, p2, keys.version]) + counter_bytes(counter) + bytes(response_data)
               + b"\x90\x00")
    return aes_cmac(keys.mac, message)[:MAC_LEN]


def wrap(keys: PersoKeySet, plain: Command, counter: int) -> Command:
    """Protect one plain PERSONALIZE/ISSUE command for the card holding `keys`.

    The result is an ordinary Command (CLA 84): the transport sends it as one short APDU,
    one extended APDU or chained (CLA 94), all MACed as 84."""
    cntr = counter_bytes(counter)
    cryptogram = aes_cbc(keys.enc, pad80(plain.data, BLOCK), command_iv(keys, cntr))
    body = bytes([keys.version]) + cntr + cryptogram
    header = bytes([CLA_SECURED, plain.ins, plain.p1, plain.p2])
    name = f"{plain.name or 'command'} secured #{counter}"
    # Le 00: the 8-byte receipt comes back in the same exchange (no 61xx round trip)
    return Command(CLA_SECURED, plain.ins, plain.p1, plain.p2, body + command_mac(keys, header, body),
                   ne=RECEIPT_NE, name=name)


def apdu_bytes(command: Command) -> bytes:
    """The stored form of a command (bundles, reports): one APDU, short when the data
    fits, else extended length (ISO/IEC 7816-4 5.1). It names the logical command, not
    its framing: `deliverable` lets the transport frame it for the card."""
    return command.apdu().encode()


def deliverable(stored: bytes | CommandAPDU) -> CommandAPDU:
    """A stored command with its length encoding left to the transport: one extended APDU
    where the card and reader take it, else an ISO command chain of short APDUs (CLA 94
    then 84, 7816-4 5.1.1.1) with the response through 61xx / GET RESPONSE on T=0. The
    card MACs the command as 84 with Lc and Le outside the MAC, so every framing carries
    the same secured command."""
    command = CommandAPDU.decode(stored) if isinstance(stored, (bytes, bytearray)) else stored
    return replace(command, extended=None)


class Refused(Exception):
    """The card model refused a secured command; `sw` is the status word."""

    def __init__(self, sw: int, reason: str):
        super().__init__(f"{sw:04X}: {reason}")
        self.sw = sw
        self.reason = reason


@dataclass(frozen=True)
class Unwrapped:
    counter: int
    data: bytes


def unwrap(keys: PersoKeySet, header: bytes, secured: bytes, last_counter: int) -> Unwrapped:
    """Card-side checks in the card's order; nothing is applied before all pass.

    1. length (6700), 2. key version (6A88), 3. MAC (6988), 4. counter > last (6985),
    5. decryption and padding (6988).
    """
    if len(secured) < MIN_SECURED_LEN or (len(secured) - MIN_SECURED_LEN) % BLOCK:
        raise Refused(SW_WRONG_LENGTH, "secured data is not KVN||CNTR||16n bytes||MAC")
    if secured[0] != keys.version:
        raise Refused(SW_WRONG_KEY_VERSION, f"key version {secured[0]} is not installed")
    body, mac = secured[:-MAC_LEN], secured[-MAC_LEN:]
    plain_header = bytes([header[0] & ~0x10 & 0xFF]) + header[1:4]  # chaining bit ignored
    if not aes_cmac_verify(keys.mac, plain_header + body, mac):
        raise Refused(SW_BAD_MAC, "MAC does not verify")
    cntr = body[1 : 1 + COUNTER_LEN]
    counter = int.from_bytes(cntr, "big")
    if counter <= last_counter:
        raise Refused(SW_COUNTER_NOT_HIGHER, f"counter {counter} not above {last_counter}")
    padded = aes_cbc_decrypt(keys.enc, body[1 + COUNTER_LEN :], command_iv(keys, cntr))
    if padded[-BLOCK:].rstrip(b"\x00")[-1:] != b"\x80":  # 80 must sit in the last block
        raise Refused(SW_BAD_MAC, "padding malformed")
    try:
        return Unwrapped(counter, unpad80(padded))
    except ValueError:
        raise Refused(SW_BAD_MAC, "padding malformed") from None
