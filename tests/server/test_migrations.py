"""The Alembic migrations build exactly the schema the models describe, on both databases."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from cardshield.server.db import normalize_url
from cardshield.server.migrations import upgrade
from cardshield.server.models import Base


def test_migrations_match_models(database_url):
    upgrade(database_url)
    upgrade(database_url)  # idempotent at head
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
            assert {"payments", "cards", "certificates", "enrollments", "challenges",
                    "audit_events", "users", "api_clients"} <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
