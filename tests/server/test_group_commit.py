"""SQLite's durable group commit (db.GroupCommitWriter): every commit is fsynced
(synchronous=FULL), concurrent writes share commits, one refused write in a batch is
rolled back alone, and reads neither take nor wait for the writer lock."""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime

import pytest
from sqlalchemy import func, select

from cardshield.server.errors import ApiError
from cardshield.server.models import ApiClient
from cardshield.server.tokens import token_digest


@pytest.fixture
def sqlite_ctx(ctx, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("the writer thread is SQLite's")
    return ctx


def _add_client(db, name: str, fail: bool = False) -> str:
    with db.transaction() as s:
        s.add(ApiClient(name=name, role="terminal", token_sha256=token_digest(name),
                        created_at=datetime(2026, 1, 1)))
        s.flush()
        if fail:
            raise ApiError("conflict", f"{name} refused")
    return name


def _names(db) -> set[str]:
    with db.read() as c:
        return set(c.scalars(select(ApiClient.name)))


def test_every_connection_fsyncs_its_commits(sqlite_ctx):
    with sqlite_ctx.db.read() as c:
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_concurrent_writes_share_commits_and_a_refusal_stays_alone(sqlite_ctx):
    db, started, gate = sqlite_ctx.db, threading.Event(), threading.Event()

    def first() -> str:  # holds the writer until the others are queued behind it
        started.set()
        gate.wait(10)
        return _add_client(db, "first")

    async def scenario():
        head = asyncio.ensure_future(db.run(first))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        rest = [asyncio.ensure_future(db.run(_add_client, db, f"c{i}", i == 7)) for i in range(20)]
        for _ in range(10_000):  # until all are queued behind `first`
            if db.writer._queue.qsize() == 20:
                break
            await asyncio.sleep(0.001)
        gate.set()
        return await asyncio.gather(head, *rest, return_exceptions=True)

    before = (db.writer.batches, db.writer.transactions)
    outcomes = asyncio.run(scenario())
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert [getattr(e, "code", repr(e)) for e in refused] == ["conflict"]  # only its own caller hears of it
    assert _names(db) >= {"first"} | {f"c{i}" for i in range(20) if i != 7}
    assert "c7" not in _names(db)
    batches, transactions = db.writer.batches - before[0], db.writer.transactions - before[1]
    assert transactions == 21 and batches <= 2  # `first` alone, then the 20 in one commit


def test_reads_do_not_wait_for_the_writer(sqlite_ctx):
    db, inside, release = sqlite_ctx.db, threading.Event(), threading.Event()
    read_during_write: list[int] = []

    def long_write() -> None:
        with db.transaction() as s:
            s.add(ApiClient(name="slow", role="admin", token_sha256="s" * 64,
                            created_at=datetime(2026, 1, 1)))
            s.flush()
            inside.set()
            release.wait(10)  # the test reads meanwhile, then lets it commit

    async def scenario():
        write = asyncio.ensure_future(db.run(long_write))
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, 10)
        with db.read() as c:  # would wait for `release` (never set) if it took the writer lock
            read_during_write.append(c.scalar(select(func.count()).select_from(ApiClient)))
        release.set()
        await write

    asyncio.run(scenario())
    assert read_during_write == [len(_names(db)) - 1]  # the snapshot before the write


def test_read_endpoints_answer_while_a_writer_holds_the_lock(sqlite_ctx, http, tokens):
    """A burst of anonymous status polls or admin listings must not queue behind (or take)
    the writer lock that payments commit under: they read a snapshot."""
    from cardshield.server.users import create_user
    create_user(sqlite_ctx.db, "reader-check")
    admin = {"Authorization": "Bearer " + tokens["admin"]}
    paths = ["/web/status?serial=" + "ab" * 8, "/v1/admin/users", "/v1/admin/users/reader-check",
             "/v1/admin/clients", "/v1/admin/cards", "/v1/admin/cards/" + "0" * 20]
    http.get("/v1/admin/clients", headers=admin)  # the admin token is cached before the hold
    statuses: list[int] = []

    def read_all() -> None:
        statuses.extend(http.get(path, headers=admin).status_code for path in paths)

    with sqlite_ctx.db.writer_lock:  # an open write transaction elsewhere
        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        reader.join(30)  # a read that took the writer lock would still be waiting here
        answered = list(statuses)
    reader.join(30)
    assert answered == [200, 200, 200, 200, 200, 404], answered
