"""Audit log: one row per issuance, authorization, revocation and refusal.

Successes are written in the same transaction as the change they record; refusals in
their own transaction after the refused work was rolled back. No secrets in `detail`.
"""
from __future__ import annotations

from sqlalchemy import Connection, bindparam, insert
from sqlalchemy.orm import Session

from .clock import utcnow
from .models import AuditEvent

# A constant statement on every payment's path: SQLAlchemy compiles it once (its compiled
# cache); the id is the database's.
_INSERT = insert(AuditEvent.__table__).values(
    {c.name: bindparam(c.name) for c in AuditEvent.__table__.columns if c.name != "id"})


def record(session: Session | Connection, action: str, outcome: str, *, code: str | None = None,
           client_id: int | None = None, user: str | None = None, card_id: int | None = None,
           enrollment_id: str | None = None, payment_id: str | None = None,
           serial_hex: str | None = None, detail: str | None = None) -> None:
    session.execute(_INSERT, dict(
        at=utcnow(), action=action, outcome=outcome, code=code, client_id=client_id,
        user_external_id=user, card_id=card_id, enrollment_id=enrollment_id,
        payment_id=payment_id, certificate_serial_hex=serial_hex,
        detail=detail[:512] if detail else None))
