"""The fuzzer's oracle: what the card's persistent state must be after each answer.

The model follows only what docs/apdu.md says a command does when it succeeds (9000, or
61xx for a long response) and what a wrong PIN/PUK costs (63Cx); every other answer must
leave the persistent state untouched. After a case the card's FCI (lifecycle, flags, PIN
and PUK tries, signature counter, slots with certificate lengths), and where a case could
have touched them the certificate bytes and public keys, are compared with the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.protocol import tlv
from cardshield.protocol.constants import PIN_TRIES, PUK_TRIES, CardFlags, Lifecycle, SlotState, class_without_channel
from cardshield.protocol.fci import FCI
from cardshield.protocol.transaction import signed_transaction_data

from . import spec
from .generator import Apdu

_SUCCESS = 0x9000


def _succeeded(sw: int) -> bool:
    return sw == _SUCCESS or sw >> 8 == 0x61


def _unpad(field_: bytes) -> str:
    return field_.rstrip(b"\xff").decode("ascii", "replace")


@dataclass
class Expected:
    """The persistent state the card must show (the FCI fields that never change by themselves)."""

    lifecycle: int
    flags: int
    pin_tries: int
    puk_tries: int
    counter: int
    certificates: dict[int, bytes]
    keys_present: dict[int, bool]
    slot_config: dict[int, tuple[int, int]]  # slot -> (algorithm, policy)

    @classmethod
    def from_fci(cls, fci: FCI, certificates: dict[int, bytes]) -> Expected:
        return cls(
            lifecycle=int(fci.lifecycle), flags=int(fci.flags), pin_tries=fci.pin_tries, puk_tries=fci.puk_tries,
            counter=fci.counter, certificates=dict(certificates),
            keys_present={s: info.has_key for s, info in fci.slots.items()},
            slot_config={s: (int(info.algorithm), int(info.policy)) for s, info in fci.slots.items()},
        )


@dataclass
class Finding:
    """One violated invariant."""

    what: str
    step: int | None = None  # index of the step in the case, if one answer is to blame


@dataclass
class CardModel:
    expected: Expected
    pin: str
    puk: str
    public_keys: dict[int, rsa.RSAPublicKey]
    #: set when a command succeeded whose effect the FCI must tell (slot configuration)
    resync_slots: bool = False
    #: slots whose key was regenerated during the case: re-read, compare nothing
    regenerated: set[int] = field(default_factory=set)
    #: the card speaks T=0 (a T=0 card profile): it carries no extended APDU
    t0: bool = False
    _chain: tuple[int, int, int, bytes] | None = None  # (ins, p1, p2, data so far)

    # -- one answer ---------------------------------------------------------------------
    def reset(self) -> None:
        """Card reset: transient state (chains, PIN validity) is gone, persistent stays."""
        self._chain = None

    def apply(self, apdu: Apdu, data: bytes, sw: int, step: int, findings: list[Finding]) -> None:
        """Check one answer against the doc and move the model by what it says happened."""
        if apdu.malformed and sw == 0x6700:
            return  # refused before any command ran (ISO 7816-3 12.1.3)
        if self.t0 and sw == 0x6700 and len(apdu.raw) > 5 and apdu.raw[4] == 0:
            return  # an extended APDU on T=0: refused by the transport, no command ran (7816-3 12.2)
        if sw == 0x6F00 or not spec.allowed(apdu.cla, apdu.ins, apdu.p1, apdu.p2, sw):
            name = spec.command_name(apdu.cla, apdu.ins, apdu.p1, apdu.p2) or "unknown INS"
            findings.append(Finding(f"SW {sw:04X} is not a status word docs/apdu.md allows for {name}", step))
        if data and 0x64 <= sw >> 8 <= 0x6F:
            findings.append(Finding(f"SW {sw:04X} (an error) came with {len(data)} data bytes", step))
        full = self._chained_data(apdu, sw)
        if full is None:
            return  # a chain piece: nothing happens before the last one
        e = self.expected
        plain = class_without_channel(apdu.cla) & 0xEF in (0x00, 0x80)
        if not plain:
            return  # secure channel (CLA 84) or refused class: no plain command ran
        ins, p1, p2 = apdu.ins, apdu.p1, apdu.p2
        tries = sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None
        if ins == 0x20 and p2 == 0x81 and p1 == 0x00:
            if full and tries is not None:
                e.pin_tries = tries
            elif full and sw == _SUCCESS:
                e.pin_tries = PIN_TRIES
            elif not full and tries is not None and tries != e.pin_tries:
                findings.append(Finding(f"VERIFY status says {tries} tries left, the card had {e.pin_tries}", step))
        elif ins == 0x24 and p1 == 0x00 and p2 in (0x81, 0x82):
            pin = p2 == 0x81
            if tries is not None:
                if pin:
                    e.pin_tries = tries
                else:
                    e.puk_tries = tries
                    if tries == 0:
                        e.lifecycle = Lifecycle.TERMINATED
            elif sw == _SUCCESS and len(full) == 24:
                if pin:
                    e.pin_tries, self.pin = PIN_TRIES, _unpad(full[12:])
                else:
                    e.puk_tries, self.puk = PUK_TRIES, _unpad(full[12:])
        elif ins == 0x2C and p1 == 0x00 and p2 == 0x81:
            if tries is not None:
                e.puk_tries = tries
                if tries == 0:
                    e.lifecycle = Lifecycle.TERMINATED
            elif sw == _SUCCESS:
                e.puk_tries, e.pin_tries, self.pin = PUK_TRIES, PIN_TRIES, full[8:].decode("ascii", "replace")
        elif ins == 0xDA and sw == _SUCCESS and p1 == 0xC1 and p2 in e.certificates:
            e.certificates[p2] = full
        elif ins == 0x47 and p1 == 0x80 and _succeeded(sw) and p2 in e.certificates:
            e.certificates[p2] = b""
            e.keys_present[p2] = True
            self.regenerated.add(p2)
        elif ins == 0x54 and _succeeded(sw):
            e.counter += 1
            if sw == _SUCCESS:
                self._check_transaction(p2, full, data, step, findings)
        elif ins == 0xE0 and sw == _SUCCESS:
            if p1 == 0x01:
                self.pin, e.pin_tries, e.flags = full.decode("ascii", "replace"), PIN_TRIES, e.flags | CardFlags.PIN_SET
            elif p1 == 0x02:
                self.puk, e.puk_tries, e.flags = full.decode("ascii", "replace"), PUK_TRIES, e.flags | CardFlags.PUK_SET
            elif p1 == 0x04:  # RSA 7F49{81,82} or EC 7F49{86}: FCI flag 40 says which
                ec_key = tlv.decode(full)[0].children()[0].tag == 0x86
                e.flags = (e.flags | CardFlags.SERVER_KEY_LOADED) & ~CardFlags.SERVER_KEY_EC
                if ec_key:
                    e.flags |= CardFlags.SERVER_KEY_EC
            self.resync_slots = True
        elif ins == 0xE2 and sw == _SUCCESS:
            e.lifecycle = Lifecycle.ISSUED
            self.resync_slots = True

    def _chained_data(self, apdu: Apdu, sw: int) -> bytes | None:
        """ISO 7816-4 5.1.1.1 as the applet does it: the data of a whole chain when its
        last command was answered, None for a piece that opened or continued a chain."""
        key = (apdu.ins, apdu.p1, apdu.p2)
        previous = self._chain[3] if self._chain and self._chain[:3] == key else b""
        if apdu.cla & 0x10:
            self._chain = (*key, previous + apdu.data) if sw == _SUCCESS else None
            return None
        self._chain = None
        return previous + apdu.data

    def _check_transaction(self, slot: int, sent: bytes, response: bytes, step: int, findings: list[Finding]) -> None:
        """The signature must verify over exactly the 81..85 sent and the counter returned."""
        try:
            items = tlv.decode(response)
            counter = int.from_bytes(items[0].value, "big")
            signature = items[1].value
            tlvs = b"".join(tlv.encode(i.tag, i.value) for i in tlv.decode(sent) if 0x81 <= i.tag <= 0x85)
        except (tlv.TLVError, IndexError) as error:
            findings.append(Finding(f"SIGN TRANSACTION answered 9000 with an unparsable response: {error}", step))
            return
        if counter != self.expected.counter:
            findings.append(Finding(f"SIGN TRANSACTION returned counter {counter}, expected {self.expected.counter}",
                                    step))
        key = self.public_keys.get(slot)
        if key is None or slot in self.regenerated:
            return
        try:
            key.verify(signature, signed_transaction_data(tlvs, counter), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            findings.append(Finding(f"SIGN TRANSACTION signature ({len(signature)} bytes, key of {key.key_size} "
                                    f"bits, counter {counter}) does not verify over the fields sent", step))

    # -- after the case ------------------------------------------------------------------
    def compare(self, fci: FCI, findings: list[Finding]) -> None:
        e = self.expected
        checks = [
            ("lifecycle", e.lifecycle, int(fci.lifecycle)),
            ("PIN tries", e.pin_tries, fci.pin_tries),
            ("PUK tries", e.puk_tries, fci.puk_tries),
            ("signature counter", e.counter, fci.counter),
        ]
        if not self.resync_slots:
            checks.append(("flags", e.flags, int(fci.flags)))
        for slot, info in fci.slots.items():
            checks.append((f"slot {slot} certificate length", len(e.certificates.get(slot, b"")),
                           info.certificate_length))
            checks.append((f"slot {slot} certificate present", bool(e.certificates.get(slot)),
                           SlotState.CERTIFICATE_PRESENT in info.state))
            if not self.resync_slots:
                checks.append((f"slot {slot} key present", e.keys_present.get(slot), info.has_key))
                checks.append((f"slot {slot} algorithm/policy", e.slot_config.get(slot),
                               (int(info.algorithm), int(info.policy))))
        for what, want, got in checks:
            if want != got:
                findings.append(Finding(f"{what}: expected {want}, card shows {got}"))
        if self.resync_slots:  # adopt what a successful personalization set
            self.expected = replace(e, flags=int(fci.flags),
                                    keys_present={s: i.has_key for s, i in fci.slots.items()},
                                    slot_config={s: (int(i.algorithm), int(i.policy)) for s, i in fci.slots.items()})
            self.resync_slots = False


def leaked_factor(data: bytes, keys: dict[int, rsa.RSAPublicKey]) -> int | None:
    """The slot whose RSA modulus has a prime factor appearing in `data` (any byte
    window of the prime's length, one byte shorter for a leading zero), else None.
    A factor gives the whole private key, so this covers p, q and everything derived."""
    for slot, key in keys.items():
        n = key.public_numbers().n
        half = (key.key_size + 15) // 16
        for size in (half, half - 1):
            for start in range(0, len(data) - size + 1):
                window = int.from_bytes(data[start:start + size], "big")
                if window > 1 and n % window == 0:
                    return slot
    return None
