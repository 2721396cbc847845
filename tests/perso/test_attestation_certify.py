"""The issuer's certify step for relayed bundles, written as the relay's attacks: a relay
that swaps the attestation public key, or edits the report, gets nothing certified. The
card side of the secure channel is the reference model (secure_messaging.unwrap, which
the applet's SecureChannel mirrors); tests/perso/test_attestation_perso.py runs the same
flows on the virtual card."""
from __future__ import annotations

import json
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cardshield.attestation.ca import AttestationCA
from cardshield.attestation.record import load_records
from cardshield.attestation.verify import card_id_of
from cardshield.cli import main
from cardshield.perso import bundle as bundle_mod
from cardshield.perso import cli as perso_cli
from cardshield.perso import secure_messaging as sm
from cardshield.perso.certify import CertifyError, certify_report
from cardshield.perso.script import ScriptError, parse
from cardshield.protocol.constants import ATTESTATION_CERTIFICATE_FID  # noqa: F401  (EF the parts fill)
from cardshield.protocol.keys import encode_rsa_public_key

from . import vectors as v
from .instance import SECRETS, card_keys

SERVER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CARD_ATTESTATION_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RELAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

SCRIPT = """\
format: cardshield-perso/1
issuer_master_key: ISSUER_MK
key_version: 1
steps:
  - set_pin: CARD_PIN
  - set_puk: CARD_PUK
  - slot_config: {slot: 1, algorithm: RSA-2048, pin_per_signature: true, server_signed_transactions: true}
  - server_key: server.pem
  - attestation_key:
  - attestation_certificate: {ca: attestation-ca}
  - issue:
"""


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return AttestationCA.create(tmp_path_factory.mktemp("perso-att") / "attestation-ca", "Example Bank")


@pytest.fixture
def first_bundle(tmp_path, store, ca):
    (tmp_path / "server.pem").write_bytes(SERVER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "attestation-ca").symlink_to(ca.directory)
    path = tmp_path / "card.yaml"
    path.write_text(SCRIPT)
    return perso_cli.compile_file(path, v.CARD_ID, store)


def _card_answer(step: dict, key_do: bytes) -> tuple[str, str]:
    """What the card returns for the secured P1=05 step: the key and its receipt."""
    receipt = sm.receipt(card_keys(), 0xE0, 0x05, 0x00, step["counter"], response_data=key_do)
    return key_do.hex().upper(), receipt.hex().upper()


def relay_report(bundle: bundle_mod.Bundle, key_do: bytes | None = None, receipt_for: bytes | None = None) -> dict:
    """The report a relay sends back: steps up to the attestation key done, the certificate
    step awaiting the issuer. `key_do` is what the relay claims, `receipt_for` what the card
    really returned (by default the same)."""
    genuine = encode_rsa_public_key(CARD_ATTESTATION_KEY.public_key())
    steps = []
    for step in bundle.steps:
        if step["action"] == "attestation_certificate":
            steps.append({"index": step["index"], "action": step["action"], "status": "awaiting issuer"})
            break
        entry = {"index": step["index"], "action": step["action"], "status": "ok", "sw": "9000",
                 "counter": step["counter"], "response": "", "receipt": ""}
        if step["action"] == "attestation_key":
            _, entry["receipt"] = _card_answer(step, receipt_for or genuine)
            entry["response"] = (key_do or receipt_for or genuine).hex().upper()
        steps.append(entry)
    return {"card_id": v.CARD_ID.hex().upper(), "script": bundle.script, "steps": steps, "applet_version": [1, 0]}


def _unwrapped_parts(bundle: bundle_mod.Bundle) -> list[tuple[int, int, bytes]]:
    out, last = [], 0
    for step in bundle.steps:
        apdu = bytes.fromhex(step["apdu"])
        data = apdu[5:5 + apdu[4]] if apdu[4] else apdu[7:7 + int.from_bytes(apdu[5:7], "big")]
        plain = sm.unwrap(card_keys(), apdu[:4], data, last)
        last = plain.counter
        out.append((apdu[2], apdu[3], plain.data))
    return out


def test_compiled_bundle_reserves_counters_for_the_certificate(first_bundle):
    actions = [(s["action"], s["kind"]) for s in first_bundle.steps]
    assert actions[4:] == [("attestation_key", "secured"), ("attestation_certificate", "attestation_certificate"),
                           ("issue", "secured")]
    key_step, cert_step, issue = first_bundle.steps[4:]
    assert cert_step["counter"] == key_step["counter"] + 1
    assert issue["counter"] == cert_step["counter_last"] + 1 == cert_step["counter"] + 32
    assert bundle_mod.from_json(first_bundle.to_json()).steps == first_bundle.steps


