"""API client tokens for terminals, merchants and admins (Authorization: Bearer <token>).

Only SHA-256(token) is stored. A replica may cache a looked-up client for a few seconds
(settings.token_cache_seconds) so a disabled token stops working within that delay.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time

from sqlalchemy import select

from .clock import utcnow
from .db import Database
from .errors import ApiError
from .models import ApiClient

ROLES = ("terminal", "merchant", "admin")
TOKEN_PREFIX = "cst_"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_client(db: Database, name: str, role: str) -> str:
    """Register a client and return its token (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as s:
        s.add(ApiClient(name=name, role=role, token_sha256=token_digest(token),
                        created_at=utcnow()))
    return token


def disable_client(db: Database, name: str) -> bool:
    with db.transaction() as s:
        client = s.scalar(select(ApiClient).where(ApiClient.name == name))
        if client is None:
            return False
        client.disabled_at = utcnow()
        return True


def _digest_of(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError("unauthorized", "send the client token as 'Authorization: Bearer <token>'")
    token = authorization[len("Bearer "):].strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        raise ApiError("unauthorized", "the token is not a CardShield client token")
    return token_digest(token)


class Authenticator:
    """Resolve a bearer token to (client id, role), with a short per-replica cache."""

    def __init__(self, db: Database, cache_seconds: float):
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, int, str]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, *roles: str) -> int:
        return self.check_role(self.identify(authorization), roles)

    @staticmethod
    def check_role(identity: tuple[int, str], roles: tuple[str, ...]) -> int:
        client_id, role = identity
        if role not in roles:
            raise ApiError("forbidden", f"this operation needs a {' or '.join(roles)} token, "
                                        f"not a {role} token")
        return client_id

    def cached_identity(self, authorization: str | None) -> tuple[int, str] | None:
        """(client id, role) from this replica's cache, without touching the database
        (safe to call on the event loop); None when the database must be asked."""
        digest = _digest_of(authorization)
        with self._lock:
            hit = self._cache.get(digest)
        return (hit[1], hit[2]) if hit and hit[0] > time.monotonic() else None

    def identify(self, authorization: str | None) -> tuple[int, str]:
        digest = _digest_of(authorization)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit and hit[0] > now:
            client_id, role = hit[1], hit[2]
        else:
            with self.db.transaction() as s:
                row = s.execute(select(ApiClient.id, ApiClient.role, ApiClient.disabled_at)
                                .where(ApiClient.token_sha256 == digest)).first()
            if row is None or row.disabled_at is not None:
                raise ApiError("unauthorized", "unknown or disabled client token")
            client_id, role = row.id, row.role
            if self.cache_seconds > 0:
                with self._lock:
                    if len(self._cache) > 10_000:
                        self._cache.clear()
                    self._cache[digest] = (now + self.cache_seconds, client_id, role)
        return client_id, role
