"""Personalization of the virtual card through the secure channel, end to end over PC/SC:
a fresh card from script to ISSUED and ready for enrollment, every refusal, tampering,
replay, resume, and no secret in any bundle, report or trace."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from cardshield.card.apdu import APDUFormatError, CommandAPDU
from cardshield.card.transport import Transport
from cardshield.perso import cli as perso_cli
from cardshield.perso import keys, runner
from cardshield.perso import secure_messaging as sm
from cardshield.perso.script import issuance_script
from cardshield.protocol import commands
from cardshield.protocol.command import Command
from cardshield.protocol.constants import CardFlags, Lifecycle, SlotPolicy
from cardshield.protocol.keys import encode_rsa_public_key, parse_public_key

from . import vectors as v
from .instance import KEYED_AID, PIN, PUK, SECRETS, card_keys

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

SERVER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

SLOT_1 = {"slot_config": {"slot": 1, "algorithm": "RSA-2048", "pin_per_signature": True}}
SLOT_2 = {"slot_config": {"slot": 2, "algorithm": "RSA-2048", "server_signed_transactions": True}}
PERSONALIZE = issuance_script(SLOT_1, {"server_key": "server.pem"}, SLOT_2)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "server.pem").write_bytes(SERVER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return tmp_path


def compile_text(workdir, store, text, name="card.yaml", **options):
    path = workdir / name
    path.write_text(textwrap.dedent(text))
    return perso_cli.compile_file(path, v.CARD_ID, store, applet_aid=KEYED_AID, **options)


def state(link) -> runner.CardState:
    return runner.read_card_state(link, KEYED_AID)


def snapshot(link):
    """What a refused command must not change: lifecycle, flags, tries, slots, counter."""
    s = state(link)
    return (s.lifecycle, s.fci.flags, s.fci.pin_tries, s.fci.puk_tries, s.fci.slots, s.counter)


def send(link, apdu: bytes):
    return link.transmit(sm.deliverable(apdu))


def secured(counter: int, plain: Command, key_set=None) -> bytes:
    return sm.apdu_bytes(sm.wrap(key_set or card_keys(), plain, counter))


def run(link, b, store, lines=None):
    return runner.Runner(link, b, store=store, progress=(lines.append if lines is not None else lambda _: None)).run()


def test_fresh_card_to_issued_then_ready_for_enrollment(perso_card, workdir, store):
    before = state(perso_card)
    assert before.card_id == v.CARD_ID and before.key_version == 1 and before.counter == 0
    assert before.lifecycle == Lifecycle.PERSONALIZATION
    assert CardFlags.PERSONALIZATION_KEYS_INSTALLED in before.fci.flags
    report = run(perso_card, compile_text(workdir, store, PERSONALIZE), store)
    assert report.succeeded, [s.line() for s in report.steps]
    assert [s.counter for s in report.steps] == [1, 2, 3, 4, 5, 6]
    # receipts were checked against K-MAC by the runner (it has the master key)
    assert all(len(bytes.fromhex(s.receipt)) == 8 for s in report.steps)
    after = state(perso_card)
    assert (after.lifecycle, after.counter) == (Lifecycle.ISSUED, 6)
    for flag in (CardFlags.PIN_SET, CardFlags.PUK_SET, CardFlags.SERVER_KEY_LOADED):
        assert flag in after.fci.flags
    assert after.fci.slots[1].policy == SlotPolicy.PIN_PER_SIGNATURE
    assert after.fci.slots[2].policy == SlotPolicy.SERVER_SIGNED_REQUESTS
    # enrollment readiness (patent flow 501-512): the PIN set through the channel works
    assert perso_card.transmit(commands.verify_pin(PIN).apdu()).sw == 0x9000
    generated = perso_card.transmit(commands.generate_key(1).apdu())
    assert generated.sw == 0x9000
    card_key = parse_public_key(generated.data)
    assert perso_card.transmit(commands.verify_pin(PIN).apdu()).sw == 0x9000
    challenge = os.urandom(32)
    proof = perso_card.transmit(commands.prove_possession(1, challenge).apdu())
    assert proof.sw == 0x9000
    card_key.verify(proof.data, b"CSPOP1" + challenge, padding.PKCS1v15(), hashes.SHA256())


def test_plain_personalization_is_refused_on_a_keyed_card(perso_card):
    before = snapshot(perso_card)
    assert perso_card.transmit(commands.personalize_pin("1234").apdu()).sw == 0x6982
    assert perso_card.transmit(commands.issue().apdu()).sw == 0x6982
    assert snapshot(perso_card) == before


def test_each_refusal_has_its_status_word_and_changes_nothing(perso_card):
    assert send(perso_card, secured(1, commands.personalize_pin(PIN))).sw == 0x9000
    before = snapshot(perso_card)
    good = secured(2, commands.personalize_puk(PUK))
    bad_mac = bytearray(good)
    bad_mac[-2] ^= 0x01  # last MAC byte (the last APDU byte is Le)
    other_version = keys.diversify(keys.software_master(v.MASTER_KEY), 2, v.CARD_ID)
    other_card = keys.diversify(keys.software_master(v.MASTER_KEY), 1, bytes.fromhex("0102030405060709"))
    cases = {
        "bad MAC": (bytes(bad_mac), 0x6988),
        "other card's keys": (secured(2, commands.personalize_puk(PUK), other_card), 0x6988),
        "wrong key version": (secured(2, commands.personalize_puk(PUK), other_version), 0x6A88),
        "replayed counter": (secured(1, commands.personalize_puk(PUK)), 0x6985),
        "truncated to 29 bytes": (good[:4] + bytes([29]) + good[5:34], 0x6700),
        "cryptogram not whole blocks": (good[:4] + bytes([len(good) - 7]) + good[5:-2], 0x6700),
    }
    for name, (apdu, expected) in cases.items():
        assert send(perso_card, apdu).sw == expected, name
        assert snapshot(perso_card) == before, name
    assert send(perso_card, good).sw == 0x9000  # the untampered command still works


def test_every_tampered_byte_is_refused_and_changes_nothing(perso_card):
    good = CommandAPDU.decode(secured(1, commands.personalize_pin(PIN)))
    before = snapshot(perso_card)
    fields = [("cla", good.cla), ("ins", good.ins), ("p1", good.p1), ("p2", good.p2)]
    for bit in (0x01, 0x80):
        for name, value in fields:
            if name == "cla" and bit == 0x01:
                continue  # CLA b1: the logical channel number, routed by the card OS (ISO 7816-4 5.4.1)
            try:
                tampered = dataclasses.replace(good, **{name: value ^ bit})
            except APDUFormatError:
                continue  # not an APDU at all (e.g. INS 6X): no reader would send it
            assert perso_card.transmit(tampered).sw != 0x9000, (name, bit)
        for i in range(len(good.data)):
            data = bytearray(good.data)
            data[i] ^= bit
            tampered = CommandAPDU(good.cla, good.ins, good.p1, good.p2, bytes(data))
            assert perso_card.transmit(tampered).sw in (0x6988, 0x6A88), (i, bit)
        assert snapshot(perso_card) == before
    assert perso_card.transmit(good).sw == 0x9000


def test_replay_and_out_of_order_counters(perso_card, workdir, store):
    b = compile_text(workdir, store, PERSONALIZE, counter=10)
    steps = [bytes.fromhex(s["apdu"]) for s in b.steps]
    assert send(perso_card, steps[0]).sw == 0x9000          # counter 10
    assert send(perso_card, steps[2]).sw == 0x9000          # 12: a gap is fine
    before = snapshot(perso_card)
    assert send(perso_card, steps[1]).sw == 0x6985          # 11 < 12: out of order
    assert send(perso_card, steps[2]).sw == 0x6985          # 12 again: replay
    assert snapshot(perso_card) == before and state(perso_card).counter == 12


def test_resume_after_a_torn_delivery(perso_card, virtual_card, workdir, store):
    b = compile_text(workdir, store, PERSONALIZE)
    for step in b.steps[:3]:
        assert send(perso_card, bytes.fromhex(step["apdu"])).sw == 0x9000
    perso_card.close()
    virtual_card.remove_card()      # the relay lost the card half way
    _wait_until(lambda: not _selectable(virtual_card.info.reader))
    virtual_card.insert_card()
    _wait_until(lambda: _selectable(virtual_card.info.reader))
    perso_card = Transport(virtual_card.info.reader)
    perso_card.connect()
    lines = []
    report = run(perso_card, b, store, lines)
    assert [s.status for s in report.steps] == ["already applied"] * 3 + ["ok"] * 3
    assert report.final_lifecycle == "ISSUED" and report.final_counter == 6
    assert "counter 3" in lines[0]
    # running it again changes nothing and says so
    again = run(perso_card, b, store)
    assert {s.status for s in again.steps} == {"already applied"}
    perso_card.close()


def test_a_failing_step_stops_the_run_and_is_reported(perso_card, workdir, store):
    # slot 2's server-signed policy before the server key is loaded: refused (6985) on every
    # card profile (an algorithm the card lacks would be refused earlier, with 6A81)
    premature = issuance_script(SLOT_1, SLOT_2, {"server_key": "server.pem"})
    report = run(perso_card, compile_text(workdir, store, premature), store)
    assert not report.succeeded
    failed = report.steps[-1]
    assert (failed.index, failed.status, failed.sw) == (4, "failed", "6985")
    assert state(perso_card).counter == 3 and report.final_lifecycle == "PERSONALIZATION"
    # the card is not half-locked: a corrected bundle continuing the counter completes it
    fixed = compile_text(workdir, store, PERSONALIZE, counter=4)
    assert run(perso_card, fixed, store).final_lifecycle == "ISSUED"


def test_issue_refused_before_pin_and_puk(perso_card):
    assert send(perso_card, secured(1, commands.issue())).sw == 0x6985
    assert state(perso_card).lifecycle == Lifecycle.PERSONALIZATION and state(perso_card).counter == 0


def test_bundle_for_another_card_is_refused(perso_card, workdir, store):
    path = workdir / "card.yaml"
    path.write_text(PERSONALIZE)
    other = perso_cli.compile_file(path, bytes.fromhex("0A0B0C0D0E0F1011"), store, applet_aid=KEYED_AID)
    with pytest.raises(runner.PersoRunError, match="this bundle is for card 0A0B0C0D0E0F1011"):
        run(perso_card, other, store)


def _selectable(reader) -> bool:
    try:
        with Transport(reader) as link:
            state(link)
        return True
    except Exception:
        return False


def _wait_until(condition, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the virtual card did not change presence"
        time.sleep(0.05)


def _issue_certificate(public_key):
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CardShield test CA")])
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "card 0102030405060708")]))
        .issuer_name(name).public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256()))


def test_key_generation_and_preset_certificate_with_no_secret_anywhere(perso_card, virtual_card, workdir, store):
    trace = []
    perso_card.close()
    perso_card = Transport(virtual_card.info.reader, trace=True, trace_sink=trace.append)
    perso_card.connect()
    text = issuance_script(SLOT_1, {"server_key": "server.pem"}, SLOT_2, after_issue=({"generate_key": {"slot": 1}},))
    first = compile_text(workdir, store, text)
    lines = []
    report = run(perso_card, first, store, lines)
    assert report.succeeded and report.steps[-1].action == "generate_key"
    card_key = parse_public_key(perso_card.transmit(commands.read_public_key(1).apdu()).data)
    cert = _issue_certificate(card_key)
    (workdir / "card-cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    second = compile_text(workdir, store, """\
        format: cardshield-perso/1
        issuer_master_key: ISSUER_MK
        key_version: 1
        steps:
          - certificate: {slot: 1, file: card-cert.der, pin: CARD_PIN}
        """, name="cert.yaml")
    assert run(perso_card, second, store, lines).succeeded
    assert state(perso_card).fci.slots[1].has_certificate
    # a certificate for another key is refused before anything is written
    (workdir / "wrong.der").write_bytes(_issue_certificate(SERVER_KEY.public_key()).public_bytes(
        serialization.Encoding.DER))
    wrong = compile_text(workdir, store, (workdir / "cert.yaml").read_text().replace("card-cert.der", "wrong.der"),
                         name="wrong.yaml")
    refused = run(perso_card, wrong, store, lines)
    assert refused.steps[0].status == "failed" and "another key" in refused.steps[0].note
    card_keys_hex = (card_keys().enc.hex(), card_keys().mac.hex())
    logs = [virtual_card.card_log.read_text(errors="replace"), virtual_card.pcscd_log.read_text(errors="replace")]
    haystack = "\n".join(trace + lines + logs) + first.to_json() + second.to_json() + report.to_json()
    haystack = haystack.lower()
    for secret in (PIN, PUK, PIN.encode().hex(), PUK.encode().hex(), v.MASTER_KEY.hex(), *card_keys_hex):
        assert secret.lower() not in haystack
    assert any("masked" in line for line in trace)  # VERIFY went through, masked


def test_cli_compiles_and_runs(perso_card, virtual_card, workdir):
    script = workdir / "card.yaml"
    script.write_text(PERSONALIZE)
    env = {**os.environ, **virtual_card.info.env(), **{f"CARDSHIELD_SECRET_{k}": s for k, s in SECRETS.items()}}
    bundle_path = workdir / "card.bundle.json"
    subprocess.run([sys.executable, "-m", "cardshield", "perso", "compile", str(script),
                    "--card-id", v.CARD_ID.hex(), "--applet-aid", KEYED_AID.hex(), "--scp80-tar", "435301",
                    "-o", str(bundle_path)],
                   env=env, check=True, capture_output=True, text=True)
    assert json.loads(bundle_path.read_text())["scp80"]["tar"] == "435301"
    perso_card.close()
    done = subprocess.run([sys.executable, "-m", "cardshield", "perso", "run", str(bundle_path),
                           "--reader", virtual_card.info.reader, "--report", str(workdir / "report.json")],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "now ISSUED, counter 6" in done.stdout
    report = json.loads((workdir / "report.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["ok"] * 6
    # the issuer checks the receipts of a report a relay brings back; a forged one fails
    check = [sys.executable, "-m", "cardshield", "perso", "receipts", str(workdir / "report.json"),
             "--bundle", str(bundle_path)]
    checked = subprocess.run(check, env=env, capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.count("confirmed by the card") == 6
    report["steps"][2]["receipt"] = "00" * 8
    (workdir / "report.json").write_text(json.dumps(report))
    forged = subprocess.run(check, env=env, capture_output=True, text=True)
    assert forged.returncode == 1 and "step 3 slot_config counter 3: NOT confirmed" in forged.stdout
    for secret in (PIN, PUK, v.MASTER_KEY.hex()):
        assert secret.lower() not in (done.stdout + done.stderr).lower()


def test_secured_command_travels_chained_or_extended(perso_card):
    """The RSA-2048 server key makes a 318-byte secured command: as one extended APDU and
    as an ISO chain (CLA 94 then 84), MACed as 84 either way."""
    key = commands.personalize_server_key(encode_rsa_public_key(SERVER_KEY.public_key()))
    first = sm.wrap(card_keys(), key, 1).apdu()
    if perso_card.protocol_name == "T0":
        # a T=0 card takes short APDUs only: a forced extended APDU is refused before the
        # wire, and the transport's own framing (a chain) delivers the same command
        with pytest.raises(APDUFormatError, match="T=0"):
            perso_card.transmit(dataclasses.replace(first, extended=True))
        assert perso_card.transmit(first).sw == 0x9000
    else:
        assert perso_card.transmit(dataclasses.replace(first, extended=True)).sw == 0x9000
    second = sm.wrap(card_keys(), key, 2).apdu()
    pieces = second.chain()
    assert [p.cla for p in pieces] == [0x94, 0x84]
    for piece in pieces[:-1]:
        assert perso_card.exchange(piece).sw == 0x9000
    # Le 00 on the last piece: the receipt at once (T=1), or announced by 6108 and fetched
    # with GET RESPONSE (T=0, ISO 7816-4 5.3.4), which transmit() does
    response = perso_card.transmit(pieces[-1])
    assert response.sw == 0x9000 and len(response.data) == 8
    assert state(perso_card).counter == 2


def test_run_script_locally_then_again_on_the_issued_card(perso_card, virtual_card, workdir, monkeypatch, capsys):
    from cardshield.cli import main

    for name, value in SECRETS.items():
        monkeypatch.setenv(f"CARDSHIELD_SECRET_{name}", value)
    script = workdir / "card.yaml"
    script.write_text(PERSONALIZE)
    argv = ["perso", "run", str(script), "--reader", virtual_card.info.reader, "--applet-aid", KEYED_AID.hex()]
    assert main([*argv, "--short-apdus"]) == 0  # the server key as a chain on every card
    assert "now ISSUED, counter 6" in capsys.readouterr().out
    assert main(argv) == 1  # compiled afresh with counter 7: the issued card refuses it
    out = capsys.readouterr().out
    # the key set was erased at ISSUE: the key version is gone (6A88), and the tool says why
    assert "step 1 set_pin: 6A88 failed counter 7" in out and "the card is ISSUED" in out


def test_card_reset_inside_a_chained_secured_command_applies_nothing(perso_card):
    key = commands.personalize_server_key(encode_rsa_public_key(SERVER_KEY.public_key()))
    pieces = sm.wrap(card_keys(), key, 1).apdu().chain()
    before = snapshot(perso_card)
    assert perso_card.exchange(pieces[0]).sw == 0x9000   # first half of the chain accepted
    perso_card.reconnect("reset")                          # torn: the chain never completes
    assert snapshot(perso_card) == before
    assert CardFlags.SERVER_KEY_LOADED not in state(perso_card).fci.flags
    for piece in pieces[:-1]:                              # the same command, whole, still works:
        assert perso_card.exchange(piece).sw == 0x9000     # its counter was never consumed
    assert perso_card.transmit(pieces[-1]).sw == 0x9000    # receipt via GET RESPONSE on T=0
    assert CardFlags.SERVER_KEY_LOADED in state(perso_card).fci.flags and state(perso_card).counter == 1


def _deliver_traced(reader, b, store, **transport_options):
    """Run bundle `b` through a transport of its own; return the report and the APDU trace."""
    lines: list[str] = []
    link = Transport(reader, trace=True, trace_sink=lines.append, **transport_options)
    link.connect()
    try:
        return run(link, b, store), lines
    finally:
        link.close("reset")


def _server_key_framing(lines) -> list[str]:
    """The trace lines of the server key's secured command (84/94 E0 04): its framing."""
    return [line for line in lines if line[2:4] in ("84", "94") and line[5:11] == "E0 04 "]


