"""Enrollment attacks over the real HTTP API: bank-authorized and attested enrollment.

The attacker holds a terminal token of their own and a software key (SoftCard) that answers
the server's APDU batches exactly as docs/apdu.md describes. Before activation codes and card
attestation, `test_software_key_and_terminal_token_cannot_take_over_alice` enrolled as alice,
revoked her certificate and got the "key generated on the card" policy OID."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select, update

from cardshield.attestation.ca import AttestationCA
from cardshield.server.clock import utcnow
from cardshield.server.models import (ActivationCode, AuditEvent, Card, Certificate, RegisteredCard,
                                      User)
from cardshield.server.settings import DEFAULT_KEY_ON_CARD_POLICY_OID
from cardshield.server.testing.flows import FlowError, Terminal, call
from cardshield.server.tokens import create_client


def _certificates(ctx) -> dict[str, str]:
    with ctx.db.transaction() as s:
        return {c.serial_hex: c.status for c in s.scalars(select(Certificate))}


def _refused(action) -> FlowError:
    with pytest.raises(FlowError) as refused:
        action()
    assert 400 <= refused.value.status < 500
    return refused.value


def _policies(der_hex: str) -> list[str]:
    cert = x509.load_der_x509_certificate(bytes.fromhex(der_hex))
    return [p.policy_identifier.dotted_string
            for p in cert.extensions.get_extension_for_class(x509.CertificatePolicies).value]


@pytest.fixture
def alice(http, tokens, make_card, bank) -> dict:
    """alice enrolled with her genuine, registered card and the bank's code."""
    card = make_card()
    done = Terminal(http, tokens["terminal"], card, bank=bank).enroll("alice")
    assert done["state"] == "completed"
    assert _policies(done["certificate_der_hex"]) == [DEFAULT_KEY_ON_CARD_POLICY_OID]
    return {**done, "card": card}


@pytest.fixture
def rogue(ctx) -> str:
    return create_client(ctx.db, "rogue-terminal", "terminal")


def test_software_key_and_terminal_token_cannot_take_over_alice(ctx, http, alice, rogue,
                                                                make_card):
    attacker = Terminal(http, rogue, make_card(register=False, attestation_key=None))
    for guess in ("0000-0000-0000-0000", "AAAA-BBBB-CCCC-DDDD"):
        err = _refused(lambda: attacker.enroll("alice", code=guess))
        assert err.code in ("activation_code_not_issued", "activation_code_invalid")
    assert _refused(lambda: call(http, "POST", "/v1/enrollments", rogue,
                                 {"user_id": "alice"})).code == "invalid_request"
    assert _certificates(ctx) == {alice["certificate_serial"]: "active"}


def test_a_terminal_cannot_create_users(ctx, http, rogue, make_card):
    attacker = Terminal(http, rogue, make_card())
    assert _refused(lambda: attacker.enroll("mallory", code="0000-0000-0000-0000")).code == \
        "unknown_user"
    assert _refused(lambda: call(http, "POST", "/v1/admin/users", rogue,
                                 {"user_id": "mallory"})).code == "forbidden"
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0


def test_software_key_gets_no_certificate_even_with_a_leaked_code(ctx, http, rogue, bank,
                                                                  make_card, attestation_keys):
    """An insider leaks bob's code: without a genuine registered card, no certificate."""
    code = bank.activation_code("bob")
    plain = make_card(register=False, attestation_key=None)  # cannot attest at all
    assert _refused(lambda: Terminal(http, rogue, plain).enroll("bob", code=code)).code == \
        "attestation_required"
    code = bank.activation_code("bob")
    self_made = make_card(register=False)  # attests with a key no registered card has
    assert _refused(lambda: Terminal(http, rogue, self_made).enroll("bob", code=code)).code == \
        "card_not_registered"
    assert _certificates(ctx) == {}


def test_self_signed_attestation_chain_is_refused(ctx, http, tokens, bank, make_card, tmp_path):
    forger = AttestationCA.create(tmp_path / "forged-ca", "Test Card Issuer")  # same name
    card = make_card(register=False)
    forged = card.record(forger)
    record = {"card_id": forged.card_id_hex, "applet_version": [1, 0],
              "personalized_at": "2026-12-04T16:50:00+00:00", "script_sha256": None,
              "attestation_certificate": forged.to_json()["attestation_certificate"]}
    err = _refused(lambda: call(http, "POST", "/v1/admin/cards", tokens["admin"],
                                {"format": "cardshield-card-records/1", "records": [record]}))
    assert err.code == "attestation_untrusted"
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(RegisteredCard)) == 0
    assert _refused(lambda: Terminal(http, tokens["terminal"], card, bank=bank).enroll(
        "carol")).code == "card_not_registered"


