"""A fuzz campaign on the virtual card: card profiles, the case loop, the invariants, the report.

Cases are split into contiguous blocks, one per card profile (lifecycle and policy):

  personalization  a fresh instance (pristine), PIN/PUK/server key set or not
  terminated       an issued card whose PUK was blocked
  policy           issued, slot 1 PIN-per-signature + server-signed requests, slot 2 PIN-per-signature,
                   the bank's EC P-256 request key (8E as r || s) where the card has EC, else RSA-2048
  issued           issued, no policy flags, keys in both slots, a certificate in slot 1, the
                   bank's RSA-2048 request key

Before each case the PIN state is normalised (RESET RETRY COUNTER with the PUK, then a
variant drawn from the case's seed: PIN verified, not verified, one try left, blocked), so
a case is reproduced from the campaign seed and its index alone (`--case INDEX`).
After each case: the FCI must match the model (cardshield.fuzz.model), no response may hold
a prime factor of a card key, and every so often (and at the end of each block) the card
must complete a normal payment signature that verifies.
"""

from __future__ import annotations

import datetime
import hashlib
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cardshield.card.apdu import APDUFormatError, CommandAPDU
from cardshield.card.client import CardShield
from cardshield.card.errors import CardShieldCardError
from cardshield.card.transport import Transport
from cardshield.protocol import Transaction, encode_rsa_public_key, tlv
from cardshield.protocol.bank_key import (BankKeyType, bank_key_type_for, encode_bank_public_key, generate_bank_key,
                                          sign_request)
from cardshield.protocol.constants import Algorithm, Lifecycle, SlotPolicy
from cardshield.protocol.fci import FCI
from cardshield.protocol.transaction import signed_transaction_data

from . import spec
from .generator import RESET, Apdu, CardContext, Case, generate_case
from .model import CardModel, Expected, Finding, leaked_factor

PIN, PUK = "1234", "12345678"  # the fuzzed card's own test secrets
PROFILES = (("personalization", 0.15), ("terminated", 0.10), ("policy", 0.20), ("issued", 0.55))
PIN_VARIANTS = ("not verified", "verified", "verified", "one try left", "blocked")


@dataclass
class Failure:
    profile: str
    index: int
    variant: str
    findings: list[Finding]
    trace: list[str]

    def describe(self, seed: int, total: int, card_profile: str | None = None) -> str:
        """The findings and the case's APDUs; the profile of a case depends on the campaign
        size, so the command to reproduce it names both (and the card profile, if not the
        default)."""
        on_card = f" --profile {card_profile}" if card_profile else ""
        lines = [f"case {self.index} (profile {self.profile}, PIN {self.variant}), reproduce with "
                 f"`./cardshield fuzz --cases {total} --seed {seed} --case {self.index}{on_card}`"]
        lines += [f"  ! {f.what}" + (f" (step {f.step})" if f.step is not None else "") for f in self.findings]
        lines += [f"    {line}" for line in self.trace]
        return "\n".join(lines)


@dataclass
class Report:
    seed: int
    cases: int = 0
    apdus: int = 0
    resets: int = 0
    payments: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    status_words: Counter = field(default_factory=Counter)  # (command, SW) -> count

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        commands = len({name for name, _ in self.status_words})
        return (f"{self.cases} cases, {self.apdus} APDUs, {self.resets} resets, {self.payments} payment checks "
                f"in {self.seconds:.1f} s ({self.cases_per_second:.0f} cases/s, "
                f"{self.apdus / self.seconds if self.seconds else 0:.0f} APDUs/s); {commands} commands, "
                f"{len(self.status_words)} distinct (command, SW) pairs; {len(self.failures)} failing cases")


def case_variant(seed: int, index: int) -> str:
    rng = random.Random(hashlib.sha256(f"variant:{seed}:{index}".encode()).digest())
    return rng.choice(PIN_VARIANTS)


def profile_of(index: int, total: int) -> str:
    start = 0.0
    for name, share in PROFILES:
        start += share
        if index < start * total:
            return name
    return PROFILES[-1][0]


