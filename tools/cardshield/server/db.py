"""Engine and transactions for SQLite (embedded default) and PostgreSQL (deployment).

SQLite: WAL journal with synchronous=FULL (a commit is on disk before it returns: SQLite's
NORMAL can lose committed transactions at power loss), a busy timeout, and BEGIN IMMEDIATE
for every write transaction so two writers never both read-then-upgrade. The endpoints'
write work goes through one writer thread per process (GroupCommitWriter) that runs the
queued transactions back to back inside one SQLite transaction, each in its own savepoint,
and commits them with one fsync; a caller hears its outcome only after that commit
returned. Reads (`read()`) use their own connections and never take the writer lock.
PostgreSQL: psycopg 3 (postgresql+psycopg://), READ COMMITTED; the compare-and-swap
UPDATEs in the services are what makes racing requests safe there.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
_READ_ONLY = "cardshield_read_only"
T = TypeVar("T")


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
            # FULL: the WAL is fsynced at every commit, so an acknowledged commit survives
            # power loss (https://sqlite.org/pragma.html#pragma_synchronous)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # a read() asks for a deferred BEGIN: a snapshot that takes no write lock.
            # Sent on the DB-API connection: SQLAlchemy's statement execution around it
            # cost more CPU than the BEGIN itself (one per group commit).
            conn.connection.driver_connection.execute(
                "BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        # No pre-ping: it costs a round trip per transaction (4 per payment, measured by
        # `inv bench server`). A connection found dead instead fails its request with a 503
        # (nothing written) and empties the pool, as SQLAlchemy's optimistic disconnect
        # handling does, so the next requests get fresh connections.
        return create_engine(url, pool_size=pool_size, max_overflow=20)
    raise ValueError(f"unsupported DATABASE_URL backend {parsed.get_backend_name()!r}: "
                     "use sqlite:///path or postgresql://user@host/db")


class SqliteWriterLock:
    """One SQLite writer at a time, across threads and processes, without polling.

    SQLite makes a waiting writer poll with sleeps of up to 100 ms (its busy handler), which
    is what a worker process's requests would do while another process commits. Queueing
    on a thread lock and then on an flock(2) of a file beside the database wakes the next
    writer as soon as the lock is free. The busy timeout stays as the backstop for
    processes that do not take this lock (sqlite3 shell, backups)."""

    def __init__(self, database_path: str | None):
        self._thread_lock = threading.Lock()
        self._path = database_path + ".writer-lock" if database_path else None
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._path is not None:
                if self._fd is None or self._pid != os.getpid():  # a forked child reopens
                    self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *_exc) -> None:
        try:
            if self._path is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


class _Job:
    """One queued write: `work(*args)`, and the caller's future settled after the commit."""
    __slots__ = ("work", "args", "loop", "future", "result", "error")

    def __init__(self, work: Callable, args: tuple, loop: asyncio.AbstractEventLoop):
        self.work, self.args, self.loop = work, args, loop
        self.future = loop.create_future()
        self.result, self.error = None, None

    def settle(self) -> None:
        """On the caller's event loop, once the batch's outcome is final."""
        if self.future.cancelled():
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)


def _settle_all(jobs: list[_Job]) -> None:
    for job in jobs:
        job.settle()