def test_forged_statement_for_a_registered_card_is_refused(ctx, http, rogue, bank, make_card,
                                                           key_pool):
    """The attacker knows a registered card's id but not its attestation key."""
    genuine = make_card()
    forger = make_card(register=False, card_id=genuine.card_id, attestation_key=key_pool[-1])
    err = _refused(lambda: Terminal(http, rogue, forger).enroll(
        "dave", code=bank.activation_code("dave")))
    assert err.code == "attestation_signature_invalid"
    assert _certificates(ctx) == {}


def test_attestation_from_a_card_registered_to_someone_else(ctx, http, tokens, alice, bank):
    """alice's genuine card, driven by malware on another user's enrollment."""
    code = bank.activation_code("erin")
    err = _refused(lambda: Terminal(http, tokens["terminal"], alice["card"]).enroll(
        "erin", code=code))
    assert err.code == "card_bound_to_another_user"
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Certificate).where(
            Certificate.user_id != s.scalar(select(User.id).where(User.external_id == "alice")))) == 0


def test_replayed_attestation_is_refused(ctx, http, tokens, rogue, bank, make_card):
    """A genuine, unbound card's ATTEST answer, recorded by malware in one session, posted
    in another with a software key: the statement names the old challenge."""
    genuine = make_card()
    honest = Terminal(http, tokens["terminal"], genuine, bank=bank)
    state = honest.start("frank")
    state = honest.post_enrollment(state["enrollment_id"], state["batch"])
    recorded = honest.run(state["batch"])[2]  # never posted: the malware kept it

    attacker = Terminal(http, rogue, make_card(register=False, attestation_key=None))
    state = attacker.start("gina", code=bank.activation_code("gina"))
    state = attacker.post_enrollment(state["enrollment_id"], state["batch"])
    responses = attacker.run(state["batch"])
    err = _refused(lambda: attacker.post_enrollment(state["enrollment_id"], state["batch"],
                                                    responses[:2] + [recorded]))
    assert err.code == "attestation_challenge_mismatch"
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Certificate).where(
            Certificate.status != "revoked")) == 0


def test_replayed_challenge_answer_is_refused(ctx, http, tokens, bank, make_card):
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("hank")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    answers = term.run(state["batch"])
    issued = term.post_enrollment(state["enrollment_id"], state["batch"], answers)
    assert issued["state"] == "cert_sent"
    err = _refused(lambda: term.post_enrollment(state["enrollment_id"], state["batch"], answers))
    assert err.code == "stale_step"


def test_superseding_a_credential_needs_the_banks_authorization(ctx, http, tokens, alice, bank,
                                                                make_card):
    term = Terminal(http, tokens["terminal"], alice["card"], bank=bank)
    # a code issued for a first enrollment cannot replace alice's active certificate
    err = _refused(lambda: term.enroll("alice", code=bank.activation_code("alice")))
    assert err.code == "replacement_not_authorized"
    assert _certificates(ctx) == {alice["certificate_serial"]: "active"}
    # the bank authorizes a replacement (new key on her card): the old one is superseded
    done = term.enroll("alice", code=bank.activation_code("alice", replace=True))
    statuses = _certificates(ctx)
    assert statuses[alice["certificate_serial"]] == "revoked"
    assert statuses[done["certificate_serial"]] == "active"


def test_a_code_is_single_use(ctx, http, tokens, bank, make_card):
    code = bank.activation_code("ivan")
    Terminal(http, tokens["terminal"], make_card(), bank=bank).enroll("ivan", code=code)
    err = _refused(lambda: Terminal(http, tokens["terminal"], make_card()).enroll(
        "ivan", code=code))
    assert err.code == "activation_code_not_issued"


