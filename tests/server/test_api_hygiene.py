"""Bad input and bad clients get a 4xx with a machine-readable code, never a 500, and
leave nothing written; the OpenAPI description lists the API; replicas share only the DB."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cardshield.server.api import create_app
from cardshield.server.context import ServerContext
from cardshield.server.errors import ApiError
from cardshield.server.models import AuditEvent, Enrollment, Payment, User
from cardshield.server.testing.flows import Terminal, call, create_payment

GOOD_PAYMENT = {"user_id": "alice", "amount_minor": 100, "currency": "EUR", "order_ref": "o-1"}


def _rows(ctx) -> tuple[int, int, int]:
    with ctx.db.transaction() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (User, Enrollment, Payment))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("headers, status, code", [
    ({}, 401, "unauthorized"),
    ({"Authorization": "Bearer nope"}, 401, "unauthorized"),
    ({"Authorization": "Basic abc"}, 401, "unauthorized"),
])
def test_missing_or_bad_token(http, headers, status, code):
    response = http.post("/v1/payments", json=GOOD_PAYMENT, headers=headers)
    assert response.status_code == status and response.json()["error"]["code"] == code


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wrong_role_is_forbidden(http, tokens):
    response = http.post("/v1/payments", json=GOOD_PAYMENT,
                         headers={"Authorization": f"Bearer {tokens['terminal']}"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    response = http.post("/v1/enrollments", json={"user_id": "a"},
                         headers={"Authorization": f"Bearer {tokens['merchant']}"})
    assert response.status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path, body, status, code", [
    ("/v1/payments", b"{not json", 400, "malformed_json"),
    ("/v1/payments", dict(GOOD_PAYMENT, amount_minor=-1), 400, "invalid_request"),
    ("/v1/payments", dict(GOOD_PAYMENT, amount_minor=1 << 64), 400, "invalid_request"),
    # above a signed 64-bit column: refused by the schema, never a driver overflow (500)
    ("/v1/payments", dict(GOOD_PAYMENT, amount_minor=1 << 63), 400, "invalid_request"),
    ("/v1/payments", dict(GOOD_PAYMENT, currency="eur"), 400, "invalid_request"),
    ("/v1/payments", dict(GOOD_PAYMENT, order_ref="x" * 65), 400, "invalid_request"),
    ("/v1/payments", dict(GOOD_PAYMENT, order_ref="é" * 33), 400, "invalid_request"),
    ("/v1/payments", dict(GOOD_PAYMENT, order_ref="a\nb"), 400, "invalid_request"),
    ("/v1/payments", dict(GOOD_PAYMENT, extra="field"), 400, "invalid_request"),
    # the payee and the signing mode are the bank's (display name, card policy)
    ("/v1/payments", dict(GOOD_PAYMENT, payee="Shop"), 400, "invalid_request"),
    ("/v1/payments", dict(GOOD_PAYMENT, signing_mode="transaction"), 400, "invalid_request"),
    ("/v1/payments", GOOD_PAYMENT, 404, "unknown_user"),
    ("/v1/enrollments", {"user_id": "../etc"}, 400, "invalid_request"),
    ("/v1/enrollments", {"user_id": "a", "slot": 3}, 400, "invalid_request"),
    ("/v1/enrollments/" + "0" * 32 + "/responses", {"seq": 1, "responses": ["zz9000"]}, 400,
     "invalid_request"),
    ("/v1/enrollments/" + "0" * 32 + "/responses", {"seq": 1, "responses": ["900"]}, 400,
     "invalid_request"),
    ("/v1/enrollments/" + "0" * 32 + "/responses", {"seq": 1, "responses": ["9000"] * 65}, 400,
     "invalid_request"),
    ("/v1/enrollments/" + "0" * 32 + "/responses", {"seq": 1, "responses": ["9000"]}, 404,
     "not_found"),
    ("/v1/enrollments/not-an-id/responses", {"seq": 1, "responses": ["9000"]}, 404, "not_found"),
    ("/v1/payments/" + "f" * 32 + "/terminal", None, 404, "not_found"),
    ("/v1/enrollments", {"user_id": "a", "activation_code": "short"}, 400, "invalid_request"),
    ("/v1/enrollments", {"user_id": "a", "activation_code": "0000-0000-0000-000$"}, 400,
     "invalid_request"),
    ("/v1/enrollments", {"user_id": "nobody", "activation_code": "0000-0000-0000-0000"}, 404,
     "unknown_user"),
    ("/v1/admin/users", {"user_id": "../etc"}, 400, "invalid_request"),
    ("/v1/admin/users/nobody/activation-codes", {"slot": 1}, 404, "unknown_user"),
    ("/v1/admin/users/nobody/activation-codes", {"slot": 3}, 400, "invalid_request"),
    ("/v1/admin/cards", {"format": "cardshield-card-records/1", "records": []}, 400,
     "invalid_card_record"),
    ("/v1/admin/cards", {"format": "cardshield-card-records/1", "records": [{"card_id": "zz"}]},
     400, "invalid_card_record"),
    ("/v1/admin/cards", {"format": "other", "records": []}, 400, "invalid_request"),
    ("/v1/admin/cards/0102/revoke", None, 400, "invalid_request"),
    ("/v1/admin/cards/0102030405060708/revoke", None, 404, "not_found"),
])
def test_bad_input_is_a_4xx_and_writes_nothing(ctx, http, tokens, path, body, status, code):
    role = ("merchant" if path == "/v1/payments" else
            "admin" if path.startswith("/v1/admin/") else "terminal")
    before = _rows(ctx)
    headers = {"Authorization": f"Bearer {tokens[role]}", "Content-Type": "application/json"}
    if isinstance(body, bytes):
        response = http.post(path, content=body, headers=headers)
    else:
        response = http.post(path, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert _rows(ctx) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_body_size_limit(http, tokens):
    big = {"seq": 1, "responses": ["00" * 4000 + "9000"] * 20}
    response = http.post("/v1/enrollments/" + "0" * 32 + "/responses", json=big,
                         headers={"Authorization": f"Bearer {tokens['terminal']}"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_documents_the_api(http):
    spec = http.get("/openapi.json").json()
    for path in ("/v1/enrollments", "/v1/enrollments/{enrollment_id}/responses", "/v1/payments",
                 "/v1/payments/{payment_id}/terminal", "/v1/payments/{payment_id}/responses",
                 "/v1/ca/crl", "/v1/admin/revocations"):
        assert path in spec["paths"]


def test_replicas_share_only_the_database(ctx, settings, tokens, make_card, bank):
    """Each request of a flow lands on another replica (its own context and pool)."""
    other = ServerContext.create(settings)
    try:
        with TestClient(create_app(ctx)) as a, TestClient(create_app(other)) as b:
            card = make_card()
            replicas = [a, b]
            state = Terminal(a, tokens["terminal"], card, bank=bank).start("alice")
            n = 1
            while state["batch"] is not None:
                term = Terminal(replicas[n % 2], tokens["terminal"], card)
                state = term.post_enrollment(state["enrollment_id"], state["batch"])
                n += 1
            assert state["state"] == "completed"
            created = create_payment(b, tokens["merchant"], "alice")
            state = Terminal(a, tokens["terminal"], card, bank=bank).claim(created["payment_id"])
            while state["batch"] is not None:
                term = Terminal(replicas[n % 2], tokens["terminal"], card)
                state = term.post_payment(created["payment_id"], state["batch"])
                n += 1
            assert state["state"] == "authorized"
    finally:
        other.db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_are_audited_without_secrets(ctx, http, tokens, make_card, bank):
    term = Terminal(http, tokens["terminal"], make_card(pin="24680"), pin="24680", bank=bank)
    term.enroll("alice")
    with ctx.db.transaction() as s:
        details = " ".join(filter(None, s.scalars(select(AuditEvent.detail))))
        actions = set(s.scalars(select(AuditEvent.action)))
    assert {"enrollment.start", "activation_code.issue", "activation_code.use",
            "certificate.issue", "enrollment.complete"} <= actions
    assert "24680" not in details


def test_cached_token_resolves_without_the_database_and_keeps_role_checks(ctx, tokens):
    from cardshield.server.tokens import Authenticator
    auth = Authenticator(ctx.db, cache_seconds=60)
    header = f"Bearer {tokens['terminal']}"
    assert auth.cached_identity(header) is None  # first use: the database must be asked
    client_id = auth.authenticate(header, "terminal")
    assert auth.cached_identity(header) == (client_id, "terminal")
    with pytest.raises(ApiError) as err:
        auth.check_role(auth.cached_identity(header), ("merchant",))
    assert err.value.code == "forbidden"
    with pytest.raises(ApiError) as err:
        auth.cached_identity("Basic abc")
    assert err.value.code == "unauthorized"


def test_server_key_of_each_bank_key_type(ctx, http):
    """GET /v1/server-key?type=: the bank's request key a perso script loads (P1=04)."""
    from cryptography.hazmat.primitives import serialization

    from cardshield.protocol.bank_key import BankKeyType, encode_bank_public_key

    for key_type, prefix in ((BankKeyType.RSA_2048, "7f4982010981820100"), (BankKeyType.EC_P256, "7f4943864104")):
        body = http.get(f"/v1/server-key?type={key_type.value}").json()
        public = ctx.ca.request_keys[key_type].public_key()
        assert body["type"] == key_type.value and body["public_key_7f49_hex"].startswith(prefix)
        assert bytes.fromhex(body["public_key_7f49_hex"]) == encode_bank_public_key(public)
        assert serialization.load_der_public_key(bytes.fromhex(body["public_key_spki_der_hex"])) == public
    assert http.get("/v1/server-key").json()["type"] == "rsa-2048"  # what clients before EC keys read
    refused = http.get("/v1/server-key?type=ec-p384")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
