"""Many terminals enrolling and paying at once over real loopback HTTP: nothing lost,
nothing authorized twice (asserted from the database)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from cardshield.server.api import create_app
from cardshield.server.models import AuditEvent, Card, Certificate, Payment
from cardshield.server.testing.flows import Bank, FlowError, Terminal, create_payment
from cardshield.server.testing.live import serve_in_thread
from cardshield.server.testing.softcard import SoftCard

TERMINALS = 8
PAYMENTS_EACH = 4


@pytest.fixture(scope="module")
def many_keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(TERMINALS)]


@pytest.fixture
def live(ctx):
    with serve_in_thread(create_app(ctx)) as base_url:
        yield base_url


def test_many_terminals_enroll_and_pay_at_once(ctx, tokens, live, many_keys, make_card):
    cards = [make_card(key_factory=lambda key=key: key) for key in many_keys]

    def one_terminal(i: int) -> list[str]:
        with httpx.Client(base_url=live, timeout=30) as http:
            term = Terminal(http, tokens["terminal"], cards[i], bank=Bank(http, tokens["admin"]))
            assert term.enroll(f"user{i}")["state"] == "completed"
            states = []
            for n in range(PAYMENTS_EACH):
                created = create_payment(http, tokens["merchant"], f"user{i}", order_ref=f"{i}-{n}")
                states.append(term.pay(created["payment_id"])["state"])
            return states

    with ThreadPoolExecutor(TERMINALS) as pool:
        results = list(pool.map(one_terminal, range(TERMINALS)))
    assert results == [["authorized"] * PAYMENTS_EACH] * TERMINALS
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Certificate)
                        .where(Certificate.status == "active")) == TERMINALS
        assert s.scalar(select(func.count()).select_from(Payment)
                        .where(Payment.state == "authorized")) == TERMINALS * PAYMENTS_EACH
        assert sorted(s.scalars(select(Card.last_counter))) == [PAYMENTS_EACH] * TERMINALS
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "payment.authorize", AuditEvent.outcome == "ok")) == \
            TERMINALS * PAYMENTS_EACH


def test_racing_posts_of_one_signature_authorize_once(ctx, tokens, live, many_keys, make_card):
    with httpx.Client(base_url=live, timeout=30) as http:
        term = Terminal(http, tokens["terminal"], make_card(key_factory=lambda: many_keys[0]),
                        bank=Bank(http, tokens["admin"]))
        term.enroll("racer")
        created = create_payment(http, tokens["merchant"], "racer")
        state = term.claim(created["payment_id"])
        responses = term.run(state["batch"])
    barrier = threading.Barrier(12)

    def post(_):
        with httpx.Client(base_url=live, timeout=30) as http:
            racer = Terminal(http, tokens["terminal"], None)
            barrier.wait()
            try:
                return racer.post_payment(created["payment_id"], state["batch"], responses)["state"]
            except FlowError as err:
                return err.code

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(post, range(12)))
    # every racer gets the one authorization (a retried post returns it); it happened once
    assert outcomes == ["authorized"] * 12
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.last_counter)) == 1
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "payment.authorize", AuditEvent.outcome == "ok")) == 1


def test_cloned_card_racing_two_payments_with_one_counter_authorizes_once(
        ctx, tokens, live, many_keys, make_card):
    """Two payments signed with the same counter (a cloned card) posted at the same time:
    the counter compare-and-set lets exactly one through."""
    with httpx.Client(base_url=live, timeout=30) as http:
        original = make_card(key_factory=lambda: many_keys[1])
        term = Terminal(http, tokens["terminal"], original, bank=Bank(http, tokens["admin"]))
        term.enroll("twin")
        prepared = []
        for n in range(2):
            clone = SoftCard(keys=dict(original.keys), certificates=dict(original.certificates),
                             counter=original.counter,
                             server_public_key=original.server_public_key)
            payer = Terminal(http, tokens["terminal"], clone)
            created = create_payment(http, tokens["merchant"], "twin", order_ref=f"twin-{n}")
            state = payer.claim(created["payment_id"])
            prepared.append((created["payment_id"], state["batch"], payer.run(state["batch"])))
    assert {bytes.fromhex(r[-1])[:6].hex() for _, _, r in prepared} == {"860400000001"}
    barrier = threading.Barrier(2)

    def post(item):
        payment_id, batch, responses = item
        with httpx.Client(base_url=live, timeout=30) as http:
            barrier.wait()
            try:
                return Terminal(http, tokens["terminal"], None).post_payment(
                    payment_id, batch, responses)["state"]
            except FlowError as err:
                return err.code

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(post, prepared))
    assert outcomes == ["authorized", "counter_not_increasing"]
    with ctx.db.transaction() as s:
        assert s.scalar(select(Card.last_counter)) == 1
        assert s.scalar(select(func.count()).select_from(Payment)
                        .where(Payment.state == "authorized")) == 1
