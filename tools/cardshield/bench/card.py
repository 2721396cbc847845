"""Card figures for docs/benchmarks.md: per operation and per flow, the APDUs and bytes on
the wire with a short-APDU reader (chaining, 61xx/GET RESPONSE) and an extended-length
reader, against the protocol minimum, and the time per operation on the virtual card.

The protocol minimum of an operation is its logical commands each sent once in the shortest
ISO/IEC 7816-4 encoding (extended only where a short APDU cannot carry it) with the whole
response in one answer: header, length fields, data, response data and SW1 SW2. Times are
medians of repeated runs with min and max, measured through PC/SC (pcscd, vpcd, jcardsim),
so they show the cost of the APDU traffic and of jcardsim's crypto, not of a real chip.

The card is issued as a bank's card is: one CardShield instance at the default AID with a
personalization key set, personalized by the issuer's secured script (demo.personalize_card)
with an attestation key certified by an attestation CA, so the enrollment flow runs ATTEST as
the server asks for it, and the bank's EC P-256 request key (what a card with EC gets). Slot
01 is configured explicitly without PIN per signature and without bank-signed requests, so
SIGN TRANSACTION is measured with and without 8E. The card is then issued again with the
RSA-2048 bank key (what a card without EC, a SIM, gets) for the bank-signed operations, so
the payment's bytes are reported per bank key type.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from cardshield.card.apdu import CommandAPDU, ResponseAPDU
from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.perso import keys as perso_keys
from cardshield.protocol import Transaction, commands
from cardshield.protocol.attestation import attest_command, parse_attest_response
from cardshield.protocol.fci import parse_certificate_fcp
from cardshield.protocol.bank_key import BankKeyType, BankPrivateKey, generate_bank_key, sign_request
from cardshield.protocol.constants import APPLET_AID, Template
from cardshield.protocol.transaction import signed_transaction_data
from cardshield.server.enrollment import CHALLENGE_BYTES
from cardshield.sim.applets import VirtualApplet

PIN, PUK = "1234", "12345678"
ENROLLMENT_FLOW = "flow: enrollment, card side (figure 5, the server's three batches with ATTEST)"


def payment_flow(bank_key: BankKeyType) -> str:
    return f"flow: payment, card side (figure 6, one batch with the certificate reference), {bank_key.label} bank key"


def bank_signed_transaction(bank_key: BankKeyType) -> str:
    return f"SIGN TRANSACTION with the bank's signature 8E, {bank_key.label} (+VERIFY)"


#: the payment of a card with EC (the default and JCOP-4-like cards) and of one without (SIM)
PAYMENT_FLOW = payment_flow(BankKeyType.EC_P256)
PAYMENT_FLOW_RSA = payment_flow(BankKeyType.RSA_2048)
# Issue 12's budgets: enrollment at most 2 APDUs over the 9 before attestation, payment not
# over its 4 (extended-length reader).
ENROLLMENT_APDUS_BEFORE, ENROLLMENT_APDUS_ALLOWED = 9, 2
PAYMENT_APDUS_BEFORE = 4


def bench_personalization_steps(bank_key: BankKeyType) -> tuple[dict, ...]:
    """The issuer's script for the bench's card: demo.personalization_steps, except slot 01
    relaxed explicitly (SIGN TRANSACTION is measured with and without the bank's 8E)."""
    from cardshield.demo import personalization_steps

    relaxed = {"slot_config": {"slot": 1, "algorithm": "RSA-2048", "pin_per_signature": False,
                               "server_signed_transactions": False}}
    return tuple(relaxed if step.get("slot_config", {}).get("slot") == 1 else step
                 for step in personalization_steps(bank_key))


# Issue 14's goal for the card side of a payment, in bytes on the wire.
PAYMENT_BYTES_GOAL = 600


class CountingTransport(Transport):
    """A Transport that counts the APDUs and bytes it exchanges (both directions)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.apdus = self.sent = self.received = 0
        self.logical: list[tuple[int, int]] = []  # per transmit(): shortest command, response bytes
        self.exchanges: list[Exchange] = []  # per APDU on the wire

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        response = super().transmit(command)
        # the shortest encoding that still asks for the whole response (extended Le above 256)
        ne = max(len(response.data), 1) if command.ne is not None else None
        shortest = len(replace(command, extended=None, ne=ne).encode())
        self.logical.append((shortest, len(response.data) + 2))
        return response

    def exchange(self, command: CommandAPDU) -> ResponseAPDU:
        response = super().exchange(command)
        self.apdus += 1
        self.sent += len(command.encode())
        self.received += len(response.data) + 2
        self.exchanges.append(Exchange(command.ins, len(command.encode()), len(response.data) + 2))
        return response

    def snapshot(self) -> tuple[int, int]:
        return self.apdus, self.sent + self.received


@dataclass
class Wire:
    apdus: int
    bytes: int


@dataclass(frozen=True)
class Exchange:
    """One APDU on the wire: its INS, command bytes, response bytes (data + SW1 SW2)."""
    ins: int
    sent: int
    received: int


@dataclass
class Operation:
    name: str
    minimum: Wire
    short: Wire
    extended: Wire
    times_ms: list[float] = field(default_factory=list)
    # the short-APDU reader's exchanges, for the operations whose bytes are broken down
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def minimum_wire(logical: list[tuple[int, int]]) -> Wire:
    """Each logical command once in its shortest encoding, its whole response in one answer."""
    return Wire(len(logical), sum(command + response for command, response in logical))


@dataclass
class Scenario:
    """An operation as the client runs it, and the logical commands it consists of."""

    name: str
    run: Callable[[CardShield], object]
    repeat: int = 15


def _certificate(public_key, issuer_key, size: int = 0) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CardShield bench holder")]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CardShield bench CA")]))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365)))
    if size:
        base = len(builder.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER))
        filler = max(0, size - base - 8)
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"), b"\x04\x82" + filler.to_bytes(2, "big") + b"\xa5" * filler),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)


@dataclass(frozen=True)
class BenchIssuer:
    """The issuer of the bench's card: a master key and card id made for one run and never
    written anywhere, the key set the card is installed with, its attestation CA."""

    directory: Path  # the script, the attestation CA and the card record go here
    master_key: bytes = field(default_factory=lambda: secrets.token_bytes(16), repr=False)
    card_id: bytes = field(default_factory=lambda: secrets.token_bytes(8))

    def applets(self, applets: list[VirtualApplet]) -> list[VirtualApplet]:
        """The CardShield instance at the default AID installed with the card's key set
        (GP install parameters C0, C1), as an issuer delivers it; other applets unchanged."""
        key_set = perso_keys.diversify(perso_keys.software_master(self.master_key), 1, self.card_id)
        parameters = perso_keys.install_parameters(key_set, self.card_id)
        return [replace(a, parameters=parameters) if a.instance_aid == APPLET_AID else a for a in applets]

    def personalize(self, transport: Transport, bank_keys: dict[BankKeyType, BankPrivateKey],
                    bank_key: BankKeyType) -> None:
        """The secured script with the attestation key and the bank's request key of type
        `bank_key`, then ISSUE (demo.personalize_card)."""
        from cardshield.attestation.ca import AttestationCA
        from cardshield.demo import ATTESTATION_CA_DIR, personalize_card
        from cardshield.perso.keystore import MappingKeyStore

        if not (self.directory / ATTESTATION_CA_DIR).exists():
            AttestationCA.create(self.directory / ATTESTATION_CA_DIR, "CardShield Bench Issuer")
        store = MappingKeyStore({"ISSUER_MK": self.master_key.hex(), "CARD_PIN": PIN, "CARD_PUK": PUK},
                                "the bench's generated secrets", "the bench generates {name}")

        def request_key_pem(key_type: str) -> bytes:
            return bank_keys[BankKeyType(key_type)].public_key().public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

        personalize_card(transport, self.directory, self.card_id, store, request_key_pem,
                         bank_key_type=bank_key, steps=bench_personalization_steps)


class CardBench:
    """Runs every scenario with both readers on one issued virtual card (BenchIssuer)."""

    def __init__(self, reader: str, pristine: Callable[[], None], issuer: BenchIssuer,
                 progress: Callable[[str], None] = print):
        self.reader = reader
        self.pristine = pristine
        self.issuer = issuer
        self.progress = progress
        self.server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the CA's
        self.bank_keys = {key_type: generate_bank_key(key_type) for key_type in BankKeyType}
        self.bank_key = BankKeyType.EC_P256
        self.short = CountingTransport(reader, extended_length=False)
        self.extended = CountingTransport(reader, extended_length=True)

    def prepare(self, bank_key: BankKeyType = BankKeyType.EC_P256, slots: tuple[int, ...] = (1, 2)) -> None:
        """Issue the card (wiped first) with the bank key of `bank_key`, generate the keys
        of `slots` and store slot 01's certificate."""
        if self.extended.connected:
            self.extended.close()
        if not self.short.connected:
            self.short.connect()
        self.pristine()
        self.short.reconnect("reset")
        self.bank_key = bank_key
        self.issuer.personalize(self.short, self.bank_keys, bank_key)
        card = CardShield(self.short)
        card.select()
        self.attestation_key = x509.load_der_x509_certificate(card.read_attestation_certificate()).public_key()
        for slot in slots:
            card.verify_pin(PIN)
            card.generate_key(slot)
        self.public_key = card.read_public_key(1)
        if 2 in slots:
            self.decipher_key = card.read_public_key(2)
        self.certificate = _certificate(self.public_key, self.server_key, 1100)
        self.big_certificate = _certificate(self.public_key, self.server_key, 3000)
        card.verify_pin(PIN)
        card.write_certificate(1, self.certificate)
        # a signature of slot 01 over a known hash, for VERIFY DIGITAL SIGNATURE with its public key
        tx = self._transaction()
        card.verify_pin(PIN)
        signed = card.sign_transaction(1, tx)
        self.slot1_signature = (_sha256(signed_transaction_data(tx.tlvs(), signed.counter)), signed.signature)
        self.extended.connect()  # after the reset above, or its first command would see SCARD_W_RESET_CARD

    def close(self) -> None:
        self.short.close()
        self.extended.close()

    # -- the scenarios -------------------------------------------------------------------
    def scenarios(self) -> list[Scenario]:
        def verify(card):
            card.verify_pin(PIN)

        def generate(card):
            card.verify_pin(PIN)
            self.decipher_key = card.generate_key(2)  # slot 2: DECIPHER below uses the new key

        def sign_hash(card):
            """Bare-hash signing exists on slot 02 only (the payment slot refuses it)."""
            card.set_security_environment(Template.DIGITAL_SIGNATURE, private_slot=2)
            card.verify_pin(PIN)
            card.sign_hash(os.urandom(32))

        def sign_transaction(card):
            card.verify_pin(PIN)
            card.sign_transaction(1, self._transaction())

        def sign_transaction_server_signed(card):
            tx = self._transaction()
            signature = sign_request(self.bank_keys[self.bank_key], tx.tlvs())
            card.verify_pin(PIN)
            card.sign_transaction(1, tx, signature)

        def prove_possession(card):
            card.verify_pin(PIN)
            card.prove_possession(1, os.urandom(32))

        def decipher(card):
            cryptogram = self.decipher_key.encrypt(os.urandom(32), padding.PKCS1v15())
            card.verify_pin(PIN)
            card.decipher(cryptogram)

        def verify_signature(card):
            """With slot 01's public key (the bank's key may be EC, which VERIFY does not take)."""
            digest, signature = self.slot1_signature
            card.set_security_environment(Template.DIGITAL_SIGNATURE, public_ref=1)
            assert card.verify_signature(digest, signature)

        def write_certificate(card, der=None):
            card.verify_pin(PIN)
            card.write_certificate(1, der or self.certificate, extended=card.transport is self.extended)

        def read_certificate(card, der=None):
            assert card.read_certificate(1, extended=card.transport is self.extended) == (der or self.certificate)

        def enrollment(card):
            """Patent figure 5 on the card as the server's three batches have it
            (cardshield.server.enrollment), with the terminal's PIN VERIFY before each command
            marked pin_required: SELECT applet, GENERATE | READ PUBLIC KEY, PROVE POSSESSION and
            ATTEST over the same challenge | PUT DATA certificate, SELECT EF + READ BINARY."""
            card.select()
            card.verify_pin(PIN)
            card.generate_key(1)
            key = card.read_public_key(1)
            challenge = os.urandom(CHALLENGE_BYTES)
            card.verify_pin(PIN)
            card.prove_possession(1, challenge)
            self._check_attestation(card.attest(1, challenge), challenge)
            der = _certificate(key, self.server_key, 1100)
            write_certificate(card, der)
            read_certificate(card, der)

        def payment_reading_the_certificate(card):
            """Figure 6 as the four-request path ran it: read the whole certificate, PIN,
            sign the server-signed transaction."""
            card.read_certificate(1, extended=card.transport is self.extended)
            sign_transaction_server_signed(card)

        def payment(card):
            """Figure 6 on the card as the server's one batch has it (cardshield.server.payment):
            SELECT applet, SELECT certificate EF answering the FCP with its SHA-256 (tag 85),
            the terminal's PIN VERIFY, SIGN TRANSACTION with the bank's signature (8E)."""
            card.select()
            fcp = parse_certificate_fcp(card.transmit(commands.select_certificate(1, fcp=True)).data)
            assert fcp.sha256 is not None  # the applet keeps the reference of the stored certificate
            sign_transaction_server_signed(card)

        return [
            Scenario("SELECT (FCI)", lambda card: card.select(), 40),
            Scenario("VERIFY PIN", verify, 40),
            Scenario("READ PUBLIC KEY", lambda card: card.read_public_key(1), 30),
            Scenario("GENERATE KEY PAIR RSA-2048 (+VERIFY)", generate, 5),
            Scenario("MSE SET slot 02 + PSO COMPUTE DIGITAL SIGNATURE (+VERIFY)", sign_hash, 15),
            Scenario("SIGN TRANSACTION (+VERIFY)", sign_transaction, 15),
            Scenario(bank_signed_transaction(BankKeyType.EC_P256), sign_transaction_server_signed, 15),
            Scenario("PROVE POSSESSION (+VERIFY)", prove_possession, 15),
            Scenario("PSO DECIPHER (+VERIFY)", decipher, 15),
            Scenario("PSO ENCIPHER", lambda card: card.encipher(os.urandom(32)), 15),
            Scenario("MSE SET + PSO VERIFY DIGITAL SIGNATURE", verify_signature, 15),
            Scenario("PUT DATA certificate 1.1 KB (+VERIFY)", write_certificate, 15),
            Scenario("SELECT EF + READ BINARY certificate 1.1 KB", read_certificate, 15),
            Scenario("PUT DATA certificate 3 KB (+VERIFY)", lambda card: write_certificate(card, self.big_certificate), 10),
            Scenario("SELECT EF + READ BINARY certificate 3 KB",
                     lambda card: read_certificate(card, self.big_certificate), 10),
            Scenario("(restore the 1.1 KB certificate)", write_certificate, 1),
            Scenario(ENROLLMENT_FLOW, enrollment, 3),
            Scenario("flow: payment, card side, reading the certificate (four requests, before)",
                     payment_reading_the_certificate, 5),
            Scenario(PAYMENT_FLOW, payment, 15),
        ]

    def rsa_bank_key_scenarios(self) -> list[Scenario]:
        """The bank-signed operations again, on the card issued with the RSA-2048 bank key."""
        named = {s.name: s for s in self.scenarios()}
        return [replace(named[bank_signed_transaction(BankKeyType.EC_P256)],
                        name=bank_signed_transaction(BankKeyType.RSA_2048)),
                replace(named[PAYMENT_FLOW], name=PAYMENT_FLOW_RSA)]

    def _check_attestation(self, response: bytes, challenge: bytes) -> None:
        """The card answered ATTEST with its attestation key, about slot 01, over this
        challenge (what the server checks besides the chain and the registry)."""
        statement, signature = parse_attest_response(response)
        assert statement.slot == 1 and statement.challenge == challenge
        self.attestation_key.verify(signature, statement.signed_data(), padding.PKCS1v15(), hashes.SHA256())

    def _transaction(self) -> Transaction:
        return Transaction(amount=129900, currency="EUR", payee="Boulangerie du Coin", order_ref="INV-2026-0042",
                           nonce=os.urandom(32))

    # -- measuring -------------------------------------------------------------------------
    def measure(self, scenario: Scenario) -> Operation:
        """One counted run per reader, then `repeat` timed runs with the extended reader
        (the fastest path; the short reader's extra APDUs cost about what its counts say)."""
        wires = {}
        exchanges: list[Exchange] = []
        times: list[float] = []
        logical: list[tuple[int, int]] = []
        for label, transport in (("short", self.short), ("extended", self.extended)):
            card = CardShield(transport)
            card.select()
            before, transport.logical, transport.exchanges = transport.snapshot(), [], []
            scenario.run(card)
            after = transport.snapshot()
            logical = list(transport.logical)
            wires[label] = Wire(after[0] - before[0], after[1] - before[1])
            if label == "short":
                exchanges = list(transport.exchanges)
        card = CardShield(self.extended)
        for _ in range(scenario.repeat):
            card.select()
            started = time.perf_counter()
            scenario.run(card)
            times.append((time.perf_counter() - started) * 1000)
        return Operation(scenario.name, minimum_wire(logical), wires["short"], wires["extended"], times,
                         exchanges)

    def run(self) -> list[Operation]:
        results = []
        for bank_key, scenarios, slots in ((BankKeyType.EC_P256, self.scenarios(), (1, 2)),
                                           (BankKeyType.RSA_2048, self.rsa_bank_key_scenarios(), (1,))):
            self.progress(f"bench card: issuing the card with the {bank_key.label} bank key")
            self.prepare(bank_key, slots)
            for i, scenario in enumerate(scenarios, 1):
                self.progress(f"bench card: {bank_key.label} bank key, {i}/{len(scenarios)} {scenario.name}")
                operation = self.measure(scenario)
                if not scenario.name.startswith("("):
                    results.append(operation)
        return results
