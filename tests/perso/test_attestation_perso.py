"""Personalization with card attestation, end to end over PC/SC on the keyed virtual card:
the attestation key comes back under the receipt MAC, the issuer certifies exactly that key,
the certificate is read back from EF C1 0A and verifies with `openssl verify` against the
attestation CA, and the statement ATTEST signs after ISSUE verifies with
verify_attestation. Written as the relay's attacks: a relay that swaps the returned public
key gets nothing certified, locally or through `perso certify`."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cardshield.attestation.ca import AttestationCA
from cardshield.attestation.record import load_records
from cardshield.attestation.verify import verify_attestation
from cardshield.card.apdu import ResponseAPDU
from cardshield.card.client import CardShield
from cardshield.perso import cli as perso_cli
from cardshield.perso import runner
from cardshield.perso.certify import CertifyError, certify_report
from cardshield.perso.script import issuance_script
from cardshield.protocol import commands, tlv
from cardshield.protocol.attestation import attest_command

from . import vectors as v
from .instance import KEYED_AID, PIN, SECRETS, card_keys

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

SERVER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SCRIPT = issuance_script(
    {"server_key": "server.pem"},
    {"slot_config": {"slot": 1, "algorithm": "RSA-2048", "pin_per_signature": True,
                     "server_signed_transactions": True}},
    {"attestation_key": None}, {"attestation_certificate": {"ca": "attestation-ca"}})


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return AttestationCA.create(tmp_path_factory.mktemp("perso-e2e") / "attestation-ca", "Example Bank")


@pytest.fixture
def workdir(tmp_path, ca):
    (tmp_path / "server.pem").write_bytes(SERVER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "attestation-ca").symlink_to(ca.directory)
    (tmp_path / "card.yaml").write_text(SCRIPT)
    return tmp_path


class KeySwappingRelay:
    """A relay between issuer and card that replaces the modulus the card returns for
    PERSONALIZE P1=05 (its own key in, the card's receipt kept), and records the wire."""

    def __init__(self, link):
        self.link = link
        self.sent: list[bytes] = []

    def transmit(self, command):
        self.sent.append(command.encode())
        response = self.link.transmit(command)
        if command.ins == 0xE0 and command.p1 == 0x05 and response.sw == 0x9000:
            data = bytearray(response.data)
            data[20] ^= 0x01  # a byte of the modulus (7F49 82 01 09 81 82 01 00 ...)
            return ResponseAPDU(bytes(data), response.sw)
        return response

    def __getattr__(self, name):
        return getattr(self.link, name)


def _attestation_certificate(link) -> bytes | None:
    card = CardShield(link, aid=KEYED_AID)
    card.select()
    return card.read_attestation_certificate()


def _openssl_verify(ca: AttestationCA, der: bytes, folder) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl") or pytest.skip("openssl not installed")
    leaf = folder / "card-attestation.pem"
    from cryptography import x509
    leaf.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return subprocess.run([openssl, "verify", "-x509_strict", "-CAfile", str(AttestationCA.certificate_path(ca.directory)),
                           str(leaf)], capture_output=True, text=True, timeout=60)


def _attest_and_verify(link, ca: AttestationCA, der: bytes):
    """After ISSUE: a slot-1 key, ATTEST over a fresh challenge, verified as the server does."""
    from cryptography import x509
    card = CardShield(link, aid=KEYED_AID)
    card.select()
    card.verify_pin(PIN)
    card.generate_key(1)
    key_do = card.transmit(commands.read_public_key(1)).data
    challenge = os.urandom(32)
    answer = card.transmit(attest_command(1, challenge))
    assert answer.sw == 0x9000
    return verify_attestation(answer.data, card_certificate=x509.load_der_x509_certificate(der),
                              trust_roots=[ca.certificate], challenge=challenge, public_key_do=key_do, slot=1,
                              now=dt.datetime.now(dt.timezone.utc))


def test_local_run_certifies_the_card_key_and_the_statement_verifies(perso_card, virtual_card, workdir, ca,
                                                                     monkeypatch, capsys):
    from cardshield.cli import main

    for name, value in SECRETS.items():
        monkeypatch.setenv(f"CARDSHIELD_SECRET_{name}", value)
    records = workdir / "cards.json"
    argv = ["perso", "run", str(workdir / "card.yaml"), "--reader", virtual_card.info.reader,
            "--applet-aid", KEYED_AID.hex(), "--record", str(records), "--report", str(workdir / "report.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "attestation key confirmed by the receipt" in out and "now ISSUED" in out
    [record] = load_records(records)
    assert record.card_id == v.CARD_ID
    der = _attestation_certificate(perso_card)
    assert der == record.attestation_certificate_der
    verified = _openssl_verify(ca, der, workdir)
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified.stdout + verified.stderr
    attested = _attest_and_verify(perso_card, ca, der)
    assert attested.statement.card_id == v.CARD_ID and attested.statement.policy == 0x03
    # the issuer's check of the card from the CLI: the same chain, a fresh statement
    check = ["attestation-ca", "check-card", "--dir", str(ca.directory), "--reader", virtual_card.info.reader,
             "--applet-aid", KEYED_AID.hex(), "--attest", "1", "--out", str(workdir / "read-back.pem")]
    assert main(check) == 0
    assert "statement verified: slot 1, algorithm 01, policy 03" in capsys.readouterr().out
    other_ca = AttestationCA.create(workdir / "other-ca", "Example Bank")
    assert main(check[:2] + ["--dir", str(other_ca.directory)] + check[4:]) == 1
    assert "attestation_untrusted" in capsys.readouterr().err


def test_relay_swapping_the_key_on_a_local_run_gets_nothing_certified(perso_card, workdir, store):
    relay = KeySwappingRelay(perso_card)
    delivered = perso_cli.compile_file(workdir / "card.yaml", v.CARD_ID, store, applet_aid=KEYED_AID)
    runs = runner.Runner(relay, delivered, store=store, progress=lambda _: None)
    report = runs.run()
    failed = [s for s in report.steps if s.status == "failed"]
    assert [s.action for s in failed] == ["attestation_key"] and "receipt does not verify" in failed[0].note
    assert runs.attestation_certificate is None and report.final_lifecycle == "PERSONALIZATION"
    assert not any(apdu[1:3] == b"\xE0\x06" for apdu in relay.sent)  # no certificate part was sent
    assert _attestation_certificate(perso_card) is None


def _relay_run(link, bundle) -> dict:
    """A relay without the issuer's keys delivers and returns the report as JSON."""
    report = runner.Runner(link, bundle, store=None, progress=lambda _: None).run()
    return json.loads(report.to_json())


def test_relayed_bundles_certify_then_issue(perso_card, workdir, store, ca):
    first = perso_cli.compile_file(workdir / "card.yaml", v.CARD_ID, store, applet_aid=KEYED_AID)
    report = _relay_run(perso_card, first)
    assert [s["status"] for s in report["steps"]][-1] == runner.AWAITING_ISSUER
    assert runner.read_card_state(perso_card, KEYED_AID).lifecycle.name == "PERSONALIZATION"
    certified = certify_report(first, report, card_keys(), ca)
    second = _relay_run(perso_card, certified.bundle)
    assert all(s["status"] == "ok" for s in second["steps"]) and second["final_lifecycle"] == "ISSUED"
    lines = runner.check_receipts(certified.bundle, second, card_keys())
    assert lines and all("confirmed by the card" in line for line in lines)
    der = _attestation_certificate(perso_card)
    assert der == certified.record.attestation_certificate_der
    assert _attest_and_verify(perso_card, ca, der).statement.card_id == v.CARD_ID


def test_relay_swapping_the_key_in_a_relayed_run_gets_nothing_certified(perso_card, workdir, store, ca):
    first = perso_cli.compile_file(workdir / "card.yaml", v.CARD_ID, store, applet_aid=KEYED_AID)
    report = _relay_run(KeySwappingRelay(perso_card), first)
    assert report["steps"][-1]["status"] == runner.AWAITING_ISSUER  # the relay saw nothing wrong
    with pytest.raises(CertifyError, match="nothing was certified"):
        certify_report(first, report, card_keys(), ca)


def test_interrupted_certificate_write_resumes_on_the_reserved_counters(perso_card, workdir, store, ca):
    """The card is pulled after the first certificate part. The same bundle run again cannot
    trust the key the interrupted run brought back, so it has the card generate a fresh one
    under a receipt, certifies that, writes the certificate whole and issues the card."""
    delivered = perso_cli.compile_file(workdir / "card.yaml", v.CARD_ID, store, applet_aid=KEYED_AID)

    class PulledAfterFirstPart:
        def __init__(self, link):
            self.link, self.parts = link, 0

        def transmit(self, command):
            if command.ins == 0xE0 and command.p1 == 0x06:
                self.parts += 1
                if self.parts == 2:
                    self.link.reconnect("unpower")
                    return ResponseAPDU(b"", 0x6F00)
            return self.link.transmit(command)

    first = runner.Runner(PulledAfterFirstPart(perso_card), delivered, store=store, progress=lambda _: None).run()
    assert not first.succeeded and first.final_lifecycle == "PERSONALIZATION"
    old_key = first.steps[4].response
    assert _attestation_certificate(perso_card) is None
    runs = runner.Runner(perso_card, delivered, store=store, progress=lambda _: None)
    again = runs.run()
    assert again.succeeded and again.final_lifecycle == "ISSUED", again
    assert [s.status for s in again.steps[:5]] == ["already applied"] * 5
    assert again.steps[5].response and again.steps[5].response != old_key
    der = _attestation_certificate(perso_card)
    assert der == runs.attestation_certificate
    assert _attest_and_verify(perso_card, ca, der).statement.card_id == v.CARD_ID


def test_record_needs_an_attestation_certificate_on_the_card(perso_card, virtual_card, workdir, monkeypatch, capsys):
    from cardshield.cli import main

    for name, value in SECRETS.items():
        monkeypatch.setenv(f"CARDSHIELD_SECRET_{name}", value)
    (workdir / "plain.yaml").write_text(issuance_script({"server_key": "server.pem"}))
    argv = ["perso", "run", str(workdir / "plain.yaml"), "--reader", virtual_card.info.reader,
            "--applet-aid", KEYED_AID.hex(), "--record", str(workdir / "cards.json")]
    assert main(argv) == 1
    assert "has no attestation certificate" in capsys.readouterr().err
    assert not (workdir / "cards.json").exists()
