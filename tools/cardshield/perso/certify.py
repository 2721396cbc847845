"""The issuer's step between two relayed bundles: certify the card's attestation key.

A relay delivers the first bundle up to its `attestation_certificate` step and sends back
the run report, which holds the attestation public key (7F49) and the receipt the card
computed over it. The relay could have swapped the key or edited the report; the receipt,
an AES-CMAC under the card's personalization MAC key, is what the relay cannot forge. Only
a key whose receipt verifies is certified. The follow-up bundle carries the certificate in
secured PERSONALIZE P1=06 parts, on the counters the first bundle reserved, then the
steps that followed (ISSUE...). docs/personalization.md, "Attestation".
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from ..attestation.ca import AttestationCA
from ..attestation.record import CardRecord
from ..errors import UserError
from ..protocol import commands, tlv
from ..protocol.keys import parse_public_key
from .bundle import Bundle
from .keys import PersoKeySet
from .runner import receipt_matches
from .secure_messaging import apdu_bytes, wrap


class CertifyError(UserError):
    """The report cannot be certified; nothing was certified. The message says why."""


@dataclass(frozen=True)
class Certified:
    bundle: Bundle  # the follow-up bundle: certificate parts, then the remaining steps
    record: CardRecord  # the card's record for the server's registry


def _step(bundle: Bundle, action: str) -> dict[str, Any]:
    found = [s for s in bundle.steps if s["action"] == action]
    if not found:
        raise CertifyError(f"the bundle has no {action} step: nothing to certify")
    return found[0]


def _confirmed_key(bundle: Bundle, report: dict, keys: PersoKeySet) -> bytes:
    """The 7F49 public key of the report's attestation_key step, if its receipt verifies."""
    if report.get("card_id") != bundle.card_id.hex().upper():
        raise CertifyError(f"the report is for card {report.get('card_id')}, the bundle for "
                           f"{bundle.card_id.hex().upper()}")
    key_step = _step(bundle, "attestation_key")
    entries = [e for e in report.get("steps", []) if isinstance(e, dict) and e.get("index") == key_step["index"]]
    if not entries or entries[0].get("status") != "ok":
        raise CertifyError(f"the report does not show step {key_step['index']} (attestation_key) done in this "
                           "delivery; compile the script again (perso compile --counter above the card's counter), "
                           "deliver it and send back its report")
    try:
        key_do = bytes.fromhex(str(entries[0].get("response", "")))
        data = key_do + bytes.fromhex(str(entries[0].get("receipt", "")))
    except ValueError:
        raise CertifyError("the report's attestation key or receipt is not hexadecimal") from None
    if not receipt_matches(keys, key_step, data):
        raise CertifyError("the receipt does not match the attestation key in the report: the key or the report "
                           "was altered after the card answered; nothing was certified")
    return key_do


def certify_report(bundle: Bundle, report: dict, keys: PersoKeySet, ca: AttestationCA,
                   now: _dt.datetime | None = None) -> Certified:
    """The follow-up bundle for a relayed first bundle (module docstring)."""
    key_do = _confirmed_key(bundle, report, keys)
    try:
        public_key = parse_public_key(key_do)
    except tlv.TLVError as exc:
        raise CertifyError(f"the card's attestation key is malformed: {exc}") from None
    step = _step(bundle, "attestation_certificate")
    version = report.get("applet_version")
    if (not isinstance(version, list) or len(version) != 2
            or not all(isinstance(v, int) and 0 <= v <= 255 for v in version)):
        raise CertifyError("the report has no applet_version [major, minor] (a report of `perso run --report`)")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    der = ca.certify_card(bundle.card_id, public_key, (version[0], version[1]), now).public_bytes(Encoding.DER)
    parts = commands.personalize_attestation_certificate(der)
    if step["counter"] + len(parts) - 1 > step["counter_last"]:
        raise CertifyError(f"the certificate needs {len(parts)} parts, the bundle reserved "
                           f"{step['counter_last'] - step['counter'] + 1} counters")
    steps = [{"index": step["index"], "action": "attestation_certificate", "part": number + 1,
              "expect": ["9000"], "kind": "secured", "counter": step["counter"] + number,
              "apdu": apdu_bytes(wrap(keys, part, step["counter"] + number)).hex().upper()}
             for number, part in enumerate(parts)]
    steps += [s for s in bundle.steps if s["index"] > step["index"]]
    follow_up = Bundle(
        card_id=bundle.card_id, key_version=bundle.key_version, master_key_name=bundle.master_key_name,
        applet_aid=bundle.applet_aid, script=bundle.script, script_sha256=bundle.script_sha256,
        created=now.isoformat(timespec="seconds"), steps=steps)
    record = CardRecord(bundle.card_id, der, (version[0], version[1]), now, bundle.script_sha256)
    return Certified(follow_up, record)
