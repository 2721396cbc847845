"""`cardshield demo` (`./cardshield demo`): the whole system on a fresh machine, on the
virtual card, step by step.

  build        the applet and the virtual card host
  card         a private pcscd + vpcd + virtual card holding the package only
  issuer       the issuer's attestation CA (cardshield.attestation), trusted by the server
  server       the authentication server (CA, SQLite) in its own process
  install      GlobalPlatform: the applet instance with its personalization key set,
               inside a C-DECRYPTION secure channel (cardshield.gp)
  personalize  a secured personalization script: PIN, PUK, slot 1 policy (PIN per
               signature, bank-signed requests), the bank's request key (EC P-256 where the
               card has EC: a payment of under 600 bytes; else RSA-2048), the card's
               attestation key (authenticated by the channel's receipt) certified by the
               attestation CA, ISSUE (cardshield.perso); the card's record for the registry
  bank         imports the card record into the card registry, creates the user and issues
               a one-time activation code (`cardshield server cards import / user add / user code`)
  501-512      certificate application through the relay (patent figure 5) with that code;
               the server verifies the card's attestation before issuing
  601-608      payment signature through the relay (patent figure 6)
  verify       the payment signature checked without the server: the certificate the card
               returned chains to the CA (openssl verify), the signature verifies over the
               exact fields shown to the card holder (openssl dgst and `cryptography`), and the
               card's attestation certificate (read from EF C1 0A) chains to the attestation
               CA (openssl verify)

The demo PIN comes from CARDSHIELD_DEMO_PIN or is generated; it is never printed. With
--browser the same deployment serves the pages and the agent for a person to click
through (the PIN is then the one in CARDSHIELD_DEMO_PIN). Any failure exits non-zero;
every process started is stopped on the way out.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cardshield.console import info, step
from cardshield.protocol.bank_key import BankKeyType, bank_key_type_for
from cardshield.errors import UserError

PIN_ENV = "CARDSHIELD_DEMO_PIN"
DEMO_USER = "demo-user"
ATTESTATION_CA_DIR = "attestation-ca"  # next to the script, as the script names it


def personalization_steps(bank_key_type: BankKeyType) -> tuple[dict, ...]:
    """The personalization script's steps between set_puk and issue (cardshield.perso.script),
    with the bank's request key of `bank_key_type` in server.pem."""
    return (
        {"server_key": {"file": "server.pem", "type": bank_key_type.value}},
        {"slot_config": {"slot": 1, "algorithm": "RSA-2048", "pin_per_signature": True,
                         "server_signed_transactions": True}},
        {"slot_config": {"slot": 2, "algorithm": "RSA-2048"}},
        {"attestation_key": None},
        {"attestation_certificate": {"ca": ATTESTATION_CA_DIR}},
    )



def personalize_card(transport, directory: Path, card_id: bytes, store,
                     request_key_pem: Callable[[str], bytes], progress=None, *,
                     bank_key_type: BankKeyType | None = None,
                     steps: Callable[[BankKeyType], tuple[dict, ...]] = personalization_steps) -> Path:
    """The issuer's secured personalization (`steps`, secrets from `store`) of the card
    instance at the default AID: the bank's request key of `bank_key_type`, by default the
    type the card can hold (EC P-256 where it has EC, else RSA-2048), whose PEM
    `request_key_pem(type)` gives (e.g. LocalServer.request_key_pem), and the attestation
    CA (`directory`/attestation-ca) as the script names them, the attestation key certified
    by that CA, ISSUE. Returns the card records file (`directory`/cards.json) for the
    server's card registry."""
    from cardshield.card.client import CardShield
    from cardshield.perso.cli import compile_file, write_record
    from cardshield.perso.runner import Runner
    from cardshield.perso.script import issuance_script

    if bank_key_type is None:
        bank_key_type = bank_key_type_for(CardShield(transport).select().algorithms)
    if progress:
        progress(f"bank key: {bank_key_type.value} (the card's algorithms; 8E of "
                 f"{'64' if bank_key_type is BankKeyType.EC_P256 else '256'} bytes per payment)")
    (directory / "server.pem").write_bytes(request_key_pem(bank_key_type.value))
    script = directory / "card.yaml"
    script.write_text(issuance_script(*steps(bank_key_type)))
    bundle = compile_file(script, card_id, store)
    started = time.monotonic()
    report = Runner(transport, bundle, store=store, progress=progress or (lambda line: None)).run()
    if not report.succeeded:
        raise UserError("personalization failed (see the steps above)")
    if progress:
        progress(f"personalized: {len(bundle.steps)} secured steps, {time.monotonic() - started:.2f} s")
    records = directory / "cards.json"
    if write_record(transport, bundle, report, records) != 0:
        raise UserError("the card has no attestation certificate after personalization")
    return records