class GroupCommitWriter:
    """The commit point of a process's SQLite writes: one thread that takes every queued
    write transaction, runs them back to back inside one BEGIN IMMEDIATE ... COMMIT, each
    in its own savepoint (a refused or failed one is rolled back alone), and settles the
    callers' futures only after COMMIT returned, i.e. after the WAL was fsynced. Under load
    one fsync (and one writer-lock hand-over between processes) serves a whole batch; alone,
    a transaction commits at once. The work runs on this thread, so a request costs no
    hop to a pool thread and back other than this queue."""

    MAX_BATCH = 64

    def __init__(self, db: "Database"):
        self._db = db
        self._queue: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self.connection: Connection | None = None  # the batch's connection, on this thread
        self._connection: Connection | None = None  # kept open between batches
        self.batches = self.transactions = 0  # for the benchmark's report
        self.cpu_seconds = 0.0  # this thread's CPU in batches (the benchmark's split)

    def on_writer_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, work: Callable[..., T], args: tuple) -> "asyncio.Future[T]":
        job = _Job(work, args, asyncio.get_running_loop())
        if self._thread is None or self._pid != os.getpid():  # started lazily, per process
            with self._start_lock:
                if self._thread is None or self._pid != os.getpid():
                    self._connection = None  # a forked child never uses its parent's
                    self._thread = threading.Thread(target=self._serve, daemon=True,
                                                    name="cardshield-writer")
                    self._pid = os.getpid()
                    self._thread.start()
        self._queue.put(job)
        return job.future

    def stop(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._thread = None

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self._close_connection()
                return
            batch = [job]
            while len(batch) < self.MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            started = time.thread_time()
            self._commit(batch)
            self._answer(batch)
            self.cpu_seconds += time.thread_time() - started

    @staticmethod
    def _answer(batch: list[_Job]) -> None:
        """Settle the batch's futures: one wake-up of each caller's event loop (a write to
        its self-pipe) for all of its jobs, not one per job."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, jobs)
            except RuntimeError:  # the caller's event loop is closed: nobody to answer
                pass

    def _commit(self, batch: list[_Job]) -> None:
        db = self._db
        try:
            with db.writer_lock:
                connection = self._open_connection()
                transaction = connection.begin()  # BEGIN IMMEDIATE (make_engine)
                self.connection = connection
                try:
                    for job in batch:
                        try:
                            job.result = job.work(*job.args)
                        except BaseException as exc:  # this caller's outcome
                            job.error = exc
                            if not connection.connection.driver_connection.in_transaction:
                                # SQLite ended the whole transaction (an I/O or full-disk
                                # error): what ran before is gone too, so nobody is told
                                # it was committed
                                raise
                    transaction.commit()  # the batch's one fsync
                    self.batches += 1
                    self.transactions += len(batch)
                finally:
                    self.connection = None
                    if transaction.is_active:
                        transaction.rollback()
        except BaseException as exc:  # nothing of the batch is committed
            self._close_connection()  # the next batch starts on a fresh connection
            for job in batch:
                if job.error is None:
                    job.error = exc
                job.result = None

    def _open_connection(self) -> Connection:
        """The writer's connection, kept checked out from batch to batch: a pool checkout
        and its reset (a ROLLBACK) per batch cost more CPU than the batch's own statements.
        Between batches it holds no transaction, so it neither blocks a reader nor a WAL
        checkpoint."""
        if self._connection is None:
            self._connection = self._db.engine.connect()
        return self._connection

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # closing a broken connection: it is discarded either way
                pass


class Database:
    """Engine + session factory; `transaction()` is the unit of every write, `read()` of
    reads, and `run()` hands a write to the writer thread (SQLite) or a pool thread."""

    def __init__(self, url: str, *, pool_size: int = 10):
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        database = self.engine.url.database if self.is_sqlite else None
        self.writer_lock = (SqliteWriterLock(None if database in (None, "", ":memory:")
                                             else database)
                            if self.is_sqlite else nullcontext())
        self.writer = GroupCommitWriter(self) if self.is_sqlite else None
        # PostgreSQL: blocking psycopg work runs on a pool's worth of threads.
        self._executor = (None if self.is_sqlite else
                          ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="cardshield-db"))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def _batch_connection(self) -> Connection | None:
        """The writer thread's open batch, which a transaction joins as a savepoint."""
        if self.writer is not None and self.writer.on_writer_thread():
            return self.writer.connection
        return None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back on any exception: never a partial write."""
        batch = self._batch_connection()
        if batch is not None:
            with Session(bind=batch, join_transaction_mode="create_savepoint",
                         expire_on_commit=False) as session, session.begin():
                yield session
            return
        with self.writer_lock, self._sessions() as session:
            with session.begin():
                yield session

    @contextmanager
    def raw_write(self) -> Iterator[sqlite3.Connection]:
        """A write on SQLite's DB-API connection, without SQLAlchemy (the payment store):
        on the writer thread a savepoint of its open batch (a failure rolls back this one
        alone), elsewhere its own BEGIN IMMEDIATE transaction under the writer lock."""
        batch = self._batch_connection()
        if batch is not None:
            raw = batch.connection.driver_connection
            raw.execute("SAVEPOINT cs_write")
            try:
                yield raw
            except BaseException:
                if raw.in_transaction:  # else SQLite ended the batch: the writer reports it
                    raw.execute("ROLLBACK TO cs_write")
                    raw.execute("RELEASE cs_write")
                raise
            raw.execute("RELEASE cs_write")
            return
        with self.writer_lock, self.engine.connect() as connection:
            raw = connection.connection.driver_connection
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield raw
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")

    def raw_sqlite_reader(self) -> sqlite3.Connection:
        """A DB-API connection for single-statement reads (each one a consistent snapshot
        in WAL mode, never waiting for the writer), with the engine's settings."""
        database = self.engine.url.database
        connection = sqlite3.connect(database, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                                     isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA query_only=ON")
        return connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot on its own connection: SQLite's deferred BEGIN in WAL mode
        neither takes nor waits for the writer lock."""
        with self.engine.connect().execution_options(**{_READ_ONLY: True}) as connection:
            with connection.begin():
                yield connection

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """`read()` for ORM code: a Session on the read-only snapshot (nothing to flush)."""
        with self.read() as connection, Session(bind=connection, autoflush=False) as session:
            yield session

    async def run(self, work: Callable[..., T], /, *args) -> T:
        """Await `work(*args)`, a write: on SQLite in the writer thread's next group commit
        (answered once durable), on PostgreSQL on a pool thread."""
        if self.writer is not None:
            return await self.writer.submit(work, args)
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                partial(work, *args))

    async def run_read(self, work: Callable[..., T], /, *args) -> T:
        """Await `work(*args)`, a short read: SQLite answers from the page cache in
        microseconds, so it runs on the event loop; PostgreSQL's network wait on a thread."""
        if self.is_sqlite:
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                partial(work, *args))

    def dispose(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self.engine.dispose()
