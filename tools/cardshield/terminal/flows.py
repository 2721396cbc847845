"""The two flows of the patent, driven from the terminal: certificate enrollment
(figure 5, steps 501-512) and payment signature (figure 6, steps 601-608).

The server decides every card command; this module only carries batches between the
server API and the relay and reports each patent step as it happens (Progress events,
with timings and APDU counts) to whoever watches: the command line, the demo, the page.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from cardshield.card.apdu import CommandAPDU
from cardshield.protocol.fci import parse_certificate_fcp
from cardshield.protocol.tlv import TLVError

from .relay import Relay, RelayResult
from .server_client import ServerClient, ServerRefused

# Per server batch step: the patent steps it covers, in order, as
# (when, number, text). "received": the batch arrived; "relayed": the card answered;
# "posted": the server accepted the answers.
PATENT_STEPS: dict[str, list[tuple[str, str, str]]] = {
    "generate_key": [
        ("received", "502", "server sends the key-pair generation request (SELECT, GENERATE ASYMMETRIC KEY PAIR)"),
        ("relayed", "503", "terminal passes the request through to the card"),
        ("relayed", "504", "card generates the RSA key pair on chip and keeps the private key"),
        ("relayed", "505", "card returns its status and the new public key"),
        ("posted", "506", "terminal uploads the card's answers; the server checks the key's quality"),
    ],
    "prove_possession": [
        ("received", "507", "server requests the public key, a signature over a one-time challenge and the "
                            "card's attestation of the key"),
        ("relayed", "508", "terminal passes READ PUBLIC KEY, PROVE POSSESSION and ATTEST to the card"),
        ("relayed", "509", "card returns its public key, the signed challenge and its signed attestation statement"),
        ("posted", "510", "terminal uploads them; the server verifies the proof and the card's attestation "
                          "(registered card, chain to the issuer's attestation CA) and issues the certificate"),
    ],
    "store_certificate": [
        ("received", "511", "server sends the certificate (PUT DATA) and asks for a read-back"),
        ("posted", "512", "terminal stores the certificate in the card; the read-back matches: certificate active"),
    ],
    # One batch for the whole payment (three requests: create, claim, post): the server
    # sends 601 and 605 together and checks 604 and 608 in one transaction.
    "authorize": [
        ("received", "601", "server asks for the card's certificate (by reference: SELECT of the certificate EF, "
                            "whose FCP carries its SHA-256)"),
        ("received", "605", "server sends the signing command in the same batch: amount, currency, payee, order "
                            "and a fresh nonce, with the bank's signature (8E) when the card requires it"),
        ("relayed", "602", "terminal passes the certificate selection to the card"),
        ("relayed", "603", "card returns its certificate reference (SHA-256 of the stored certificate)"),
        ("relayed", "606", "terminal shows the payment, the card holder approves with the PIN, the signing "
                           "command goes to the card"),
        ("relayed", "607", "card returns its signature and signature counter"),
        ("posted", "604", "terminal uploads the answers; the server matches the reference to the user's "
                          "registered certificate: valid, not revoked, the user's"),
        ("posted", "608", "the server verifies the signature with that certificate's key and authorizes the "
                          "payment (counter and nonce, once)"),
    ],
}


# Which relayed steps take the terminal's time (the card holder reading and typing the PIN
# included) and the card's time; by default the first and the second relayed step.
TIMED_STEPS: dict[str, tuple[str, str]] = {"authorize": ("606", "607")}


@dataclass(frozen=True)
class Progress:
    step: str  # patent step number, or "error" / "done"
    text: str
    seconds: float = 0.0  # time spent since the previous event
    relayed: int = 0  # APDUs from the server sent to the card in this batch
    local: int = 0  # APDUs of the terminal (PIN VERIFY, PIN status)
    card_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"step": self.step, "text": self.text, "seconds": round(self.seconds, 3), "relayed": self.relayed,
                "local": self.local, "card_seconds": round(self.card_seconds, 3)}


class FlowFailed(Exception):
    """The flow stopped; `code` is the server's refusal code when the server refused."""

    def __init__(self, message: str, code: str | None = None, state: dict | None = None):
        super().__init__(message)
        self.code, self.state = code, state