def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build, start the virtual card, install, personalize, enroll, pay")
    parser.add_argument("--browser", action="store_true",
                        help="after setting up, serve the pages and the agent for a person (needs "
                             f"{PIN_ENV}); Ctrl-C ends it")
    parser.set_defaults(func=_run)


def demo_pin() -> str:
    pin = os.environ.get(PIN_ENV, "")
    if pin:
        if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
            raise UserError(f"{PIN_ENV} must be 4-12 digits")
        return pin
    return "".join(secrets.choice("0123456789") for _ in range(6))


@dataclass
class Demo:
    directory: Path
    pin: str = field(repr=False)
    puk: str = field(default_factory=lambda: "".join(secrets.choice("0123456789") for _ in range(8)), repr=False)
    master_key: bytes = field(default_factory=lambda: secrets.token_bytes(16), repr=False)
    card_id: bytes = field(default_factory=lambda: secrets.token_bytes(8))
    agent_port: int = 0
    stack: object = None
    server: object = None
    attestation_ca: object = None
    attestation_certificate: bytes = b""  # read back from the card after personalization
    activation_code: str = field(default="", repr=False)
    started: float = field(default_factory=time.monotonic)

    def headline(self, text: str) -> None:
        print(f"\n== {text}  [{time.monotonic() - self.started:.1f} s]", flush=True)

    # -- setup --------------------------------------------------------------------------
    def start_server(self) -> threading.Thread:
        """The server's first start (CA keys, migrations) overlaps with the card's."""
        from cardshield.terminal.localserver import LocalServer

        from cardshield.attestation.ca import AttestationCA

        with step("creating the issuer's attestation CA (RSA-3072, its own key)"):
            self.attestation_ca = AttestationCA.create(self.directory / ATTESTATION_CA_DIR, "CardShield Demo Bank")
        extra = {"CARDSHIELD_AGENT_URL": f"ws://127.0.0.1:{self.agent_port}/ws"} if self.agent_port else {}
        self.server = LocalServer(self.directory / "server", extra_env=extra,
                                  attestation_cas=[AttestationCA.certificate_path(self.attestation_ca.directory)])
        failure: list[BaseException] = []

        def start():
            try:
                self.server.start()
            except BaseException as error:  # reported by join_server
                failure.append(error)

        thread = threading.Thread(target=start, name="cardshield-demo-server")
        thread.failure = failure
        thread.start()
        return thread

    def start_card(self) -> None:
        from dataclasses import replace

        from cardshield.sim.applets import default_applets
        from cardshield.sim.stack import VirtualCardStack

        with step("starting the private virtual card (pcscd + vpcd + jcardsim, load files only)"):
            self.stack = VirtualCardStack(self.directory / "card",
                                          applets=[replace(a, instance_aid=b"") for a in default_applets()])
            self.stack.start()
        info(f"reader {self.stack.info.reader!r}")

    def install_and_personalize(self) -> None:
        from cardshield.card.transport import Transport
        from cardshield.console import warn
        from cardshield.gp.project import install_project_applet
        from cardshield.perso import keys as perso_keys
        from cardshield.perso.keystore import MappingKeyStore
        from cardshield.attestation.record import load_records

        key_set = perso_keys.diversify(perso_keys.software_master(self.master_key), 1, self.card_id)
        with Transport.open(self.stack.info.reader) as transport:
            self.headline("install: GlobalPlatform INSTALL [for load], LOAD, INSTALL [for install] (SCP, C-MAC + C-ENC)")
            result = install_project_applet(transport, applet_data=perso_keys.install_parameters(key_set, self.card_id),
                                            security_level="enc", force=False, progress=info, warn=warn)
            print(f"  installed {result.instance_aid.hex().upper()}: {result.load_file_bytes} bytes in "
                  f"{result.load_blocks} LOAD blocks, {result.apdus} APDUs, {result.seconds:.2f} s", flush=True)

            self.headline(f"personalize: secured script for card {self.card_id.hex().upper()} (cardshield.perso)")
            store = MappingKeyStore({"ISSUER_MK": self.master_key.hex(), "CARD_PIN": self.pin, "CARD_PUK": self.puk},
                                    "the demo's generated secrets", "the demo generates {name}")
            records = personalize_card(transport, self.directory, self.card_id, store, self.server.request_key_pem,
                                       progress=lambda line: print(f"  {line}", flush=True))
            self.attestation_certificate = load_records(records)[0].attestation_certificate_der
        self.bank(records)

    def bank(self, records: Path) -> None:
        """What the bank does before the customer enrolls; the code reaches the customer
        out of band (here: the demo's scripted card holder)."""
        self.headline("bank: register the card, create the user, issue a one-time activation code")
        for line in self.server.import_cards(records).splitlines():
            print(f"  $ cardshield server cards import cards.json\n    {line}", flush=True)
        print(f"  $ cardshield server user add {DEMO_USER}\n    {self.server.add_user(DEMO_USER)}", flush=True)
        self.activation_code = self.server.activation_code(DEMO_USER)
        print(f"  $ cardshield server user code {DEMO_USER}\n    (a one-time code, handed to the card holder "
              "out of band; not printed here)", flush=True)

    # -- the patent's flows ---------------------------------------------------------------
    def run_flow(self, kind: str, subject: str):
        from cardshield.terminal.cli import print_progress
        from cardshield.terminal.flows import FlowFailed
        from cardshield.terminal.server_client import ServerClient
        from cardshield.terminal.session import run_flow
        from cardshield.terminal.ui import ScriptedInterface

        def shown(request) -> None:
            if request.payment:
                print(f"        terminal shows: {request.payment.summary()}"
                      f"{' (request signed by the bank)' if request.payment.server_signed else ''}; "
                      "the card holder approves and enters the PIN", flush=True)
            elif request.pin_needed:
                print(f"        terminal asks the card holder for the PIN to {request.action}", flush=True)

        client = ServerClient(self.server.url, self.server.terminal_token)
        try:
            runner = run_flow(kind, subject, server=client, ui=ScriptedInterface([self.pin], on_request=shown),
                              reader=self.stack.info.reader, on_progress=print_progress,
                              activation_code=self.activation_code if kind == "enroll" else None)
        except FlowFailed as failure:
            raise UserError(f"{kind} failed: {failure}") from None
        report = runner.report
        print(f"  {kind}: {report.relayed} APDUs relayed + {report.local} local (PIN), "
              f"{report.seconds:.2f} s", flush=True)
        return report

    def show_attestation(self, report) -> None:
        """What the server verified before issuing: the registry card, its attestation CA."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        certificate = x509.load_der_x509_certificate(bytes.fromhex(report.state["certificate_der_hex"]))
        card_id = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
        card = self.server.admin_request("GET", f"/v1/admin/cards/{card_id}")
        if card["bound_user"] != DEMO_USER:
            raise UserError(f"card {card_id} is not bound to {DEMO_USER} after enrollment")
        print(f"  attestation verified (card {card_id}, chain to {card['attestation_ca']}); "
              f"certificate {certificate.serial_number:x} names the card and carries the "
              f"'key generated on the card' policy", flush=True)

    def verify_payment(self, report, payment: dict) -> None:
        """Check the payment without trusting the server: the certificate read from the card
        matches the reference the card returned (603) and chains to the CA; the signature
        (607) verifies over the fields the terminal showed (606)."""
        import hashlib

        from cardshield.card.client import CardShield
        from cardshield.card.transport import Transport
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from cardshield.protocol.transaction import parse_sign_transaction_response, signed_transaction_data
        from cardshield.terminal.display import transaction_fields

        self.headline("verify the payment signature independently of the server")
        ca = x509.load_der_x509_certificate(self.server.get("/v1/ca/certificate"))
        with Transport.open(self.stack.info.reader) as transport:  # read outside the payment
            shield = CardShield(transport)
            shield.select()
            der = shield.read_certificate(1)
        if der is None or hashlib.sha256(der).digest() != report.certificate_reference:
            raise UserError("the card's certificate does not match the reference it gave in the payment")
        print(f"  certificate reference (603): SHA-256 {report.certificate_reference.hex()[:16]}... = the "
              f"card's certificate ({len(der)} bytes, read once more for this check only)", flush=True)
        certificate = x509.load_der_x509_certificate(der)
        transaction, _signed_by_bank = transaction_fields(report.signed_command_data)
        signed = parse_sign_transaction_response(report.signature_response)
        message = signed_transaction_data(transaction.tlvs(), signed.counter)
        if (transaction.amount, transaction.payee, transaction.order_ref) != (
                payment["amount_minor"], payment["payee"], payment["order_ref"]):
            raise UserError("the signed fields differ from the merchant's order")
        out = self.directory / "verify"
        out.mkdir()
        (out / "ca.pem").write_bytes(ca.public_bytes(Encoding.PEM))
        (out / "card.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
        (out / "card-key.pem").write_bytes(certificate.public_key().public_bytes(Encoding.PEM,
                                                                                 PublicFormat.SubjectPublicKeyInfo))
        (out / "signed.bin").write_bytes(message)
        (out / "signature.bin").write_bytes(signed.signature)
        attestation_certificate = x509.load_der_x509_certificate(self.attestation_certificate)
        (out / "attestation-ca.pem").write_bytes(self.attestation_ca.certificate.public_bytes(Encoding.PEM))
        (out / "card-attestation.pem").write_bytes(attestation_certificate.public_bytes(Encoding.PEM))
        openssl = shutil.which("openssl")
        if openssl:
            checks = [[openssl, "verify", "-CAfile", "ca.pem", "card.pem"],
                      [openssl, "dgst", "-sha256", "-verify", "card-key.pem", "-signature", "signature.bin",
                       "signed.bin"],
                      [openssl, "verify", "-x509_strict", "-CAfile", "attestation-ca.pem", "card-attestation.pem"]]
            for command in checks:
                result = subprocess.run(command, cwd=out, capture_output=True, text=True)
                print(f"  $ {' '.join(Path(c).name if c == openssl else c for c in command)}\n    "
                      f"{(result.stdout + result.stderr).strip()}", flush=True)
                if result.returncode != 0:
                    raise UserError(f"openssl refused: {' '.join(command[1:3])}")
        certificate.verify_directly_issued_by(ca)
        attestation_certificate.verify_directly_issued_by(self.attestation_ca.certificate)
        certificate.public_key().verify(signed.signature, message, padding.PKCS1v15(), hashes.SHA256())
        subject = certificate.subject.rfc4514_string()
        print(f"  cryptography: certificate {certificate.serial_number:x} ({subject}) issued by "
              f"{ca.subject.rfc4514_string()}; SHA256withRSA signature over CSTX1 || 81..85 || counter "
              f"{signed.counter} verifies: {transaction.amount / 100:.2f} {transaction.currency} to "
              f"{transaction.payee!r}, order {transaction.order_ref}", flush=True)

    # -- --browser --------------------------------------------------------------------------
    def serve_pages(self) -> None:
        from cardshield.terminal.agent import AgentConfig, AgentServer, default_origins
        from cardshield.terminal.server_client import ServerClient

        agent = AgentServer(AgentConfig(ServerClient(self.server.url, self.server.terminal_token),
                                        default_origins(self.server.url), reader=self.stack.info.reader,
                                        port=self.agent_port)).start()
        try:
            self.headline("the pages are ready for a person")
            code = self.server.activation_code(DEMO_USER, replace=True)
            print(f"  enrollment: {self.server.url}/enroll   (user id {DEMO_USER}, activation code {code}: "
                  "single use, may replace the certificate enrolled above)\n"
                  f"  checkout:   {self.server.url}/checkout\n"
                  f"  status:     {self.server.url}/status   (what this browser enrolled and paid)\n"
                  f"  The card terminal's PIN window opens from the pages (http://127.0.0.1:{agent.port}/).\n"
                  f"  The card's PIN is the one in {PIN_ENV}. Ctrl-C ends the demo.", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping", flush=True)
        finally:
            agent.stop()

    def stop(self) -> None:
        for part in (self.server, self.stack):
            if part is not None:
                try:
                    part.stop()
                except Exception as error:  # keep stopping the rest
                    info(f"while stopping: {error}")


def _run(args) -> int:
    from cardshield.build.pipeline import build
    from cardshield.terminal.localserver import free_loopback_port

    if args.browser and not os.environ.get(PIN_ENV):
        raise UserError(f"--browser needs the PIN a person will type: set {PIN_ENV} (4-12 digits)")
    pin = demo_pin()
    build()
    with tempfile.TemporaryDirectory(prefix="cs-demo-") as directory:
        demo = Demo(Path(directory), pin, agent_port=free_loopback_port() if args.browser else 0)
        try:
            demo.headline("start: authentication server and virtual card")
            server_start = demo.start_server()
            demo.start_card()
            with step("waiting for the authentication server (CA keys, database)"):
                server_start.join()
            if server_start.failure:
                raise server_start.failure[0]
            info(f"authentication server on {demo.server.url}")
            demo.install_and_personalize()

            demo.headline(f"figure 5: certificate application for {DEMO_USER!r} with the bank's activation code")
            demo.show_attestation(demo.run_flow("enroll", DEMO_USER))

            demo.headline("figure 6: payment signature")
            payment = demo.server.create_payment(DEMO_USER, 4250, "EUR", "DEMO-0001")
            print(f"  merchant created payment {payment['payment_id']}: 42.50 EUR to 'Example Shop', "
                  "order DEMO-0001", flush=True)
            report = demo.run_flow("pay", payment["payment_id"])
            demo.verify_payment(report, payment)
            demo.headline("done: enrolled, paid, signature verified")
            if args.browser:
                demo.serve_pages()
        finally:
            demo.stop()
    return 0
