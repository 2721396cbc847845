"""Engine and transactions for SQLite (embedded default) and PostgreSQL (deployment).

SQLite: WAL journal, a busy timeout, and BEGIN IMMEDIATE for every transaction so two
writers never both read-then-upgrade (which SQLite answers with SQLITE_BUSY at once).
PostgreSQL: psycopg 3 (postgresql+psycopg://), READ COMMITTED; the compare-and-swap
UPDATEs in the services are what makes racing requests safe there.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalize_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_size=pool_size, max_overflow=20,
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                             "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, safe in WAL
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)
    raise ValueError(f"unsupported DATABASE_URL backend {parsed.get_backend_name()!r}: "
                     "use sqlite:///path or postgresql://user@host/db")


class Database:
    """Engine + session factory; `transaction()` is the unit of every request."""

    def __init__(self, url: str, *, pool_size: int = 10):
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and makes waiting writers poll with sleeps of up
        # to 100 ms (its busy handler). Queueing this process's transactions on a lock
        # instead leaves SQLite's waiting to the other processes only.
        self._writer = threading.Lock() if self.is_sqlite else nullcontext()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back on any exception: never a partial write."""
        with self._writer, self._sessions() as session:
            with session.begin():
                yield session

    @contextmanager
    def core_transaction(self) -> Iterator[Connection]:
        """The same unit of work on a plain Connection, for code that only runs Core
        statements (the payment path): no Session bookkeeping."""
        with self._writer, self.engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
