"""Server test fixtures: a CA made once per session, a database per test on SQLite and on
PostgreSQL (CARDSHIELD_TEST_POSTGRES_URL, exported by `./cardshield test`, which starts a
private cluster when none is given; if it is unset the PostgreSQL variants skip, in CI they fail)."""
from __future__ import annotations

import os
import secrets
import uuid

import pytest
from sqlalchemy import create_engine, text

from cardshield.attestation.ca import AttestationCA
from cardshield.server.context import ServerContext
from cardshield.server.db import normalize_url
from cardshield.server.migrations import upgrade
from cardshield.server.settings import Settings
from cardshield.server.testing.issuer import prepare_server_state, load_test_issuer
from cardshield.server.tokens import create_client

PG_ENV = "CARDSHIELD_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory):
    """Server state: the payment CA, the activation-code key, and a test attestation CA in
    the attestation trust store (its key stays in the test, as at an issuer's station)."""
    state = tmp_path_factory.mktemp("server-state")
    prepare_server_state(Settings(state_dir=state))
    return state


@pytest.fixture(scope="session")
def attestation_ca(ca_dir) -> AttestationCA:
    return load_test_issuer(ca_dir)


def _postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI: `./cardshield test` could not start PostgreSQL")
        pytest.skip(f"PostgreSQL not available ({PG_ENV} unset)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    admin_url = normalize_url(_postgres_url())
    name = "cs_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = admin_url.rpartition("/")
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(ca_dir, database_url) -> Settings:
    return Settings(state_dir=ca_dir, database_url=database_url, token_cache_seconds=0)


@pytest.fixture
def ctx(settings):
    upgrade(settings.effective_database_url)
    context = ServerContext.create(settings)
    yield context
    context.db.dispose()


@pytest.fixture
def tokens(ctx) -> dict[str, str]:
    return {role: create_client(ctx.db, f"{role}-{uuid.uuid4().hex[:6]}", role)
            for role in ("terminal", "merchant", "admin")}


@pytest.fixture
def http(ctx):
    from fastapi.testclient import TestClient

    from cardshield.server.api import create_app
    with TestClient(create_app(ctx)) as client:
        yield client


@pytest.fixture(scope="session")
def key_pool():
    """RSA-2048 keys made once; each test has its own database, so reuse is safe."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(6)]


@pytest.fixture(scope="session")
def attestation_keys():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture
def make_card(key_pool, attestation_keys, attestation_ca, ctx):
    """SoftCard factory handing out distinct pooled keys (index wraps per test). Each card
    gets its own card id and an attestation key certified by the test attestation CA, and
    is imported into the card registry as personalization would record it
    (register=False: a card the bank never registered)."""
    from cardshield.server.testing.issuer import registered_softcard
    from cardshield.server.testing.softcard import SoftCard
    pool = iter(key_pool * 4)
    attesting = iter(attestation_keys * 8)

    def make(register: bool = True, **kwargs) -> SoftCard:
        kwargs.setdefault("key_factory", lambda: next(pool))
        kwargs.setdefault("attestation_key", next(attesting))
        if register:
            return registered_softcard(ctx, attestation_ca, **kwargs)
        kwargs.setdefault("server_public_key", ctx.ca.request_key.public_key())
        kwargs.setdefault("card_id", secrets.token_bytes(8))
        return SoftCard(**kwargs)
    return make


@pytest.fixture
def enrolled(http, tokens, make_card, bank):
    """enrolled(user, **SoftCard options): a terminal whose SoftCard completed enrollment
    (with an activation code from the bank)."""
    from cardshield.server.testing.flows import Terminal

    def make(user="alice", **card_kwargs):
        term = Terminal(http, tokens["terminal"], make_card(**card_kwargs), bank=bank)
        assert term.enroll(user)["state"] == "completed"
        return term
    return make


@pytest.fixture
def bank(http, tokens):
    from cardshield.server.testing.flows import Bank
    return Bank(http, tokens["admin"])
