"""Revocation by serial or by user, and the CRL. A revoked certificate fails the
certificate step of every later payment and the final check of a payment in flight.

One job produces the CRL (publish_crl): in the transaction of every administrative
revocation, and on a timer (renew_crl, run by every replica once a minute when a read says
it is due, and by `cardshield server crl`) once half of the current CRL's validity has
passed or any certificate was revoked since it was signed (a card revoked in the
registry, a superseded or abandoned enrollment's certificate): those reach the CRL within
the timer's minute. The server's own checks read the certificate's status, so a
revocation stops payments at once either way. It is signed once and stored; GET /v1/ca/crl
serves the stored bytes: no signature and no write per request.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .ca import REVOCATION_REASONS
from .clock import utcnow
from .context import ServerContext
from .enrollment import OPEN_STATES as ENROLLMENT_OPEN_STATES, sweep_expired
from .errors import ApiError
from .models import Certificate, Enrollment, PublishedCrl, User


def revoke(ctx: ServerContext, *, serial_hex: str | None = None, user_external_id: str | None = None,
           reason: str = "unspecified", client_id: int | None = None) -> list[str]:
    """Revoke one certificate (by serial) or all of a user's; returns the serials revoked."""
    if (serial_hex is None) == (user_external_id is None):
        raise ApiError("invalid_request", "give exactly one of serial or user_id")
    if reason not in REVOCATION_REASONS:
        raise ApiError("invalid_request", f"reason must be one of {sorted(REVOCATION_REASONS)}")
    with ctx.db.transaction() as s:
        query = select(Certificate).where(Certificate.status != "revoked")
        if serial_hex is not None:
            serial_hex = serial_hex.lower().lstrip("0") or "0"
            if s.get(Certificate, serial_hex) is None:
                raise ApiError("not_found", f"no certificate with serial {serial_hex}")
            query = query.where(Certificate.serial_hex == serial_hex)
        else:
            user = s.scalar(select(User).where(User.external_id == user_external_id))
            if user is None:
                raise ApiError("unknown_user", f"no user {user_external_id}")
            query = query.where(Certificate.user_id == user.id)
        now, revoked = utcnow(), []
        for cert in s.scalars(query):
            cert.status, cert.revoked_at, cert.revocation_reason = "revoked", now, reason
            revoked.append(cert.serial_hex)
            audit.record(s, "certificate.revoke", "ok", client_id=client_id,
                         user=user_external_id, serial_hex=cert.serial_hex, detail=reason)
        if revoked:
            s.flush()
            publish_crl(ctx, s)  # committed with the revocation, or not at all
        return revoked


def publish_crl(ctx: ServerContext, s: Session) -> PublishedCrl:
    """Sign and store a CRL of every revoked certificate, numbered one above the stored
    one. The stored row is locked first (FOR UPDATE on PostgreSQL; SQLite has one writer),
    so concurrent publishers take turns and each stores a higher number."""
    stored = s.get(PublishedCrl, 1, with_for_update=True)  # created by the migration
    rows = s.execute(select(Certificate.serial_hex, Certificate.revoked_at,
                            Certificate.revocation_reason)
                     .where(Certificate.status == "revoked")).all()
    now = utcnow().replace(microsecond=0)
    number = stored.number + 1
    next_update = now + timedelta(hours=ctx.settings.crl_validity_hours)
    der = ctx.ca.crl([(r.serial_hex, r.revoked_at, r.revocation_reason) for r in rows],
                     number=number, this_update=now, next_update=next_update)
    stored.number, stored.revoked_count, stored.this_update, stored.next_update, stored.der = (
        number, len(rows), now, next_update, der)
    return stored


def _half_gone(crl) -> bool:
    """Nothing published yet (empty der), or half of its validity gone."""
    return not crl.der or utcnow() >= crl.this_update + (crl.next_update - crl.this_update) / 2


def stored_crl(ctx: ServerContext) -> bytes | None:
    """The stored CRL's DER, None before the first; a read, no writer lock."""
    with ctx.db.read() as c:
        return c.scalar(select(PublishedCrl.der).where(PublishedCrl.id == 1)) or None


_REVOKED_COUNT = select(func.count()).select_from(Certificate).where(Certificate.status == "revoked")


def crl_renewal_due(ctx: ServerContext) -> bool:
    """A read: no CRL yet, half of its validity gone, a certificate revoked since it was
    signed (a card revoked in the registry, a superseded or abandoned enrollment's), or an
    abandoned enrollment whose certificate the sweep will revoke."""
    with ctx.db.read() as c:
        stored = c.execute(select(PublishedCrl.this_update, PublishedCrl.next_update,
                                  PublishedCrl.revoked_count,
                                  func.length(PublishedCrl.der).label("der"))
                           .where(PublishedCrl.id == 1)).one()
        revoked = c.scalar(_REVOKED_COUNT)
        abandoned = c.scalar(select(Enrollment.id).where(
            Enrollment.state.in_(ENROLLMENT_OPEN_STATES), Enrollment.expires_at <= utcnow())
            .limit(1))
    return revoked != stored.revoked_count or abandoned is not None or _half_gone(stored)


def renew_crl(ctx: ServerContext) -> bytes:
    """The timer's job: revoke abandoned enrollments' certificates (sweep), and publish a
    new CRL if a certificate was revoked since the stored one was signed or that one is
    missing or half expired; return the current DER either way."""
    with ctx.db.transaction() as s:
        sweep_expired(s)
        s.flush()
        stored = s.get(PublishedCrl, 1, with_for_update=True)
        if s.scalar(_REVOKED_COUNT) != stored.revoked_count or _half_gone(stored):
            stored = publish_crl(ctx, s)
        return stored.der
