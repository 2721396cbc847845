"""Deliver a bundle to a card through PC/SC, step by step, and resume after a failure.

The card's own state is the truth about progress (docs/personalization.md, section 5):
FCI tag 8B carries the last accepted secure-channel counter, so secured steps at or below
it were applied, and a failed step applied nothing. The runner stops at the first status
word a step did not expect and says how to continue; running the same bundle again
continues there.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..card.apdu import CommandAPDU, ResponseAPDU, status_word_meaning
from ..errors import UserError
from ..protocol import commands, tlv
from ..protocol.constants import Lifecycle
from ..protocol.fci import FCI, TAG_PROPRIETARY, parse_fci
from ..protocol.keys import parse_public_key
from .bundle import Bundle
from .keys import PersoKeySet, diversify
from .keystore import KeyStore, KeyStoreError
from .secure_messaging import COUNTER_LEN, MAC_LEN, deliverable, receipt, wrap

FCI_TAG_CARD_ID = 0x8A
FCI_TAG_CHANNEL = 0x8B
#: a relay without the issuer's keys stops at the attestation certificate: the issuer
#: checks the key's receipt and compiles the next bundle (`perso certify`)
AWAITING_ISSUER = "awaiting issuer"


class PersoRunError(UserError):
    """Delivery cannot start or continue; the message says why and what to do."""


class CardLink(Protocol):
    def transmit(self, command: CommandAPDU) -> ResponseAPDU: ...


@dataclass(frozen=True)
class CardState:
    """What the card says about itself: FCI plus the secure-channel data objects."""

    fci: FCI
    card_id: bytes | None
    key_version: int | None
    counter: int

    @property
    def lifecycle(self) -> Lifecycle:
        return self.fci.lifecycle


@dataclass
class StepResult:
    index: int
    action: str
    status: str  # ok, already applied, failed, awaiting issuer
    sw: str = ""
    counter: int | None = None
    millis: float = 0.0
    receipt: str = ""
    note: str = ""
    #: response data a secured step returned before its receipt (hex; public: the
    #: attestation key's 7F49), which the receipt covers
    response: str = ""

    def line(self) -> str:
        counter = f" counter {self.counter}" if self.counter is not None else ""
        sw = f" {self.sw}" if self.sw else ""
        note = f" ({self.note})" if self.note else ""
        return f"step {self.index} {self.action}:{sw} {self.status}{counter} {self.millis:.0f} ms{note}"


@dataclass
class RunReport:
    card_id: str
    script: str
    steps: list[StepResult] = field(default_factory=list)
    final_lifecycle: str = ""
    final_counter: int | None = None
    #: the applet version the card's FCI reports (the attestation certificate names it)
    applet_version: list[int] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return all(s.status in ("ok", "already applied", "kept", AWAITING_ISSUER) for s in self.steps)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def read_card_state(link: CardLink, aid: bytes) -> CardState:
    response = link.transmit(commands.select_applet(aid).apdu())
    if response.sw != 0x9000:
        raise PersoRunError(
            f"SELECT of the CardShield applet {aid.hex().upper()} returned {response.sw:04X} "
            f"({status_word_meaning(response.sw)}): is the applet installed on this card?"
        )
    fci = parse_fci(response.data)  # checks the 6F template; 8A/8B are read here
    outer = tlv.decode(response.data)[0]
    proprietary = tlv.require(outer.children(), TAG_PROPRIETARY, "FCI")
    card_id = tlv.find(proprietary, FCI_TAG_CARD_ID)
    channel = tlv.find(proprietary, FCI_TAG_CHANNEL)
    if channel is not None and len(channel) != 1 + COUNTER_LEN:
        raise PersoRunError(f"FCI tag 8B has {len(channel)} bytes, expected {1 + COUNTER_LEN}")
    return CardState(
        fci=fci,
        card_id=card_id,
        key_version=channel[0] if channel else None,
        counter=int.from_bytes(channel[1:], "big") if channel else 0,
    )


def check_card(state: CardState, bundle: Bundle) -> None:
    if state.card_id is None:
        raise PersoRunError(
            "the card reports no identity (FCI 8A): it was installed without a personalization "
            "key set (a development card); reinstall it with install tags C0 and C1"
        )
    if state.card_id != bundle.card_id:
        raise PersoRunError(
            f"this bundle is for card {bundle.card_id.hex().upper()}, the card in the reader is "
            f"{state.card_id.hex().upper()}: compile the script for this card"
        )
    if state.key_version != bundle.key_version:
        raise PersoRunError(
            f"the card has personalization key version {state.key_version}, the bundle was "
            f"compiled for version {bundle.key_version}"
        )


class Runner:
    """Delivers one bundle. `store` is optional: it is needed for the PIN of key
    generation / certificate steps and lets the runner check receipts itself."""

    def __init__(self, link: CardLink, bundle: Bundle, *, store: KeyStore | None = None,
                 progress: Callable[[str], None] = print):
        self.link = link
        self.bundle = bundle
        self.store = store
        self.progress = progress
        self.keys: PersoKeySet | None = None
        #: the attestation key this run brought back with a verified receipt, and the
        #: certificate written for it (what `--record` reports)
        self.attestation_key_do: bytes | None = None
        self.attestation_certificate: bytes | None = None
        self.counter = 0
        self.state: CardState | None = None
        if store is not None:
            try:
                self.keys = diversify(store.master_cmac(bundle.master_key_name), bundle.key_version, bundle.card_id)
            except KeyStoreError:
                self.keys = None  # a relay without the master key delivers, the issuer checks receipts

    def run(self) -> RunReport:
        state = self.state = read_card_state(self.link, self.bundle.applet_aid)
        check_card(state, self.bundle)
        report = RunReport(card_id=self.bundle.card_id.hex().upper(), script=self.bundle.script,
                           applet_version=list(state.fci.version))
        self.progress(
            f"card {report.card_id}: {state.lifecycle.name}, secure-channel counter {state.counter}, "
            f"{len(self.bundle.steps)} steps"
        )
        self.counter = state.counter
        for step in self.bundle.steps:
            if step["kind"] == "secured" and step["counter"] <= self.counter:
                result = StepResult(step["index"], step["action"], "already applied", counter=step["counter"])
            elif (step["kind"] == "attestation_certificate" and step["counter"] <= self.counter
                  and self._has_attestation_certificate()):
                # P1=05 deletes the certificate and the card accepts only one for its key:
                # a certificate present after this bundle's counters moved is this one
                result = StepResult(step["index"], step["action"], "already applied", counter=step["counter"])
            else:
                result = self._run_step(step)
                if result.status == "ok" and step["kind"] == "secured" and result.sw == "9000":
                    self.counter = step["counter"]
                elif result.status == "failed" and result.sw in ("6985", "6A88"):
                    result.note = self._explain_refusal(step, result.sw)
            report.steps.append(result)
            self.progress(result.line())
            if result.status == AWAITING_ISSUER:
                self.progress(f"stopped at step {result.index}: {result.note}")
                break
            if result.status == "failed":
                self.progress(
                    f"stopped at step {result.index}: nothing of it was applied; fix the cause and run "
                    "the same bundle again, it continues there"
                )
                break
        final = read_card_state(self.link, self.bundle.applet_aid)
        report.final_lifecycle, report.final_counter = final.lifecycle.name, final.counter
        self.progress(f"card {report.card_id}: now {final.lifecycle.name}, counter {final.counter}")
        return report

    def _explain_refusal(self, step: dict, sw: str) -> str:
        """6985: "not in PERSONALIZATION" or "counter not above the card's"; 6A88: the key
        version is not on the card, or no longer (erased at ISSUE)."""
        state = read_card_state(self.link, self.bundle.applet_aid)
        if state.lifecycle != Lifecycle.PERSONALIZATION:
            return f"the card is {state.lifecycle.name} and refuses personalization"
        if sw == "6A88":
            return "the card has no personalization key set of this version (docs/personalization.md)"
        if step.get("counter") is not None and state.counter >= step["counter"]:
            return f"counter {step['counter']} already used (the card is at {state.counter}): a replay"
        return "conditions of use not satisfied (docs/apdu.md, PERSONALIZE / ISSUE)"

    # -- one step -----------------------------------------------------------------------

    def _run_step(self, step: dict) -> StepResult:
        result = StepResult(step["index"], step["action"], "ok", counter=step.get("counter"))
        started = time.perf_counter()
        try:
            sw, data = {
                "secured": self._secured,
                "generate_key": self._generate_key,
                "certificate": self._certificate,
                "attestation_certificate": self._attestation_certificate,
            }[step["kind"]](step, result)
        except AwaitingIssuer as exc:
            result.status, result.note = AWAITING_ISSUER, str(exc)
            sw, data = None, b""
        except PersoRunError as exc:
            result.status, result.note = "failed", str(exc)
            sw, data = None, b""
        result.millis = (time.perf_counter() - started) * 1000
        if sw is not None:
            result.sw = f"{sw:04X}"
            if result.sw not in step["expect"]:
                result.status = "failed"
                result.note = result.note or f"{status_word_meaning(sw)}; expected {'/'.join(step['expect'])}"
            elif step["kind"] == "secured" and sw == 0x9000:
                self._check_receipt(step, data, result)
        return result

    def _transmit(self, command: CommandAPDU) -> ResponseAPDU:
        return self.link.transmit(command)

    def _secured(self, step: dict, result: StepResult) -> tuple[int, bytes]:
        response = self._transmit(deliverable(bytes.fromhex(step["apdu"])))
        return response.sw, response.data

    def _check_receipt(self, step: dict, data: bytes, result: StepResult) -> None:
        response, result.receipt = data[:-MAC_LEN].hex().upper(), data[-MAC_LEN:].hex().upper()
        result.response = response
        if self.keys is None:
            result.note = "receipt not checked here (no master key): the issuer checks it"
            return
        if not receipt_matches(self.keys, step, data):
            result.status = "failed"
            result.note = ("the receipt does not verify: the answer did not come from this card"
                           + (" (or its public key was altered on the way); nothing is certified"
                              if step["action"] == "attestation_key" else ""))
            return
        if step["action"] == "attestation_key":
            try:
                key = parse_public_key(data[:-MAC_LEN])
            except tlv.TLVError as exc:
                result.status, result.note = "failed", f"the card's attestation public key is malformed: {exc}"
                return
            self.attestation_key_do = data[:-MAC_LEN]
            result.note = f"attestation key confirmed by the receipt, SHA-256 {_spki_sha256(key)[:16]}"

    def _pin(self, step: dict) -> str:
        if self.store is None:
            raise PersoRunError(f"needs the PIN {step['pin_secret']}: run with --key-store")
        try:
            return self.store.secret(step["pin_secret"])
        except KeyStoreError as exc:
            raise PersoRunError(str(exc)) from None

    def _verify_pin(self, step: dict) -> int:
        response = self._transmit(commands.verify_pin(self._pin(step)).apdu())
        if response.sw != 0x9000:
            raise PersoRunError(f"VERIFY of the PIN returned {response.sw:04X} ({status_word_meaning(response.sw)})")
        return response.sw

    def _generate_key(self, step: dict, result: StepResult) -> tuple[int, bytes]:
        self._verify_pin(step)
        response = self._transmit(commands.generate_key(step["slot"]).apdu())
        if response.sw == 0x9000:
            result.note = f"public key SHA-256 {_spki_sha256(parse_public_key(response.data))[:16]}"
        return response.sw, response.data

    def _regenerate_attestation_key(self, counter: int, step: dict, result: StepResult) -> int:
        if counter > step["counter_last"]:
            raise PersoRunError("the counters reserved for the certificate are used up: compile the script again")
        plain = commands.personalize_attestation_key()
        response = self._transmit(wrap(self.keys, plain, counter).apdu())
        if response.sw != 0x9000:
            raise PersoRunError(f"regenerating the attestation key returned {response.sw:04X} "
                                f"({status_word_meaning(response.sw)})")
        self.counter = counter
        key_do, mac = response.data[:-MAC_LEN], response.data[-MAC_LEN:]
        if len(response.data) <= MAC_LEN or not hmac.compare_digest(
                mac, receipt(self.keys, plain.ins, plain.p1, plain.p2, counter, key_do)):
            raise PersoRunError("the receipt does not verify over the regenerated attestation key: "
                                "the answer did not come from this card; nothing is certified")
        self.attestation_key_do = key_do
        result.response, result.receipt = key_do.hex().upper(), mac.hex().upper()
        return counter

    def _has_attestation_certificate(self) -> bool:
        return self._transmit(commands.select_attestation_certificate().apdu()).sw == 0x9000

    def _attestation_certificate(self, step: dict, result: StepResult) -> tuple[int, bytes]:
        """Certify the attestation key this run authenticated and write the certificate in
        secured P1=06 parts, numbered from the step's reserved counters."""
        if self.keys is None:
            raise AwaitingIssuer(
                "the issuer certifies the attestation key: send the report back; the issuer runs "
                "`cardshield perso certify REPORT --bundle BUNDLE --attestation-ca DIR --output NEXT.bundle.json`")
        first = max(step["counter"], self.counter + 1)
        if self.attestation_key_do is None:
            # resumed run: the key an earlier run brought back cannot be authenticated now, so
            # a fresh one is generated (P1=05 regenerates in place) on the reserved counters
            first = self._regenerate_attestation_key(first, step, result) + 1
        from ..attestation.ca import AttestationCA
        from ..pki import CaSetupError

        try:
            ca = AttestationCA.load(Path(step["ca"]))
            certificate = ca.certify_card(self.bundle.card_id, parse_public_key(self.attestation_key_do),
                                          self.state.fci.version)
        except CaSetupError as exc:
            raise PersoRunError(f"attestation CA: {exc}") from None
        der = certificate.public_bytes(Encoding.DER)
        parts = commands.personalize_attestation_certificate(der)
        if first + len(parts) - 1 > step["counter_last"]:
            raise PersoRunError(f"the counters reserved for the certificate ({step['counter']}..{step['counter_last']}) "
                                "are used up: compile the script again")
        for number, part in enumerate(parts):
            counter = first + number
            response = self._transmit(wrap(self.keys, part, counter).apdu())
            result.counter = counter
            if response.sw != 0x9000:
                result.note = f"part {number + 1} of {len(parts)}"
                return response.sw, b""
            self.counter = counter
            if response.data != receipt(self.keys, part.ins, part.p1, part.p2, counter):
                raise PersoRunError(f"part {number + 1}: the receipt does not verify: the answer did not come from this card")
        self.attestation_certificate = der
        result.note = (f"{len(parts)} parts, counters {first}..{first + len(parts) - 1}, certificate SHA-256 "
                       f"{hashlib.sha256(der).hexdigest()[:16]}")
        return 0x9000, b""

    def _certificate(self, step: dict, result: StepResult) -> tuple[int, bytes]:
        der = bytes.fromhex(step["der"])
        cert_key = x509.load_der_x509_certificate(der).public_key()
        response = self._transmit(commands.read_public_key(step["slot"]).apdu())
        if response.sw != 0x9000:
            raise PersoRunError(
                f"READ PUBLIC KEY of slot {step['slot']} returned {response.sw:04X}: generate the key first"
            )
        card_key = parse_public_key(response.data)
        spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        if card_key.public_bytes(*spki) != cert_key.public_bytes(*spki):
            raise PersoRunError(f"the certificate is for another key than the one in slot {step['slot']}")
        self._verify_pin(step)
        response = self._transmit(commands.put_certificate(step["slot"], der).apdu())
        return response.sw, response.data


