"""Both flows end to end against the real applet on the virtual card (jcardsim behind
pcscd + vpcd), through the Python card client's transport: the server's batches go to the
card byte for byte; only the PIN is handled locally, as a terminal does.

The card is personalized as an issuer does (`perso run` over the secure channel on the
keyed applet instance): PIN, PUK, the server's request-signing key, slot 01 requiring PIN
per signature and server-signed requests (tag 8E: the applet itself checks the server),
an attestation key certified by the test attestation CA, ISSUE. Its personalization record
is imported into the server's card registry, and enrollment verifies the card's real ATTEST.
The terminal side maps the server's SELECT of the applet to the keyed instance's AID (the
session's default instance is a development card, which cannot get an attestation key)."""
from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import func, select

from cryptography.hazmat.primitives import serialization

from cardshield.attestation.record import load_records
from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.perso.script import issuance_script
from cardshield.protocol import commands
from cardshield.protocol.bank_key import BankKeyType
from cardshield.protocol.constants import APPLET_AID
from cardshield.server.registry import import_records
from cardshield.server.models import Card, Certificate, Payment
from cardshield.server.testing.flows import FlowError, Terminal, create_payment

pytestmark = [pytest.mark.card, pytest.mark.virtual_only, pytest.mark.slow]



class CardOverPcsc:
    """The terminal's side of the card: relay raw APDUs, verify the PIN locally."""

    def __init__(self, shield: CardShield, aid: bytes = APPLET_AID):
        self.shield = shield
        self.select = commands.select_applet(APPLET_AID).short()
        self.select_instance = commands.select_applet(aid).short()

    @property
    def pin_verified(self) -> bool:
        return self.shield.pin_tries_left() is None

    def verify(self, pin: str) -> None:
        self.shield.verify_pin(pin)

    def transmit(self, apdu: bytes) -> bytes:
        if apdu == self.select:
            apdu = self.select_instance
        return self.shield.transport.transmit(CommandAPDU.decode(apdu)).encode()


def _personalize_with_attestation(transport, reader: str, ctx, attestation_ca, folder,
                                  monkeypatch, bank_key_type: BankKeyType = BankKeyType.RSA_2048) -> Path:
    """`perso run` with the attestation steps; returns the card records file."""
    from cardshield.cli import main
    from cardshield.perso.runner import read_card_state
    from perso.instance import KEYED_AID, SECRETS

    try:
        read_card_state(transport, KEYED_AID)
    except Exception as exc:  # the applet is not built: nothing to personalize
        pytest.skip(f"no keyed CardShield instance on the virtual card: {exc}")
    (folder / "server.pem").write_bytes(ctx.ca.request_keys[bank_key_type].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (folder / "card.yaml").write_text(issuance_script(
        {"server_key": {"file": "server.pem", "type": bank_key_type.value}},
        {"slot_config": {"slot": 1, "algorithm": "RSA-2048", "pin_per_signature": True,
                         "server_signed_transactions": True}},
        {"attestation_key": None},
        {"attestation_certificate": {"ca": str(attestation_ca.directory)}}))
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"CARDSHIELD_SECRET_{name}", value)
    records = folder / "cards.json"
    assert main(["perso", "run", str(folder / "card.yaml"), "--reader", reader,
                 "--applet-aid", KEYED_AID.hex(), "--record", str(records),
                 "--report", str(folder / "report.json")]) == 0
    return records


@pytest.fixture(params=[BankKeyType.EC_P256, BankKeyType.RSA_2048], ids=lambda t: f"bank-{t.value}")
def bank_key_type(request) -> BankKeyType:
    """The bank key the card holds: EC P-256 (cards with EC) or RSA-2048 (cards without)."""
    return request.param


