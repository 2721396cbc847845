"""Revocation by serial or by user, and the CRL. A revoked certificate fails the
certificate step of every later payment and the final check of a payment in flight."""
from __future__ import annotations

from sqlalchemy import select

from . import audit
from .ca import REVOCATION_REASONS
from .clock import utcnow
from .context import ServerContext
from .enrollment import sweep_expired
from .errors import ApiError
from .models import Certificate, User


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
        return revoked


def current_crl(ctx: ServerContext) -> bytes:
    with ctx.db.transaction() as s:
        sweep_expired(s)
        rows = s.execute(select(Certificate.serial_hex, Certificate.revoked_at,
                                Certificate.revocation_reason)
                         .where(Certificate.status == "revoked")).all()
    return ctx.ca.crl([(r.serial_hex, r.revoked_at, r.revocation_reason) for r in rows])
