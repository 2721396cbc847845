"""The demo shop's server side (cardshield.web): an order is a payment written like every
other write (on SQLite through the writer thread's group commit), and the status page
reads a payment's state as the API does (an overdue open payment reads as expired)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from cardshield.server.clock import utcnow
from cardshield.server.models import Payment
from cardshield.server.testing.flows import Terminal, call
from cardshield.web.routes import MERCHANT_TOKEN_ENV


@pytest.fixture
def enrolled(http, tokens, make_card, bank, monkeypatch):
    """Alice has an active payment certificate; the shop runs as the test's merchant."""
    monkeypatch.setenv(MERCHANT_TOKEN_ENV, tokens["merchant"])
    Terminal(http, tokens["terminal"], make_card(), bank=bank).enroll("alice")
    return "alice"


@pytest.fixture
def merchant(tokens) -> str:
    return tokens["merchant"]


def order(http, user: str) -> dict:
    response = http.post("/web/orders", json={"user_id": user, "quantities": {"beans": 2}})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_order_commits_in_the_group_commit(ctx, http, enrolled, merchant):
    writer = ctx.db.writer
    before = writer.transactions
    placed = order(http, enrolled)
    assert writer.transactions == before + 1  # the order's transaction ran on the writer thread
    shown = call(http, "GET", f"/v1/payments/{placed['payment_id']}", merchant)
    assert (shown["state"], shown["amount_minor"], shown["order_ref"]) == ("created", 4980, placed["order_ref"])


def test_an_order_refused_changes_nothing(ctx, http, enrolled):
    response = http.post("/web/orders", json={"user_id": "nobody", "quantities": {"beans": 1}})
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_user"


def test_status_shows_an_overdue_open_payment_as_expired_without_writing(ctx, http, enrolled, merchant):
    placed = order(http, enrolled)
    with ctx.db.transaction() as s:  # its time ran out, and nobody swept it yet
        s.execute(update(Payment).where(Payment.id == placed["payment_id"])
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    body = http.get("/web/status", params={"payment": placed["payment_id"]}).json()
    assert [(p["state"], p["refusal_code"]) for p in body["payments"]] == [("expired", "payment_expired")]
    api = call(http, "GET", f"/v1/payments/{placed['payment_id']}", merchant)
    assert (api["state"], api["refusal_code"]) == ("expired", "payment_expired")  # the same reading
    with ctx.db.read_session() as s:  # a read never writes the expiry
        assert s.get(Payment, placed["payment_id"]).state == "created"