def test_the_bundle_is_framed_for_the_card_it_reaches(perso_card, virtual_card, workdir, store):
    """A bundle stores each secured command once; the runner frames it for the card: one
    extended APDU where the protocol and the ATR allow it, an ISO chain of short APDUs
    (94 ... then 84 ..., the receipt through 61 08 / GET RESPONSE) on T=0 or on request.
    No PIN, PUK or key reaches the trace either way."""
    b = compile_text(workdir, store, PERSONALIZE)
    perso_card.close()
    report, lines = _deliver_traced(virtual_card.info.reader, b, store)
    assert report.succeeded and report.final_lifecycle == "ISSUED"
    framing = _server_key_framing(lines)
    if perso_card.protocol_name == "T0":
        assert [line[2:4] for line in framing] == ["94", "84"] and "(extended)" not in "".join(lines)
        assert any(line.startswith("> 00 C0 00 00") for line in lines)  # the receipt fetched
    else:
        assert len(framing) == 1 and framing[0].endswith("(extended)")
    for secret in (PIN, PUK, v.MASTER_KEY.hex()):
        assert secret.lower() not in "\n".join(lines).lower()


def test_short_apdus_on_request_personalize_any_card(perso_card, virtual_card, workdir, store):
    """`perso run --short-apdus` (Transport extended_length=False): the same bundle as
    chains of short APDUs, for a reader or relay without extended length."""
    b = compile_text(workdir, store, PERSONALIZE)
    perso_card.close()
    report, lines = _deliver_traced(virtual_card.info.reader, b, store, extended_length=False)
    assert report.succeeded and report.final_lifecycle == "ISSUED"
    assert [line[2:4] for line in _server_key_framing(lines)] == ["94", "84"]
    assert "(extended)" not in "".join(lines)
