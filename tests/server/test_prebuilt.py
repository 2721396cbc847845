"""The payment path's statements on the driver connection (db.Prebuilt / FastConnection)
write and read exactly what SQLAlchemy's ORM writes and reads, on SQLite and PostgreSQL:
dates, booleans, bytes, 64-bit integers, NULLs, literal IN lists; and a driver error rolls
the whole transaction back and surfaces as SQLAlchemy's exception (409/503 in the API)."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cardshield.server.db import Prebuilt
from cardshield.server.models import Card, User

USERS, CARDS = User.__table__, Card.__table__
WHEN = datetime(2026, 11, 26, 1, 2, 3, 456789)
INSERT_USER = Prebuilt(insert(USERS).values(
    {c: bindparam(c) for c in ("external_id", "consecutive_failures", "blocked_at", "created_at")}))
INSERT_CARD = Prebuilt(insert(CARDS).values(
    {c.name: bindparam(c.name) for c in CARDS.columns if c.name != "id"}))
USER_BY_NAME = Prebuilt(select(USERS).where(USERS.c.external_id == bindparam("name")))
CARD_OF = Prebuilt(select(CARDS.c.public_key_der, CARDS.c.requires_server_signature,
                          CARDS.c.last_counter, CARDS.c.blocked_at)
                   .where(CARDS.c.user_id == bindparam("user_id")))
BLOCK_TWO = update(USERS).where(USERS.c.external_id.in_(("ann", "bob"))).values(blocked_at=WHEN)
BIGGEST = (1 << 63) - 1


def _add_user(c, name: str, blocked_at=None) -> int:
    c.execute(INSERT_USER, {"external_id": name, "consecutive_failures": 0,
                            "blocked_at": blocked_at, "created_at": WHEN})
    return c.scalar(USER_BY_NAME, {"name": name})


def test_rows_round_trip_with_the_orm(ctx):
    with ctx.db.core_transaction() as c:
        user_id = _add_user(c, "ann")
        c.execute(INSERT_CARD, {
            "user_id": user_id, "slot": 1, "label": "card", "public_key_der": b"\x30\x00\xff",
            "key_sha256": "ab" * 32, "requires_server_signature": True, "last_counter": BIGGEST,
            "consecutive_failures": 0, "blocked_at": None, "created_at": WHEN,
            "registry_card_id": None, "attested": False, "attested_policy": None,
            "attestation": None})
    with ctx.db.transaction() as s:  # what the ORM (enrollment, pages, admin) sees
        user = s.scalar(select(User).where(User.external_id == "ann"))
        card = s.scalar(select(Card).where(Card.user_id == user.id))
        assert (user.created_at, user.blocked_at, user.consecutive_failures) == (WHEN, None, 0)
        assert (card.public_key_der, card.requires_server_signature, card.last_counter) == (
            b"\x30\x00\xff", True, BIGGEST)
    with ctx.db.core_transaction() as c:  # and what the payment path reads back
        row = c.execute(USER_BY_NAME, {"name": "ann"}).first()
        assert (row.created_at, row.blocked_at, row._mapping["external_id"]) == (WHEN, None, "ann")
        card_row = c.execute(CARD_OF, {"user_id": user_id}).first()
        assert card_row.requires_server_signature is True
        assert (card_row.public_key_der, card_row.last_counter, card_row.blocked_at) == (
            b"\x30\x00\xff", BIGGEST, None)
        assert c.execute(USER_BY_NAME, {"name": "nobody"}).first() is None


def test_literal_in_lists_and_literal_dates(ctx):
    with ctx.db.core_transaction() as c:
        for name in ("ann", "bob", "cyd"):
            _add_user(c, name)
        assert c.execute(BLOCK_TWO).rowcount == 2  # as the refusal paths write them
        blocked = c.scalars(select(USERS.c.external_id).where(USERS.c.blocked_at == WHEN)
                            .order_by(USERS.c.external_id))
        # a list rendered at compile time cannot wait for parameters: refused, with the reason
        with pytest.raises(TypeError, match="literal IN"):
            c.execute(update(USERS).where(USERS.c.external_id.in_(("ann",)))
                      .values(blocked_at=bindparam("now")), {"now": WHEN})
    assert blocked == ["ann", "bob"]


def test_a_driver_error_rolls_back_everything_and_reads_as_sqlalchemys(ctx):
    with ctx.db.core_transaction() as c:
        _add_user(c, "ann")
    with pytest.raises(IntegrityError):
        with ctx.db.core_transaction() as c:
            _add_user(c, "bob")  # written, then undone with the failing statement's transaction
            _add_user(c, "ann")  # unique external_id
    with ctx.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1