class AwaitingIssuer(PersoRunError):
    """The next step needs the issuer (a relay delivered what it could)."""


def _spki_sha256(key) -> str:
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def receipt_matches(keys: PersoKeySet, step: dict, data: bytes) -> bool:
    """A secured bundle step's response data || 8-byte receipt, the receipt checked over the
    response data (docs/personalization.md, "Secure messaging")."""
    if len(data) < MAC_LEN:
        return False
    apdu = bytes.fromhex(step["apdu"])
    response, mac = data[:-MAC_LEN], data[-MAC_LEN:]
    return hmac.compare_digest(mac, receipt(keys, apdu[1], apdu[2], apdu[3], step["counter"], response))


def check_receipts(bundle: Bundle, report: dict, keys: PersoKeySet) -> list[str]:
    """The issuer's check of a report a relay sent back: one line per secured step the
    report claims applied; a missing or wrong receipt means the card did not confirm it."""
    steps = {s["counter"]: s for s in bundle.steps if s["kind"] == "secured"}
    lines = []
    for entry in report.get("steps", []):
        step = steps.get(entry.get("counter"))
        if step is None or step["index"] != entry.get("index") or entry.get("status") != "ok":
            continue
        try:
            data = bytes.fromhex(str(entry.get("response") or "") + str(entry.get("receipt") or ""))
        except ValueError:
            data = b""
        verdict = "confirmed by the card" if receipt_matches(keys, step, data) else "NOT confirmed: receipt wrong"
        lines.append(f"step {step['index']} {step['action']} counter {step['counter']}: {verdict}")
    return lines


def save_report(report: RunReport, path: Path) -> None:
    path.write_text(report.to_json(), encoding="utf-8")
