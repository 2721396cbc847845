"""Attempt limits (PSD2 RTS Art. 4(3)(b): at most 5 consecutive failed authentications
before blocking) per user and per card."""
from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .clock import utcnow
from .errors import ApiError
from .models import Card, User

USER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

# Refusals that count as a failed authentication of the user / card.
AUTHENTICATION_FAILURES = frozenset({
    "signature_mismatch", "counter_not_increasing", "proof_of_possession_failed",
    "public_key_mismatch", "certificate_wrong_user", "certificate_not_registered",
    "certificate_untrusted", "certificate_readback_mismatch", "card_refused_signature",
    "counter_jump",
})


def ensure_user_not_blocked(user: User) -> None:
    if user.blocked_at is not None:
        raise ApiError("user_blocked", f"user {user.external_id} is blocked after repeated failed "
                                       "authentications; an operator must unblock it")


def ensure_card_not_blocked(blocked_at) -> None:
    if blocked_at is not None:
        raise ApiError("card_blocked", "this card is blocked after repeated failed "
                                       "authentications; an operator must unblock it")


def register_failure(session: Session, code: str, limit: int, *, user_id: int | None,
                     card_id: int | None) -> None:
    """Count an authentication failure; block at `limit` consecutive ones."""
    if code not in AUTHENTICATION_FAILURES:
        return
    now = utcnow()
    for model, row_id in ((User, user_id), (Card, card_id)):
        if row_id is None:
            continue
        session.execute(update(model).where(model.id == row_id)
                        .values(consecutive_failures=model.consecutive_failures + 1))
        session.execute(update(model)
                        .where(model.id == row_id, model.consecutive_failures >= limit,
                               model.blocked_at.is_(None))
                        .values(blocked_at=now))


def reset_failures(session: Session, *, user_id: int, card_id: int | None = None) -> None:
    session.execute(update(User).where(User.id == user_id, User.consecutive_failures != 0)
                    .values(consecutive_failures=0))
    if card_id is not None:
        session.execute(update(Card).where(Card.id == card_id, Card.consecutive_failures != 0)
                        .values(consecutive_failures=0))


def unblock(session: Session, *, user_external_id: str) -> bool:
    user = session.scalar(select(User).where(User.external_id == user_external_id))
    if user is None:
        return False
    user.blocked_at, user.consecutive_failures = None, 0
    session.execute(update(Card).where(Card.user_id == user.id)
                    .values(blocked_at=None, consecutive_failures=0))
    return True
