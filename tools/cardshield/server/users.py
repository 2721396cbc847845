"""Users are created by the bank (an admin client over HTTP, or the operator's CLI), never by
a terminal: enrollment names an existing user and needs that user's activation code."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit, limits
from .clock import utcnow
from .db import Database
from .errors import ApiError
from .models import Card, Certificate, User


@dataclass(frozen=True)
class ActiveCertificate:
    slot: int
    serial: str
    card_id: str | None  # the registry card id the key was attested by, if any
    attested: bool


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    created_at: datetime
    blocked_at: datetime | None
    certificates: list[ActiveCertificate]


def _check_id(external_id: str) -> None:
    if not limits.USER_ID_PATTERN.fullmatch(external_id):
        raise ApiError("invalid_request", "user_id must be 1-64 of A-Z a-z 0-9 . _ @ - "
                                          "(starting with a letter or digit)")


def _info(s: Session, user: User) -> UserInfo:
    rows = s.execute(select(Certificate.slot, Certificate.serial_hex, Card.registry_card_id,
                            Card.attested)
                     .join(Card, Card.id == Certificate.card_id)
                     .where(Certificate.user_id == user.id, Certificate.status == "active")
                     .order_by(Certificate.slot))
    return UserInfo(user.external_id, user.created_at, user.blocked_at,
                    [ActiveCertificate(r.slot, r.serial_hex, r.registry_card_id, bool(r.attested))
                     for r in rows])


def create_user(db: Database, external_id: str, *, by: int | None = None) -> UserInfo:
    """A new user; a taken id is a 409 conflict. `by` is the admin client, for the audit."""
    _check_id(external_id)
    try:
        with db.transaction() as s:
            user = User(external_id=external_id, consecutive_failures=0, created_at=utcnow(),
                        created_by_client_id=by)
            s.add(user)
            s.flush()
            audit.record(s, "user.create", "ok", client_id=by, user=external_id)
            return _info(s, user)
    except IntegrityError:
        raise ApiError("conflict", f"a user {external_id!r} exists already") from None


_USER = select(User.__table__).where(User.__table__.c.external_id == bindparam("external_id"))
_USER_LOCKED = _USER.with_for_update()


def find_user(s: Session | Connection, external_id: str, *, lock: bool = False):
    """The users row (id, external_id, blocked_at, ...), on a session or a connection;
    unknown_user (404) if the bank never created it."""
    _check_id(external_id)
    user = s.execute(_USER_LOCKED if lock else _USER, {"external_id": external_id}).first()
    if user is None:
        raise ApiError("unknown_user", f"no user {external_id!r}: the bank creates users "
                                       "(`cardshield server user add`) before they enroll")
    return user


def get_user(db: Database, external_id: str) -> UserInfo:
    with db.read_session() as s:
        return _info(s, find_user(s, external_id))


def list_users(db: Database) -> list[UserInfo]:
    with db.read_session() as s:
        return [_info(s, u) for u in s.scalars(select(User).order_by(User.external_id))]
