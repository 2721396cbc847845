"""Figure 5 end to end through the HTTP API with SoftCard: a certificate that validates,
stored on the card, and every refusal of the enrollment session."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy import func, select, update

from cardshield.server.clock import utcnow
from cardshield.server.models import AuditEvent, Certificate, Challenge, Enrollment
from cardshield.server.revocation import crl_renewal_due, renew_crl
from cardshield.server.testing.flows import FlowError, Terminal, call


def _codes(ctx, outcome="refused"):
    with ctx.db.transaction() as s:
        return [r.code for r in s.execute(select(AuditEvent.code).where(
            AuditEvent.outcome == outcome).order_by(AuditEvent.id))]


def test_enrollment_issues_a_certificate_stored_on_the_card(ctx, http, tokens, make_card, bank):
    card = make_card()
    done = Terminal(http, tokens["terminal"], card, bank=bank).enroll("alice", card_label="iccid-1")
    assert done["state"] == "completed"
    der = bytes.fromhex(done["certificate_der_hex"])
    assert card.certificates[1] == der  # PUT DATA wrote it, read-back confirmed it
    cert = x509.load_der_x509_certificate(der)
    cert.verify_directly_issued_by(ctx.ca.cert)
    assert cert.public_key().public_numbers() == card.keys[1].public_key().public_numbers()
    with ctx.db.transaction() as s:
        row = s.get(Certificate, done["certificate_serial"])
        assert row.status == "active" and row.stored_at is not None


def test_pin_never_reaches_the_server(http, tokens, make_card, bank):
    card = make_card(pin="987654")
    state = Terminal(http, tokens["terminal"], card, bank=bank).start("bob")
    apdus = state["batch"]["apdus"]
    assert [a["pin_required"] for a in apdus] == [False, True]
    assert not any(a["apdu"].startswith("0020") for a in apdus)  # no VERIFY from the server
    Terminal(http, tokens["terminal"], card, pin="987654", bank=bank).post_enrollment(
        state["enrollment_id"], state["batch"])


def test_card_error_is_reported_with_its_status_word(http, tokens, make_card, bank):
    card = make_card()
    state = Terminal(http, tokens["terminal"], card, bank=bank).start("carol")
    # terminal that skipped the PIN: the card refuses GENERATE with 6982
    responses = [card.transmit(bytes.fromhex(a["apdu"])).hex() for a in state["batch"]["apdus"]]
    with pytest.raises(FlowError) as err:
        Terminal(http, tokens["terminal"], card, bank=bank).post_enrollment(
            state["enrollment_id"], state["batch"], responses)
    assert err.value.status == 422 and err.value.code == "card_error"
    assert "6982" in err.value.body["error"]["message"]
    # the batch stays pending: the terminal asks for the PIN and relays it again
    retried = Terminal(http, tokens["terminal"], card, bank=bank).post_enrollment(
        state["enrollment_id"], state["batch"])
    assert retried["state"] == "pop_sent"


def test_another_terminal_cannot_continue_the_session(ctx, http, tokens, make_card, bank):
    from cardshield.server.tokens import create_client
    intruder = create_client(ctx.db, "intruder", "terminal")
    card = make_card()
    state = Terminal(http, tokens["terminal"], card, bank=bank).start("dave")
    with pytest.raises(FlowError) as err:
        Terminal(http, intruder, card, bank=bank).post_enrollment(state["enrollment_id"], state["batch"])
    assert err.value.code == "wrong_terminal"
    # the rightful terminal still completes it
    honest = Terminal(http, tokens["terminal"], card, bank=bank)
    nxt = honest.post_enrollment(state["enrollment_id"], state["batch"])
    assert nxt["state"] == "pop_sent"


def test_stale_and_repeated_posts_are_refused(http, tokens, make_card, bank):
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("erin")
    first = term.run(state["batch"])
    nxt = term.post_enrollment(state["enrollment_id"], state["batch"], first)
    with pytest.raises(FlowError) as err:  # the same post again
        term.post_enrollment(state["enrollment_id"], state["batch"], first)
    assert err.value.code == "stale_step"
    assert term.post_enrollment(state["enrollment_id"], nxt["batch"])["state"] == "cert_sent"


def test_proof_of_possession_by_another_key_is_refused(ctx, http, tokens, make_card, key_pool, bank):
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("frank")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    real_key = card.keys[1]
    responses = term.run(state["batch"])
    card.keys[1] = key_pool[-1]  # the proof comes from a different key
    forged = term.run({"apdus": state["batch"]["apdus"][1:], "seq": 0})
    card.keys[1] = real_key
    with pytest.raises(FlowError) as err:
        term.post_enrollment(state["enrollment_id"], state["batch"], responses[:1] + forged)
    assert err.value.code == "proof_of_possession_failed"
    with ctx.db.transaction() as s:
        assert s.get(Enrollment, state["enrollment_id"]).state == "failed"
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0
    assert "proof_of_possession_failed" in _codes(ctx)


def test_expired_challenge_is_refused(ctx, http, tokens, make_card, bank):
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("gina")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    with ctx.db.transaction() as s:
        s.execute(update(Challenge).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(FlowError) as err:
        term.post_enrollment(state["enrollment_id"], state["batch"])
    assert err.value.code == "challenge_expired"


def test_expired_session_is_refused(ctx, http, tokens, make_card, bank):
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("hank")
    with ctx.db.transaction() as s:
        s.execute(update(Enrollment).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(FlowError) as err:
        term.post_enrollment(state["enrollment_id"], state["batch"])
    assert err.value.status == 410 and err.value.code == "enrollment_expired"


def test_weak_key_from_card_is_refused(ctx, http, tokens, make_card, bank):
    from cryptography.hazmat.primitives.asymmetric import rsa
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    card = make_card(key_factory=lambda: weak)
    with pytest.raises(FlowError) as err:
        Terminal(http, tokens["terminal"], card, bank=bank).enroll("ivan")
    assert err.value.code == "weak_key"
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0


def test_interrupted_enrollment_resumes_then_restart_revokes_unstored_certificate(
        ctx, http, tokens, make_card, bank):
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("judy")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    assert state["state"] == "cert_sent"  # issued, the write not yet confirmed
    # the terminal lost its connection: it fetches the pending batch again
    resumed = call(http, "GET", f"/v1/enrollments/{state['enrollment_id']}", tokens["terminal"])
    assert resumed["batch"] == state["batch"]
    pending_serial = resumed["certificate_serial"]
    # ... but the user starts over instead: the unstored certificate is revoked
    done = term.enroll("judy")
    assert done["state"] == "completed"
    with ctx.db.transaction() as s:
        old = s.get(Certificate, pending_serial)
        assert old.status == "revoked" and old.revocation_reason == "superseded"
        assert s.get(Enrollment, state["enrollment_id"]).state == "aborted"
        statuses = sorted(s.scalars(select(Certificate.status)))
    assert statuses == ["active", "revoked"]  # every issued certificate accounted for


def test_readback_mismatch_is_refused(ctx, http, tokens, make_card, bank):
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("kim")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    responses = term.run(state["batch"])
    last = bytes.fromhex(responses[-1])
    responses[-1] = (bytes([last[0] ^ 1]) + last[1:]).hex()  # a corrupted write
    with pytest.raises(FlowError) as err:
        term.post_enrollment(state["enrollment_id"], state["batch"], responses)
    assert err.value.code == "certificate_readback_mismatch"
    with ctx.db.transaction() as s:
        assert s.get(Certificate, state["certificate_serial"]).status == "revoked"


def test_crl_lists_revoked_certificate(ctx, http, tokens, make_card, bank):
    done = Terminal(http, tokens["terminal"], make_card(), bank=bank).enroll("lena")
    revoked = call(http, "POST", "/v1/admin/revocations", tokens["admin"],
                   {"user_id": "lena", "reason": "key_compromise"})
    assert revoked["revoked"] == [done["certificate_serial"]]
    response = http.get("/v1/ca/crl")
    assert response.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    assert crl.is_signature_valid(ctx.ca.cert.public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(done["certificate_serial"], 16))


def test_abandoned_enrollment_certificate_is_revoked_and_listed(ctx, http, tokens, make_card, bank):
    term = Terminal(http, tokens["terminal"], make_card(), bank=bank)
    state = term.start("mona")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    serial = state["certificate_serial"]  # issued; the terminal never comes back
    with ctx.db.transaction() as s:
        s.execute(update(Enrollment).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert crl_renewal_due(ctx)  # what every replica's CRL timer asks once a minute
    renew_crl(ctx)  # and then does
    crl = x509.load_der_x509_crl(http.get("/v1/ca/crl").content)
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    with ctx.db.transaction() as s:
        assert s.get(Certificate, serial).status == "revoked"
        assert s.get(Enrollment, state["enrollment_id"]).state == "expired"