class Campaign:
    """One connection to the card for the whole campaign; `pristine` wipes the virtual card."""

    def __init__(self, transport: Transport, pristine, seed: int, *, progress=None, sign_every: int = 250,
                 max_failures: int = 20):
        self.transport = transport
        self.pristine = pristine
        self.card = CardShield(transport)
        self.seed = seed
        self.progress = progress
        self.sign_every = sign_every
        self.max_failures = max_failures
        self.report = Report(seed)
        self.server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # the bank's request keys: the "policy" profile's card holds the EC one (as a card with
        # EC is issued), the others the RSA one (also VERIFY's reference 10)
        self.bank_keys = {BankKeyType.RSA_2048: self.server_key,
                          BankKeyType.EC_P256: generate_bank_key(BankKeyType.EC_P256)}
        self.bank_key = self.server_key
        self.profile: str | None = None
        self.model: CardModel | None = None
        self.reference_certificate = b""

    # -- card profiles ---------------------------------------------------------------
    def _fresh(self) -> FCI:
        self.pristine()
        self.transport.reconnect("reset")
        return self.card.select()

    def _build(self, profile: str) -> None:
        """Bring the card into `profile` (key generation: the slow part, once per block)."""
        fci = self._fresh()
        if profile != "personalization":
            # slot 01 relaxed explicitly (ISSUE alone would give it PIN per signature + server-signed,
            # which the "policy" profile covers): SIGN TRANSACTION without 8E stays reachable
            slots = {1: (Algorithm.RSA_2048, SlotPolicy(0))}
            if profile == "policy":
                slots = {1: (Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE | SlotPolicy.SERVER_SIGNED_REQUESTS),
                         2: (Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE)}
            # the "policy" card gets what an issuer gives it: EC where the card has it (not on sim)
            policy_key_type = bank_key_type_for(fci.algorithms)
            self.bank_key = self.bank_keys[policy_key_type if profile == "policy" else BankKeyType.RSA_2048]
            self.card.personalize_development_card(
                PIN, PUK, server_key_7f49=encode_bank_public_key(self.bank_key.public_key()), slots=slots)
            keys = {}
            for slot in (1, 2):
                self.card.verify_pin(PIN)
                keys[slot] = self.card.generate_key(slot)
            self.reference_certificate = _certificate(keys[1], self.server_key)
            self.card.verify_pin(PIN)
            self.card.write_certificate(1, self.reference_certificate)
            if profile == "terminated":
                for _ in range(10):
                    self.transport.transmit(_command("00 2C 00 81", b"00000000" + PIN.encode()))
        fci = self.card.select()
        certificates = {1: self.reference_certificate if profile != "personalization" else b"", 2: b""}
        keys = {s: self.card.read_public_key(s) for s, info in fci.slots.items() if info.has_key}
        self.model = CardModel(Expected.from_fci(fci, certificates), PIN if profile != "personalization" else "",
                               PUK if profile != "personalization" else "", keys,
                               t0=self.transport.protocol_name == "T0")
        self.profile = profile

    def _prepare(self, profile: str, variant: str, rng: random.Random) -> None:
        """Normalise the card before a case so the case alone decides what happens."""
        if profile == "personalization" or self.profile != profile or self.model is None:
            self._build(profile)  # personalization: a fresh instance per case (pristine costs milliseconds)
        model = self.model
        if profile == "personalization":
            for step, value in (("01", rng.choice(("1234", ""))), ("02", rng.choice(("12345678", "")))):
                if value:
                    self._expect(_command(f"80 E0 {step} 00", value.encode()), 0x9000)
                    if step == "01":
                        model.pin = value
                    else:
                        model.puk = value
            if rng.random() < 0.3:
                self._expect(_command("80 E0 04 00", encode_rsa_public_key(self.server_key.public_key())), 0x9000)
            model.expected = Expected.from_fci(self.card.select(), model.expected.certificates)
            return
        if model.expected.lifecycle == Lifecycle.TERMINATED and profile != "terminated":
            self._build(profile)
            model = self.model
        self.card.select()
        if profile != "terminated":
            self._reset_secrets()
            if model.expected.certificates[1] != self.reference_certificate or model.regenerated:
                self._restore_keys_and_certificate()
            if variant.startswith("verified"):
                self._expect(_command("00 20 00 81", PIN.encode()), 0x9000)
            wrong = {"one try left": 2, "blocked": 3}.get(variant, 0)
            for _ in range(wrong):
                self.transport.transmit(_command("00 20 00 81", b"0000"))
            model.expected.pin_tries -= wrong

    def _resync(self) -> None:
        """Take the card's state as the model's (after a finding, or the next cases would
        all repeat it)."""
        model = self.model
        fci = self.card.select()
        certificates = {slot: self.card.read_certificate(slot) or b"" for slot in fci.slots}
        model.expected = Expected.from_fci(fci, certificates)
        model.public_keys = {s: self.card.read_public_key(s) for s, info in fci.slots.items() if info.has_key}
        model.regenerated.clear()
        model.resync_slots = False
        self.card.select()

    def _reset_secrets(self) -> None:
        """PUK back to its value (a case may have changed it), then RESET RETRY COUNTER:
        PIN known and unblocked, both try counters full."""
        model = self.model
        if model.puk != PUK:
            self._expect(_command("00 24 00 82", _pad(model.puk) + _pad(PUK)), 0x9000)
            model.puk = PUK
        self._expect(_command("00 2C 00 81", PUK.encode() + PIN.encode()), 0x9000)
        model.pin = PIN
        model.expected.pin_tries, model.expected.puk_tries = 3, 10

    def _restore_keys_and_certificate(self) -> None:
        model = self.model
        for slot in sorted(model.regenerated):
            model.public_keys[slot] = self.card.read_public_key(slot)
        model.regenerated.clear()
        self._expect(_command("00 20 00 81", PIN.encode()), 0x9000)
        self._expect(_command("00 DA C1 01", self.reference_certificate), 0x9000)
        model.expected.certificates[1] = self.reference_certificate
        self.card.select()

    def _expect(self, command: CommandAPDU, sw: int) -> bytes:
        response = self.transport.transmit(command)
        if response.sw != sw:
            raise RuntimeError(f"fuzzer setup: {command.trace()} answered {response.sw:04X}, expected {sw:04X}")
        return response.data

    # -- one case ----------------------------------------------------------------------
    def run_case(self, index: int, total: int) -> None:
        profile = profile_of(index, total)
        variant = case_variant(self.seed, index) if profile != "personalization" else "n/a"
        rng = random.Random(hashlib.sha256(f"prepare:{self.seed}:{index}".encode()).digest())
        self._prepare(profile, variant, rng)
        model = self.model
        ctx = CardContext(model.pin or PIN, model.puk or PUK, dict(model.public_keys), self.server_key,
                          self.reference_certificate, self.bank_key, self.bank_keys)
        case = generate_case(self.seed, index, ctx)
        findings: list[Finding] = []
        trace: list[str] = []
        for step, action in enumerate(case.steps):
            if action == RESET:  # a warm reset, then the terminal selects the applet again
                self.transport.reconnect("reset")
                self.card.select()
                model.reset()
                self.report.resets += 1
                trace.append("RESET, SELECT applet")
                continue
            data, sw = self._send_raw(action)
            if sw is None:
                findings.append(Finding("the card answered without a status word", step))
                trace.append(f"{action} -> no status word")
                continue
            self.report.apdus += 1
            name = spec.command_name(action.cla, action.ins, action.p1, action.p2) or "unknown INS"
            self.report.status_words[(name, sw)] += 1
            trace.append(f"{action} -> {'%d bytes ' % len(data) if data else ''}{sw:04X}")
            model.apply(action, data, sw, step, findings)
            if action.ins == 0xA4 and action.p1 == 0x04 and _succeeded(sw) and not self._selects_applet(action, data):
                self.card.select()  # another application took the selection: back to the applet
                trace.append("SELECT applet again (another application was selected)")
            slot = leaked_factor(data, model.public_keys)
            if slot is not None:
                findings.append(Finding(f"response holds a prime factor of slot {slot}'s modulus", step))
        self._check_after(case, findings)
        if profile != "personalization" and (index % self.sign_every == 0 or index == total - 1
                                             or profile_of(index + 1, total) != profile or findings):
            self._check_payment(findings)
        self.report.cases += 1
        if findings:
            self._resync()  # report a divergence once, not again in every later case
            self.report.failures.append(Failure(profile, index, variant, findings, trace + ["mutations: " + ", ".join(case.mutations)]))

    def _selects_applet(self, select: Apdu, response: bytes) -> bool:
        """Whether a successful SELECT by name chose the applet: its FCI names it, or (on T=0,
        where the FCI waits behind 61xx) the name sent is the applet's AID or a prefix of it."""
        return self.card.aid in response or (bool(select.data) and self.card.aid.startswith(select.data))

    def _send_raw(self, apdu: Apdu) -> tuple[bytes, int | None]:
        try:
            response = self.transport.exchange_raw(apdu.raw)
        except APDUFormatError:  # fewer than two bytes back
            return b"", None
        return response.data, response.sw

    def _check_after(self, case: Case, findings: list[Finding]) -> None:
        model = self.model
        response = self.transport.transmit(_command("00 A4 04 00", self.card.aid, ne=256))
        if response.sw != 0x9000:
            findings.append(Finding(f"the applet no longer selects: {response.sw:04X}"))
            return
        from cardshield.protocol.fci import parse_fci

        fci = parse_fci(response.data)
        model.compare(fci, findings)
        if any("does not verify" in f.what for f in findings):  # tell a stale model key from a bad signature
            for slot, key in model.public_keys.items():
                if self.card.read_public_key(slot).public_numbers() != key.public_numbers():
                    findings.append(Finding(f"slot {slot}: the key on the card is not the one the model had"))
            self.card.select()
        touched = {a.ins for a in case.steps if isinstance(a, Apdu)}
        if touched & {0xDA, 0x47}:  # the commands that write certificate storage
            for slot, want in model.expected.certificates.items():
                got = self.card.read_certificate(slot) or b""
                if got != want:
                    findings.append(Finding(f"slot {slot} certificate: {len(got)} bytes on the card differ from "
                                            f"the {len(want)} bytes expected"))
        if touched & {0x47, 0xE0}:  # the commands that touch key objects
            for slot, key in list(model.public_keys.items()):
                if slot in model.regenerated:
                    continue
                if self.card.read_public_key(slot).public_numbers() != key.public_numbers():
                    findings.append(Finding(f"slot {slot} public key changed without a successful key generation"))
                    model.public_keys[slot] = self.card.read_public_key(slot)
            self.card.select()

    def _check_payment(self, findings: list[Finding]) -> None:
        """A normal payment signature on slot 1, verified with the slot's public key."""
        model = self.model
        self.card.select()
        if model.regenerated:
            self._restore_keys_and_certificate()
        tx = Transaction(amount=4200, currency="EUR", payee="Fuzz check shop", order_ref="check",
                         nonce=random.Random(self.report.payments).randbytes(16))
        tlvs = tx.tlvs()
        data = tlvs + tlv.encode(0x8E, sign_request(self.bank_key, tlvs))
        self.report.payments += 1
        if model.expected.lifecycle == Lifecycle.TERMINATED:
            response = self.transport.transmit(_command("80 54 00 01", data, ne=256))
            if response.sw != 0x6983:
                findings.append(Finding(f"a TERMINATED card answered SIGN TRANSACTION with {response.sw:04X}"))
            return
        self._reset_secrets()
        self._expect(_command("00 20 00 81", PIN.encode()), 0x9000)
        response = self.transport.transmit(_command("80 54 00 01", data, ne=256))
        if response.sw != 0x9000:
            findings.append(Finding(f"payment check: SIGN TRANSACTION answered {response.sw:04X}"))
            return
        model.expected.counter += 1
        counter = int.from_bytes(response.data[2:6], "big")
        signature = tlv.decode(response.data)[1].value
        try:
            model.public_keys[1].verify(signature, signed_transaction_data(tlvs, counter), padding.PKCS1v15(),
                                        hashes.SHA256())
        except Exception:
            stale = self.card.read_public_key(1).public_numbers() != model.public_keys[1].public_numbers()
            findings.append(Finding("payment check: the signature does not verify"
                                    + (" (the key on the card is not the one the model had)" if stale
                                       else " with the slot's current key")))
        if counter != model.expected.counter:
            findings.append(Finding(f"payment check: counter {counter}, expected {model.expected.counter}"))
        self.card.select()

    # -- the campaign ---------------------------------------------------------------
    def run(self, total: int, only: int | None = None) -> Report:
        started = time.perf_counter()
        indices = [only] if only is not None else range(total)
        last_shown = 0.0
        for done, index in enumerate(indices, 1):
            try:
                self.run_case(index, total)
            except CardShieldCardError as error:  # the card or the reader gave up: stop here
                self.report.failures.append(Failure(profile_of(index, total), index, case_variant(self.seed, index),
                                                    [Finding(f"the card stopped answering: {error}")], []))
                break
            now = time.perf_counter()
            if self.progress and (now - last_shown > 2 or done == len(indices)):
                last_shown = now
                self.progress(f"fuzz: {done}/{len(indices)} cases ({profile_of(index, total)}), "
                              f"{len(self.report.failures)} failing, {done / (now - started):.0f} cases/s")
            if len(self.report.failures) >= self.max_failures:
                break
        self.report.seconds = time.perf_counter() - started
        return self.report


def _command(header: str, data: bytes = b"", ne: int | None = None) -> CommandAPDU:
    cla, ins, p1, p2 = bytes.fromhex(header)
    return CommandAPDU(cla, ins, p1, p2, data, ne)


def _pad(secret: str) -> bytes:
    return secret.encode() + b"\xff" * (12 - len(secret))


def _certificate(public_key, issuer_key) -> bytes:
    """A certificate for the card key, issued by the campaign's test CA key."""
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CardShield fuzz card")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CardShield fuzz CA")]))
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
        .sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)
    )


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _succeeded(sw: int) -> bool:
    """9000, or 61xx: success with the answer waiting for GET RESPONSE (T=0; ISO/IEC 7816-4 status bytes)."""
    return sw == 0x9000 or sw >> 8 == 0x61