@dataclass
class FlowReport:
    state: dict
    relayed: int = 0
    local: int = 0
    seconds: float = 0.0
    events: list[Progress] = field(default_factory=list)
    # What the terminal itself saw, for checks that do not trust the server: the
    # certificate reference the card returned (603: SHA-256 of its stored certificate) and
    # the signed payment (606-607).
    certificate_reference: bytes | None = None
    signed_command_data: bytes | None = None
    signature_response: bytes | None = None

    def collect(self, batch: dict, result: RelayResult) -> None:
        commands = [bytes.fromhex(item["apdu"]) for item in batch["apdus"]][:len(result.responses)]
        answers = [bytes.fromhex(response)[:-2] for response in result.responses]
        for command, answer in zip(commands, answers):
            if command[1:4] == bytes([0xA4, 0x02, 0x04]) and answer:  # SELECT EF answering its FCP
                try:
                    self.certificate_reference = parse_certificate_fcp(answer).sha256
                except (TLVError, ValueError):
                    pass  # the server refuses it; the report keeps None
        signing = [(CommandAPDU.decode(command).data, answer) for command, answer in zip(commands, answers)
                   if command[1] == 0x54]
        if signing:
            self.signed_command_data = b"".join(data for data, _answer in signing)
            self.signature_response = signing[-1][1]


class FlowRunner:
    def __init__(self, server: ServerClient, relay: Relay, on_progress: Callable[[Progress], None] = lambda p: None):
        self.server, self.relay, self.on_progress = server, relay, on_progress
        self._mark = time.perf_counter()
        self.report = FlowReport({})

    def _emit(self, step: str, text: str, result: RelayResult | None = None, seconds: float | None = None) -> None:
        now = time.perf_counter()
        event = Progress(step, text, now - self._mark if seconds is None else seconds, result.relayed if result else 0,
                         result.local if result else 0, result.card_seconds if result else 0.0)
        self._mark = now
        self.report.events.append(event)
        self.on_progress(event)

    def _steps(self, batch_step: str, when: str, result: RelayResult | None = None) -> None:
        steps = [(number, text) for moment, number, text in PATENT_STEPS.get(batch_step, []) if moment == when]
        if when == "relayed" and result is not None and steps:
            elapsed = time.perf_counter() - self._mark
            card = min(result.card_seconds, elapsed)
            numbers = [number for number, _text in steps]
            terminal_step, card_step = TIMED_STEPS.get(batch_step, (numbers[0], numbers[1 % len(numbers)]))
            for number, text in steps:
                seconds = (elapsed - card if number == terminal_step else 0.0) + (card if number == card_step else 0.0)
                self._emit(number, text, result if number == card_step else None, seconds)
            return
        for number, text in steps:
            self._emit(number, text)

    def _drive(self, state: dict, post: Callable[[int, list[str]], dict]) -> dict:
        started = time.perf_counter()
        try:
            while state.get("batch"):
                batch = state["batch"]
                self._steps(batch["step"], "received")
                result = self.relay.run(batch)
                self.report.relayed += result.relayed
                self.report.local += result.local
                self.report.collect(batch, result)
                self._steps(batch["step"], "relayed", result)
                state = self._post(post, batch["seq"], result.responses)
                self._steps(batch["step"], "posted")
        finally:
            self.relay.forget()
            self.report.seconds = time.perf_counter() - started
        self.report.state = state
        return state

    @staticmethod
    def _post(post: Callable[[int, list[str]], dict], seq: int, responses: list[str]) -> dict:
        try:
            return post(seq, responses)
        except ServerRefused as refusal:
            raise FlowFailed(refusal.message, refusal.code) from None

    # -- figure 5 -----------------------------------------------------------------------
    def enroll(self, user_id: str, activation_code: str, slot: int = 1, card_label: str = "card") -> dict:
        self._emit("501", f"terminal applies to the server for a certificate for {user_id!r} (slot {slot}) "
                          "with the bank's activation code")
        try:
            state = self.server.start_enrollment(user_id, activation_code, slot, card_label)
        except ServerRefused as refusal:
            raise FlowFailed(refusal.message, refusal.code) from None
        enrollment_id = state["enrollment_id"]
        state = self._drive(state, lambda seq, responses: self.server.post_enrollment(enrollment_id, seq, responses))
        if state.get("state") != "completed":
            raise FlowFailed(f"the enrollment ended {state.get('state')}", state.get("failure_code"), state)
        return state

    # -- figure 6 -----------------------------------------------------------------------
    def pay(self, payment_id: str) -> dict:
        try:
            state = self.server.claim_payment(payment_id)
        except ServerRefused as refusal:
            raise FlowFailed(refusal.message, refusal.code) from None
        if state.get("state") == "created" or (state.get("batch") is None and state.get("state") != "authorized"):
            raise FlowFailed(f"the payment is {state.get('state')}: nothing to sign", state.get("refusal_code"), state)
        state = self._drive(state, lambda seq, responses: self.server.post_payment(payment_id, seq, responses))
        if state.get("state") != "authorized":
            raise FlowFailed(f"the payment ended {state.get('state')}", state.get("refusal_code"), state)
        return state
