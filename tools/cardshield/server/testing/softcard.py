"""SoftCard: a software model of the CardShield applet's contract, for tests and benchmarks
only. It generates its keys in Python (no secure element, no protection of any kind), and
answers the APDUs the server composes as the terminal would post them after resolving
GET RESPONSE: complete response data followed by SW1 SW2.

Tests use its hooks to play an attacker: `tamper` rewrites SIGN TRANSACTION fields after the
card's server-signature (8E) check and before it signs (what the server must catch by itself
if that check were bypassed), `counter` can be set back (a cloned card).

ATTEST (docs/apdu.md) signs the statement with `attestation_key`, which a test attestation CA
certified for `card_id` (tests/server/conftest.py registers the card), so the server runs its
real verification path. A SoftCard without an attestation key answers ATTEST with 6A88,
like a card personalized without one; an attacker's SoftCard can sign with a key of its own.
What it does not cover: the secure element itself (key extraction, fault attacks) and the
personalization channel that authenticates the attestation key on a real card.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.attestation.record import CardRecord
from cardshield.card.apdu import CommandAPDU
from cardshield.protocol import tlv
from cardshield.protocol.attestation import STATEMENT_PREFIX, encode_statement
from cardshield.protocol.bank_key import BankKeyType, BankPublicKey, verify_request
from cardshield.protocol.constants import (APPLET_AID, CHALLENGE_MAX, CHALLENGE_MIN, CardFlags, Ins,
                                           Lifecycle, SlotPolicy, certificate_fid)
from cardshield.protocol.keys import encode_rsa_public_key
from cardshield.protocol.transaction import (TAG_SERVER_SIGNATURE, Transaction, possession_data,
                                             signed_transaction_data)

OK = b"\x90\x00"
SW = {name: bytes.fromhex(h) for name, h in {
    "security": "6982", "conditions": "6985", "wrong_data": "6A80", "not_found": "6A82",
    "no_key": "6A88", "p1p2": "6A86", "ins": "6D00", "no_ef": "6986", "offset": "6B00",
    "length": "6700",
}.items()}


@dataclass
class SoftCard:
    pin: str = "1234"
    key_bits: int = 2048
    # As ISSUE leaves a card whose slot 1 was not configured (docs/apdu.md).
    slot_policy: dict[int, SlotPolicy] = field(default_factory=lambda: {
        1: SlotPolicy.PIN_PER_SIGNATURE | SlotPolicy.SERVER_SIGNED_REQUESTS, 2: SlotPolicy(0)})
    # the bank's request key (8E): RSA-2048 or EC P-256, as PERSONALIZE P1=04 loads it
    server_public_key: BankPublicKey | None = None
    # Supplies a private key instead of generating one (benchmarks, weak-key tests).
    key_factory: Callable[[], rsa.RSAPrivateKey] | None = None
    tamper: Callable[[bytes], bytes] | None = None
    counter: int = 0
    card_id: bytes = bytes.fromhex("C0FFEE0000000001")
    applet_version: tuple[int, int] = (1, 0)
    attestation_key: rsa.RSAPrivateKey | None = None
    keys: dict[int, rsa.RSAPrivateKey] = field(default_factory=dict)
    certificates: dict[int, bytes] = field(default_factory=dict)
    pin_verified: bool = False
    _selected_ef: int | None = None
    _chain: bytes = b""

    # -- the terminal side of PIN entry ---------------------------------------------------
    def verify(self, pin: str) -> bool:
        self.pin_verified = pin == self.pin
        return self.pin_verified

    def transmit(self, apdu: bytes) -> bytes:
        command = CommandAPDU.decode(apdu)
        cla, ins, p1, p2, data = command.cla, command.ins, command.p1, command.p2, command.data
        if cla & 0x10:  # ISO command chaining: keep the part, answer 9000
            self._chain += data
            return OK
        data, self._chain = self._chain + data, b""
        handler = {Ins.SELECT: self._select, Ins.GENERATE_ASYMMETRIC_KEY_PAIR: self._keys,
                   Ins.PROVE_POSSESSION: self._prove, Ins.PUT_DATA: self._put_data,
                   Ins.READ_BINARY: self._read_binary, Ins.SIGN_TRANSACTION: self._sign_tx,
                   Ins.PERFORM_SECURITY_OPERATION: self._pso,
                   Ins.VERIFY: self._verify_apdu, Ins.ATTEST: self._attest}.get(ins)
        if handler is None:
            return SW["ins"]
        return handler(p1, p2, data)

    # -- commands ---------------------------------------------------------------------------
    def _fci(self) -> bytes:
        prop = (tlv.encode(0x80, b"\x01\x00") + tlv.encode(0x81, bytes([Lifecycle.ISSUED]))
                + tlv.encode(0x82, b"\x01") + tlv.encode(0x83, (4096).to_bytes(2, "big")))
        for slot in (1, 2):
            state = (1 if slot in self.keys else 0) | (2 if slot in self.certificates else 0)
            prop += tlv.encode(0x84, bytes([slot, 0x01, int(self.slot_policy.get(slot, 0)), state])
                               + len(self.certificates.get(slot, b"")).to_bytes(2, "big"))
        flags = CardFlags.PIN_SET | CardFlags.PUK_SET
        if self.server_public_key is not None:
            flags |= CardFlags.SERVER_KEY_LOADED
            if BankKeyType.of_key(self.server_public_key) is BankKeyType.EC_P256:
                flags |= CardFlags.SERVER_KEY_EC
        prop += (tlv.encode(0x85, bytes([flags])) + tlv.encode(0x86, b"\x03\x0a")
                 + tlv.encode(0x87, self.counter.to_bytes(4, "big"))
                 + tlv.encode(0x88, b"\x7f\xff\x00\x80\x00\x80"))
        return tlv.encode(0x6F, tlv.encode(0x84, APPLET_AID) + tlv.encode(0xA5, prop))

    def _select(self, p1, p2, data):
        if p1 == 0x04:
            if data != APPLET_AID:
                return SW["not_found"]
            self._selected_ef = None
            return self._fci() + OK
        if p1 == 0x02:
            for slot in (1, 2):
                if data == certificate_fid(slot):
                    self._selected_ef = slot
                    return self._certificate_fcp(slot) + OK if p2 == 0x04 else OK
            return SW["not_found"]
        return SW["p1p2"]

    def _certificate_fcp(self, slot: int) -> bytes:
        """62 {80 size, 82 01 01, 83 FID, 85 SHA-256 of the certificate} (docs/apdu.md)."""
        cert = self.certificates.get(slot, b"")
        fcp = (tlv.encode(0x80, len(cert).to_bytes(2, "big")) + tlv.encode(0x82, b"\x01")
               + tlv.encode(0x83, certificate_fid(slot)))
        if cert:
            fcp += tlv.encode(0x85, hashlib.sha256(cert).digest())
        return tlv.encode(0x62, fcp)

    def _keys(self, p1, p2, data):
        if p1 == 0x80:
            if not self.pin_verified:
                return SW["security"]
            self.keys[p2] = (self.key_factory() if self.key_factory else
                             rsa.generate_private_key(public_exponent=65537, key_size=self.key_bits))
            self.certificates.pop(p2, None)  # regenerating discards the certificate
        if p2 not in self.keys:
            return SW["no_key"]
        return encode_rsa_public_key(self.keys[p2].public_key()) + OK

    def _prove(self, p1, p2, data):
        if not self.pin_verified:
            return SW["security"]
        if p2 not in self.keys:
            return SW["no_key"]
        return self.keys[p2].sign(possession_data(data), padding.PKCS1v15(), hashes.SHA256()) + OK

    def _put_data(self, p1, p2, data):
        if p2 not in self.keys:
            return SW["conditions"]
        self.certificates[p2] = data
        return OK

    def _read_binary(self, p1, p2, data):
        if self._selected_ef is None:
            return SW["no_ef"]
        cert = self.certificates.get(self._selected_ef, b"")
        offset = (p1 << 8) | p2
        if offset >= len(cert):
            return SW["offset"]
        return cert[offset:offset + 256] + OK

    def _sign_tx(self, p1, p2, data):
        if not self.pin_verified:
            return SW["security"]
        items = tlv.decode(data)
        fields = b"".join(tlv.encode(i.tag, i.value) for i in items[:5])
        try:
            Transaction.from_tlvs(fields)
        except ValueError:
            return SW["wrong_data"]
        server_sig = items[5].value if len(items) > 5 and items[5].tag == TAG_SERVER_SIGNATURE else None
        if SlotPolicy.SERVER_SIGNED_REQUESTS in self.slot_policy.get(p2, SlotPolicy(0)):
            if server_sig is None or self.server_public_key is None:
                return SW["security"]
            if not verify_request(self.server_public_key, fields, server_sig):
                return SW["security"]
        if self.tamper:  # after the card's own 8E check, so tests reach the server's check
            fields = self.tamper(fields)
        self.counter += 1
        signature = self.keys[p2].sign(signed_transaction_data(fields, self.counter),
                                       padding.PKCS1v15(), hashes.SHA256())
        return (tlv.encode(0x86, self.counter.to_bytes(4, "big")) + tlv.encode(0x9E, signature)
                + OK)

    def _pso(self, p1, p2, data):
        """Like the applet once issued: COMPUTE DIGITAL SIGNATURE and DECIPHER are refused on
        the payment slot (01), the slot this model signs with, whatever its policy."""
        if (p1, p2) not in ((0x9E, 0x9A), (0x80, 0x86)):
            return SW["p1p2"]
        return SW["conditions"]

    def record(self, attestation_ca) -> CardRecord:
        """This card's personalization record, certified by `attestation_ca`."""
        certificate = attestation_ca.certify_card(self.card_id, self.attestation_key.public_key(),
                                                  self.applet_version)
        return CardRecord(self.card_id, certificate.public_bytes(serialization.Encoding.DER),
                          self.applet_version, datetime.now(timezone.utc), None)

    def _attest(self, p1, p2, data):
        if p1 != 0 or p2 not in (1, 2):
            return SW["p1p2"]
        if not CHALLENGE_MIN <= len(data) <= CHALLENGE_MAX:
            return SW["length"]
        if self.attestation_key is None or p2 not in self.keys:
            return SW["no_key"]
        statement = encode_statement(
            card_id=self.card_id, applet_version=self.applet_version, slot=p2, algorithm=0x01,
            policy=int(self.slot_policy.get(p2, SlotPolicy(0))),
            public_key_do=encode_rsa_public_key(self.keys[p2].public_key()), challenge=data,
            counter=self.counter)
        signature = self.attestation_key.sign(STATEMENT_PREFIX + statement, padding.PKCS1v15(),
                                              hashes.SHA256())
        return statement + tlv.encode(0x9E, signature) + OK

    def _verify_apdu(self, p1, p2, data):
        return OK if self.pin_verified else bytes([0x63, 0xC3])