def test_genuine_report_is_certified_and_the_follow_up_bundle_writes_that_key(first_bundle, ca):
    certified = certify_report(first_bundle, relay_report(first_bundle), card_keys(), ca)
    follow_up = certified.bundle
    cert_step = first_bundle.steps[5]
    parts = [s for s in follow_up.steps if s["action"] == "attestation_certificate"]
    assert [s["counter"] for s in parts] == list(range(cert_step["counter"], cert_step["counter"] + len(parts)))
    assert follow_up.steps[-1]["action"] == "issue" and follow_up.steps[-1] == first_bundle.steps[-1]
    # what the card receives once unwrapped: P1=06 parts 00, 01.., last with bit 80
    unwrapped = _unwrapped_parts(follow_up)[:-1]
    assert [p1 for p1, _, _ in unwrapped] == [0x06] * len(parts)
    assert unwrapped[0][1] == 0x00 and unwrapped[-1][1] & 0x80
    der = b"".join(data for _, _, data in unwrapped)
    cert = x509.load_der_x509_certificate(der)
    assert cert.public_key().public_numbers() == CARD_ATTESTATION_KEY.public_key().public_numbers()
    assert card_id_of(cert) == v.CARD_ID
    cert.verify_directly_issued_by(ca.certificate)
    assert certified.record.attestation_certificate_der == der and certified.record.card_id == v.CARD_ID


def test_relay_that_swaps_the_public_key_gets_nothing_certified(first_bundle, ca):
    """The relay puts its own key in the report next to the card's genuine receipt."""
    swapped = relay_report(first_bundle, key_do=encode_rsa_public_key(RELAY_KEY.public_key()),
                           receipt_for=encode_rsa_public_key(CARD_ATTESTATION_KEY.public_key()))
    with pytest.raises(CertifyError, match="receipt does not match"):
        certify_report(first_bundle, swapped, card_keys(), ca)


def test_relay_that_edits_the_report_gets_nothing_certified(first_bundle, ca):
    report = relay_report(first_bundle)
    key_entry = next(e for e in report["steps"] if e["action"] == "attestation_key")
    for field, value in (("receipt", "00" * 8), ("receipt", ""), ("response", key_entry["response"][:-2] + "00"),
                         ("status", "failed"), ("response", "zz")):
        edited = json.loads(json.dumps(report))
        next(e for e in edited["steps"] if e["action"] == "attestation_key")[field] = value
        with pytest.raises(CertifyError):
            certify_report(first_bundle, edited, card_keys(), ca)
    other_card = dict(report, card_id="0A0B0C0D0E0F1011")
    with pytest.raises(CertifyError, match="report is for card"):
        certify_report(first_bundle, other_card, card_keys(), ca)


def test_receipt_under_another_card_keys_is_refused(first_bundle, ca):
    """A receipt the relay computed itself (it has no card's MAC key; here: another card's)."""
    from cardshield.perso import keys
    other = keys.diversify(keys.software_master(v.MASTER_KEY), v.KEY_VERSION, bytes.fromhex("1112131415161718"))
    report = relay_report(first_bundle)
    entry = next(e for e in report["steps"] if e["action"] == "attestation_key")
    step = first_bundle.steps[4]
    entry["receipt"] = sm.receipt(other, 0xE0, 0x05, 0x00, step["counter"],
                                  response_data=bytes.fromhex(entry["response"])).hex().upper()
    with pytest.raises(CertifyError, match="receipt does not match"):
        certify_report(first_bundle, report, card_keys(), ca)


def test_certify_cli_writes_the_next_bundle_and_record_or_nothing(first_bundle, ca, tmp_path, monkeypatch, capsys):
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"CARDSHIELD_SECRET_{name}", value)
    bundle_path = tmp_path / "card.bundle.json"
    first_bundle.save(bundle_path)
    report_path = tmp_path / "report.json"
    swapped = relay_report(first_bundle, key_do=encode_rsa_public_key(RELAY_KEY.public_key()),
                           receipt_for=encode_rsa_public_key(CARD_ATTESTATION_KEY.public_key()))
    report_path.write_text(json.dumps(swapped))
    args = ["perso", "certify", str(report_path), "--bundle", str(bundle_path), "--attestation-ca",
            str(ca.directory), "--output", str(tmp_path / "next.bundle.json"), "--record", str(tmp_path / "cards.json")]
    assert main(args) == 1
    assert "nothing was certified" in capsys.readouterr().err
    assert not (tmp_path / "next.bundle.json").exists() and not (tmp_path / "cards.json").exists()

    report_path.write_text(json.dumps(relay_report(first_bundle)))
    assert main(args) == 0
    follow_up = bundle_mod.load(tmp_path / "next.bundle.json")
    assert follow_up.steps[-1]["action"] == "issue"
    [record] = load_records(tmp_path / "cards.json")
    assert record.card_id == v.CARD_ID


@pytest.mark.parametrize("steps, message", [
    ("  - attestation_certificate: {ca: x}\n  - attestation_key:\n", "needs an attestation_key step before it"),
    ("  - attestation_key:\n  - attestation_key:\n", "attestation_key appears more than once"),
    ("  - attestation_key: {slot: 1}\n", "attestation_key takes no arguments"),
    ("  - attestation_key:\n  - attestation_certificate: x\n", "takes {ca: DIR}"),
    ("  - attestation_key:\n  - issue:\n  - attestation_certificate: {ca: x}\n", "must come before issue"),
])
def test_script_refuses_misplaced_attestation_steps(steps, message):
    text = textwrap.dedent("""\
        format: cardshield-perso/1
        issuer_master_key: ISSUER_MK
        key_version: 1
        steps:
        """) + steps
    with pytest.raises(ScriptError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse(text)