@pytest.fixture
def applet_card(virtual_card, transport, ctx, attestation_ca, tmp_path, monkeypatch, bank_key_type):
    from perso.instance import KEYED_AID, PIN as KEYED_PIN
    virtual_card.pristine()
    transport.reconnect("reset")
    records = _personalize_with_attestation(transport, virtual_card.info.reader, ctx,
                                            attestation_ca, tmp_path, monkeypatch, bank_key_type)
    [record] = load_records(records)
    import_records(ctx, [record])
    card = CardOverPcsc(CardShield(transport, aid=KEYED_AID), aid=KEYED_AID)
    card.pin, card.card_id = KEYED_PIN, record.card_id_hex
    yield card
    virtual_card.pristine()  # leave a fresh card for the tests after this one
    transport.reconnect("reset")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_enroll_and_pay_with_the_applet(ctx, http, tokens, applet_card, bank, bank_key_type):
    term = Terminal(http, tokens["terminal"], applet_card, pin=applet_card.pin, bank=bank)
    done = term.enroll("alice", card_label="vcard-1")
    assert done["state"] == "completed"
    with ctx.db.transaction() as s:  # the applet's own ATTEST was verified
        row = s.scalar(select(Card))
        assert row.attested and row.attested_policy == 0x03
        assert row.registry_card_id == applet_card.card_id
    der = bytes.fromhex(done["certificate_der_hex"])
    assert applet_card.shield.read_certificate(1) == der  # stored in the card's EF C1 01
    cert = x509.load_der_x509_certificate(der)
    cert.verify_directly_issued_by(ctx.ca.cert)
    on_card_key = applet_card.shield.read_public_key(1)
    assert cert.public_key().public_numbers() == on_card_key.public_numbers()

    first = term.pay(create_payment(http, tokens["merchant"], "alice", amount_minor=2599)["payment_id"])
    second = term.pay(create_payment(http, tokens["merchant"], "alice", order_ref="o-2")["payment_id"])
    assert first["state"] == second["state"] == "authorized"
    assert second["card_counter"] > first["card_counter"]
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.requires_server_signature)) is True
        assert s.scalar(select(Card.last_counter)) == second["card_counter"]
        # the server signs 8E with the bank key type the card holds
        assert s.scalar(select(Card.bank_key_algorithm)) == bank_key_type.algorithm

    # a relay that rewrites the payee: the applet checks the server signature (8E) over
    # the fields and refuses with 6982 before signing anything
    created = create_payment(http, tokens["merchant"], "alice", order_ref="o-3")
    state = term.claim(created["payment_id"])  # one batch: SELECT, SELECT EF (reference), SIGN
    signing = [a for a in state["batch"]["apdus"] if a["name"].startswith("SIGN TRANSACTION")]
    # an EC 8E (64 bytes) keeps SIGN TRANSACTION in one short APDU; RSA's needs a chain
    assert len(signing) == (1 if bank_key_type is BankKeyType.EC_P256 else 2)
    payee = created["payee"].encode()
    tampered = [dict(a, apdu=a["apdu"].replace(payee.hex().upper(), (b"X" * len(payee)).hex().upper()))
                for a in state["batch"]["apdus"]]
    assert tampered != state["batch"]["apdus"]
    with pytest.raises(FlowError) as err:
        term.post_payment(created["payment_id"], state["batch"], term.run(dict(state["batch"], apdus=tampered)))
    assert err.value.code == "card_refused_signature" and "6982" in err.value.body["error"]["message"]
    with ctx.db.transaction() as s:
        assert s.get(Payment, created["payment_id"]).state == "sign_requested"
    # a card refusal leaves the batch pending while the nonce is valid: the honest relay retries
    third = term.post_payment(created["payment_id"], state["batch"])
    assert third["state"] == "authorized" and third["card_counter"] > second["card_counter"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_applets_attestation_binds_the_card_to_one_user(ctx, http, tokens, applet_card,
                                                            bank):
    """Malware on a terminal drives a genuine card: an ATTEST answer it recorded in one
    session is refused in another, and once alice enrolled with the card, its real
    attestation is refused for anyone else."""
    term = Terminal(http, tokens["terminal"], applet_card, pin=applet_card.pin, bank=bank)
    state = term.start("bob")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    recorded = term.run(state["batch"])  # the card's genuine answers, kept by the malware
    state = term.start("dave")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    fresh = term.run(state["batch"])
    with pytest.raises(FlowError) as err:
        term.post_enrollment(state["enrollment_id"], state["batch"], fresh[:2] + recorded[2:])
    assert err.value.code == "attestation_challenge_mismatch"
    assert term.enroll("alice")["state"] == "completed"  # the card is alice's now
    with pytest.raises(FlowError) as err:
        term.enroll("carol")
    assert err.value.code == "card_bound_to_another_user"
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Certificate).where(
            Certificate.status == "active")) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_card_without_attestation_gets_no_certificate(ctx, http, tokens, virtual_card, transport,
                                                       bank):
    """The applet as a development card (personalized without the issuer's secure channel,
    so without an attestation key): its ATTEST answers 6A88 and the server issues nothing."""
    from cardshield.protocol.constants import Algorithm, SlotPolicy
    virtual_card.pristine()
    transport.reconnect("reset")
    try:
        shield = CardShield(transport)
        shield.personalize_development_card("2580", "13572468", slots={
            1: (Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE)})
        term = Terminal(http, tokens["terminal"], CardOverPcsc(shield), pin="2580", bank=bank)
        with pytest.raises(FlowError) as err:
            term.enroll("mallory")
        assert err.value.code == "attestation_required"
        with ctx.db.transaction() as s:
            assert s.scalar(select(func.count()).select_from(Certificate)) == 0
    finally:
        virtual_card.pristine()
        transport.reconnect("reset")
