"""Bearer tokens under attack: a flood of made-up tokens must never reach a write
transaction (on SQLite that would queue behind, and slow down, every payment's commit),
repeated ones are refused from the replica's memory, and a disabled token is refused again
once the cache delay is over."""
from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import event

from cardshield.server.context import ServerContext
from cardshield.server.migrations import upgrade
from cardshield.server.payment_store import CLIENT_BY_TOKEN
from cardshield.server.testing.flows import FlowError, call
from cardshield.server.tokens import TOKEN_PREFIX, create_client, disable_client


class Statements:
    """The SQL the server sends: through its SQLAlchemy engine, and through the payment
    store, which looks tokens up on its own connections (SQLite: traced by sqlite3 itself;
    PostgreSQL: each lookup the store sends)."""

    def __init__(self, ctx):
        self.seen: list[str] = []
        event.listen(ctx.db.engine, "before_cursor_execute",
                     lambda conn, cursor, sql, *rest: self.seen.append(sql))
        store = ctx.payment_store
        if ctx.db.is_sqlite:
            opened = ctx.db.raw_sqlite_reader

            def traced():
                connection = opened()
                connection.set_trace_callback(self.seen.append)
                return connection
            ctx.db.raw_sqlite_reader = traced
        else:
            lookup = store.client_by_token

            async def sent(digest):
                self.seen.append(CLIENT_BY_TOKEN)
                return await lookup(digest)
            store.client_by_token = sent

    def count(self, needle: str) -> int:
        return sum(needle in sql for sql in self.seen)


@pytest.fixture
def cached_ctx(settings):
    """A server whose token cache is on, as in production (5 s)."""
    upgrade(settings.effective_database_url)
    context = ServerContext.create(settings.with_overrides(token_cache_seconds=5.0))
    yield context
    context.db.dispose()


@pytest.fixture
def cached_http(cached_ctx):
    from fastapi.testclient import TestClient

    from cardshield.server.api import create_app
    with TestClient(create_app(cached_ctx)) as client:
        yield client


def _create_payment(http, token: str) -> FlowError:
    with pytest.raises(FlowError) as refused:
        call(http, "POST", "/v1/payments", token, {"user_id": "u", "amount_minor": 1,
                                                   "currency": "EUR", "order_ref": "o"})
    return refused.value


def test_unknown_tokens_never_open_a_write_transaction(ctx, http, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("BEGIN IMMEDIATE is SQLite's write transaction")
    sql = Statements(ctx)
    for _ in range(20):
        refused = _create_payment(http, TOKEN_PREFIX + uuid.uuid4().hex)
        assert (refused.status, refused.code) == (401, "unauthorized")
    assert sql.count("BEGIN IMMEDIATE") == 0, "a made-up token took SQLite's write lock"
    assert sql.count("api_clients") == 20  # each was looked up once, read-only


def test_a_repeated_unknown_token_is_refused_from_memory(cached_ctx, cached_http):
    sql = Statements(cached_ctx)
    token = TOKEN_PREFIX + uuid.uuid4().hex
    for _ in range(10):
        assert _create_payment(cached_http, token).code == "unauthorized"
    assert sql.count("api_clients") == 1


def test_a_disabled_token_is_refused_once_the_cache_delay_is_over(cached_ctx, cached_http,
                                                                 monkeypatch):
    name = f"merchant-{uuid.uuid4().hex[:6]}"
    token = create_client(cached_ctx.db, name, "merchant")
    assert _create_payment(cached_http, token).code == "unknown_user"  # accepted, then cached
    disable_client(cached_ctx.db, name)
    later = time.monotonic() + cached_ctx.settings.token_cache_seconds + 0.1
    monkeypatch.setattr("cardshield.server.tokens.time.monotonic", lambda: later)
    assert _create_payment(cached_http, token).code == "unauthorized"
