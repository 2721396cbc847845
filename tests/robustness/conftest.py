"""Fixtures of the robustness tests that need the authentication server: one CA and one
SQLite database per module (the server's own tests cover both databases; these tests
attack, lint and load what the server produces)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def server_ctx(tmp_path_factory):
    from cardshield.server.context import ServerContext
    from cardshield.server.migrations import upgrade
    from cardshield.server.settings import Settings
    from cardshield.server.testing.issuer import prepare_server_state

    state = tmp_path_factory.mktemp("robust-server")
    prepare_server_state(Settings(state_dir=state))
    # A public URL, so the linted certificates carry the CRL distribution point and AIA too.
    settings = Settings(state_dir=state, database_url=f"sqlite:///{state / 'server.db'}", token_cache_seconds=0,
                        public_url="http://ca.cardshield.test")
    upgrade(settings.effective_database_url)
    context = ServerContext.create(settings)
    yield context
    context.db.dispose()


@pytest.fixture(scope="module")
def server_tokens(server_ctx) -> dict[str, str]:
    from cardshield.server.tokens import create_client

    return {role: create_client(server_ctx.db, f"robust-{role}", role) for role in ("terminal", "merchant", "admin")}


@pytest.fixture(scope="module")
def server_http(server_ctx):
    from fastapi.testclient import TestClient

    from cardshield.server.api import create_app

    with TestClient(create_app(server_ctx)) as client:
        yield client
