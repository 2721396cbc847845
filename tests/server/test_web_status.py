"""The status page's endpoint answers only for the payment ids and certificate serials the
asker already holds (random, unguessable), never by user id: nothing can be enumerated."""
from __future__ import annotations

import secrets

import pytest

from cardshield.server.testing.flows import Terminal, create_payment
from cardshield.server.tokens import create_client
from cardshield.web.routes import MERCHANT_TOKEN_ENV


@pytest.fixture
def shop(monkeypatch, tokens):
    """The pages' shop runs as the test's merchant client."""
    monkeypatch.setenv(MERCHANT_TOKEN_ENV, tokens["merchant"])
    return tokens["merchant"]


@pytest.fixture
def alice(http, tokens, make_card, shop, bank):
    """Alice enrolled a card and paid once from her browser; a second payment of hers was
    made elsewhere. Returns (certificate serial, paid id, other id)."""
    term = Terminal(http, tokens["terminal"], make_card(), bank=bank)
    serial = term.enroll("alice")["certificate_serial"]
    paid = create_payment(http, shop, "alice", amount_minor=4980, order_ref="ORD-PAID")["payment_id"]
    assert term.pay(paid)["state"] == "authorized"
    other = create_payment(http, shop, "alice", order_ref="ORD-ELSEWHERE")["payment_id"]
    return serial, paid, other


def status(http, **query):
    return http.get("/web/status", params=query)


def test_known_ids_return_their_state_and_nothing_else(http, alice):
    serial, paid, other = alice
    response = status(http, serial=serial, payment=[paid, paid])  # a repeated id is listed once
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert [(c["serial"], c["status"], c["slot"]) for c in body["certificates"]] == [(serial, "active", 1)]
    assert [(p["payment_id"], p["state"], p["amount"], p["order_ref"]) for p in body["payments"]] == [
        (paid, "authorized", "49.80 EUR", "ORD-PAID")]
    assert other not in response.text and "ORD-ELSEWHERE" not in response.text
    assert body["blocked"] is False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_listing_by_user_id_is_gone(http, alice):
    response = http.get("/web/status", params={"user_id": "alice"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    assert "user id" in response.json()["error"]["message"]
    empty = status(http)  # asking for nothing lists nothing
    assert empty.status_code == 200 and empty.json() == {"blocked": False, "certificates": [], "payments": []}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unknown_ids_reveal_nothing(http, alice):
    response = status(http, payment=secrets.token_hex(16), serial=format(secrets.randbits(127), "x"))
    assert response.status_code == 200
    assert response.json() == {"blocked": False, "certificates": [], "payments": []}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_payments_of_another_merchant_are_not_shown(ctx, http, alice):
    foreign = create_client(ctx.db, "other-shop", "merchant")
    theirs = create_payment(http, foreign, "alice", order_ref="ORD-OTHER-SHOP")["payment_id"]
    response = status(http, payment=theirs)
    assert response.status_code == 200 and response.json()["payments"] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_payments_need_the_shop_configured(http, alice, monkeypatch):
    monkeypatch.delenv(MERCHANT_TOKEN_ENV)
    response = status(http, payment=alice[1])
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert "ORD-PAID" not in response.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("query", [
    {"payment": "x" * 32},
    {"payment": "A" * 32},  # ids are issued in lowercase
    {"payment": "a" * 31},
    {"payment": "a" * 33},
    {"payment": ""},
    {"payment": "%" * 32},
    {"serial": "g1"},
    {"serial": "a" * 41},
    {"serial": "-1"},
    {"payment": [secrets.token_hex(16) for _ in range(51)]},
    {"serial": ["a" * 20] * 51},
])
def test_bad_ids_are_a_400_with_a_code(http, shop, query):
    response = status(http, **query)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
