"""Round trips between a replica and PostgreSQL per complete payment, counted on the wire.

Every request/response exchange a payment costs is paid in network latency between the
replica and its database, and under load in context switches: the issue's budget is 5 for
a whole payment (the merchant's create, the terminal's claim, the final post), token
lookups included or cached. A TCP proxy in front of the test PostgreSQL counts them
(cardshield.server.testing.wire), whatever the driver does underneath."""
from __future__ import annotations

import pytest

from cardshield.server.settings import Settings
from cardshield.server.testing.flows import create_payment
from cardshield.server.testing.wire import RoundTripProxy

BUDGET = 5


@pytest.fixture
def wire(database_url):
    proxy = RoundTripProxy.in_front_of(database_url)
    yield proxy
    proxy.close()


@pytest.fixture
def settings(ca_dir, database_url, wire) -> Settings:
    # tokens cached as a replica does in production (5 s by default)
    return Settings(state_dir=ca_dir, database_url=wire.url(database_url), token_cache_seconds=300)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_complete_payment_costs_at_most_5_round_trips(http, tokens, enrolled, wire):
    term = enrolled()
    # warm up: connections opened, statements prepared, tokens cached
    for n in range(3):
        payment_id = create_payment(http, tokens["merchant"], "alice", order_ref=f"warm-{n}")["payment_id"]
        assert term.pay(payment_id)["state"] == "authorized"
    wire.reset()
    payment_id = create_payment(http, tokens["merchant"], "alice", order_ref="counted")["payment_id"]
    after_create = wire.round_trips
    state = term.claim(payment_id)
    after_claim = wire.round_trips
    done = term.post_payment(payment_id, state["batch"])
    assert done["state"] == "authorized"
    total = wire.round_trips
    assert total <= BUDGET, (f"{total} round trips per payment (create {after_create}, claim "
                             f"{after_claim - after_create}, final {total - after_claim}); "
                             f"the budget is {BUDGET}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_proxy_counts_one_round_trip_per_statement(database_url, wire):
    """The counter itself: three autocommit statements are three exchanges."""
    import psycopg
    with psycopg.connect(wire.url(database_url).replace("+psycopg", ""), autocommit=True) as conn:
        wire.reset()
        for _ in range(3):
            conn.execute("SELECT 1").fetchone()
        assert wire.round_trips == 3