def test_wrong_code_five_times_locks_it(ctx, http, rogue, bank, make_card):
    code = bank.activation_code("judy")
    attacker = Terminal(http, rogue, make_card())
    wrong = "ZZZZ-ZZZZ-ZZZZ-ZZZZ" if not code.startswith("ZZZZ") else "0000-0000-0000-0000"
    messages = [_refused(lambda: attacker.start("judy", code=wrong)) for _ in range(5)]
    assert [m.code for m in messages] == ["activation_code_invalid"] * 5
    assert "4 tries left" in messages[0].body["error"]["message"]
    # the right code no longer works either: the bank must issue a new one
    assert _refused(lambda: attacker.start("judy", code=code)).code == "activation_code_locked"
    with ctx.db.transaction() as s:
        row = s.scalar(select(ActivationCode))
        assert row.failed_attempts == 5 and row.locked_at is not None and row.used_at is None
        details = " ".join(e.detail or "" for e in s.scalars(select(AuditEvent)))
        failures = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "activation_code.use", AuditEvent.outcome == "refused"))
    assert failures == 6
    for secret in (code, code.replace("-", ""), wrong.replace("-", "")):
        assert secret not in details
    # a new code from the bank works
    done = Terminal(http, rogue, make_card()).enroll("judy", code=bank.activation_code("judy"))
    assert done["state"] == "completed"


def test_expired_code_is_refused(ctx, http, tokens, bank, make_card):
    code = bank.activation_code("kim")
    with ctx.db.transaction() as s:
        s.execute(update(ActivationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    err = _refused(lambda: Terminal(http, tokens["terminal"], make_card()).enroll(
        "kim", code=code))
    assert err.code == "activation_code_expired" and err.status == 410


def test_code_for_another_slot_is_refused(http, tokens, bank, make_card):
    code = bank.activation_code("lena", slot=2)
    err = _refused(lambda: Terminal(http, tokens["terminal"], make_card()).enroll(
        "lena", slot=1, code=code))
    assert err.code == "activation_code_not_issued"


def test_card_policy_below_the_banks_is_refused(ctx, http, tokens, bank, make_card):
    from cardshield.protocol.constants import SlotPolicy
    relaxed = make_card(slot_policy={1: SlotPolicy.PIN_PER_SIGNATURE, 2: SlotPolicy(0)})
    err = _refused(lambda: Terminal(http, tokens["terminal"], relaxed, bank=bank).enroll("mona"))
    assert err.code == "attestation_policy_insufficient"
    assert _certificates(ctx) == {}


def test_revoked_registry_card_enrolls_no_more(ctx, http, tokens, alice, bank):
    card_id = alice["card"].card_id.hex().upper()
    out = call(http, "POST", f"/v1/admin/cards/{card_id}/revoke", tokens["admin"])
    assert out["status"] == "revoked" and out["bound_user"] == "alice"
    assert _certificates(ctx) == {alice["certificate_serial"]: "revoked"}
    err = _refused(lambda: Terminal(http, tokens["terminal"], alice["card"], bank=bank).enroll(
        "alice", replace=True))
    assert err.code == "card_revoked"


def test_attested_enrollment_records_the_evidence(ctx, alice):
    with ctx.db.transaction() as s:
        card = s.scalar(select(Card))
        registered = s.get(RegisteredCard, alice["card"].card_id.hex().upper())
        user = s.scalar(select(User).where(User.external_id == "alice"))
    assert card.attested and card.registry_card_id == registered.card_id_hex
    assert card.attested_policy == 0x03 and card.requires_server_signature
    assert card.last_counter == alice["card"].counter
    assert card.attestation.startswith(b"\x70")  # statement || 9E signature, for audit
    assert registered.bound_user_id == user.id
    cert = x509.load_der_x509_certificate(bytes.fromhex(alice["certificate_der_hex"]))
    assert cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == \
        registered.card_id_hex


def test_unattested_enrollment_when_allowed_is_marked(ctx, http, tokens, bank, make_card):
    from cardshield.server.api import create_app
    from cardshield.server.context import ServerContext
    from fastapi.testclient import TestClient
    lenient = ServerContext.create(dataclasses.replace(ctx.settings,
                                                       allow_unattested_enrollment=True))
    try:
        with TestClient(create_app(lenient)) as client:
            card = make_card(register=False, attestation_key=None)
            done = Terminal(client, tokens["terminal"], card).enroll(
                "nina", code=bank.activation_code("nina"))
    finally:
        lenient.db.dispose()
    assert _policies(done["certificate_der_hex"]) == [ctx.settings.unattested_policy_oid]
    with ctx.db.transaction() as s:
        row = s.scalar(select(Card))
        assert not row.attested and row.registry_card_id is None
