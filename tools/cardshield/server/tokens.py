"""API client tokens for terminals, merchants and admins (Authorization: Bearer <token>).

Only SHA-256(token) is stored. A replica may cache a looked-up client for a few seconds
(settings.token_cache_seconds) so a disabled token stops working within that delay.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from . import audit
from .clock import utcnow
from .db import Database
from .errors import ApiError
from .models import ApiClient

ROLES = ("terminal", "merchant", "admin")
TOKEN_PREFIX = "cst_"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_card_text(value: str) -> str:
    """A text field SIGN TRANSACTION carries (payee 83, order ref 84): 1-64 bytes of UTF-8
    without control characters (docs/apdu.md), so the terminal can show it as signed."""
    if not 1 <= len(value.encode("utf-8")) <= 64:
        raise ValueError("at most 64 bytes in UTF-8, at least one")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("control characters are not allowed")
    return value


CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ClientInfo:
    """What may be shown about a client: never its token or the token's hash."""
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    display_name: str  # a merchant's payee name: the registered one, else the name


def _info(client: ApiClient) -> ClientInfo:
    return ClientInfo(client.name, client.role, client.created_at, client.disabled_at,
                      client.display_name or client.name)


def create_client(db: Database, name: str, role: str, *, display_name: str | None = None) -> str:
    """Register a client and return its token (shown once, never stored)."""
    return register_client(db, name, role, display_name=display_name)[0]


def register_client(db: Database, name: str, role: str, *, display_name: str | None = None,
                    by: int | None = None) -> tuple[str, ClientInfo]:
    """The new client's token and record; `by` is the admin client who asked, for the
    audit log. A name already taken is a 409 conflict. `display_name` is the payee a
    merchant's payments show and sign (default: the name)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not CLIENT_NAME.fullmatch(name):
        raise ValueError("a client name is 1-64 letters, digits and . _ - (starting with a "
                         "letter or digit)")
    if display_name is not None:
        try:
            check_card_text(display_name)
        except ValueError as exc:
            raise ValueError(f"display name {display_name!r}: {exc} (the card signs it as the "
                             "payee)") from None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with db.transaction() as s:
            client = ApiClient(name=name, role=role, token_sha256=token_digest(token),
                               created_at=utcnow(), display_name=display_name, refusals=0)
            s.add(client)
            s.flush()  # a taken name fails here, before the audit row
            audit.record(s, "client.create", "ok", client_id=by, detail=f"{name} ({role})")
            return token, _info(client)
    except IntegrityError:
        raise ApiError("conflict", f"a client named {name!r} exists already: choose another "
                                   "name (disable the old one if it is lost)") from None


def list_clients(db: Database) -> list[ClientInfo]:
    with db.read_session() as s:
        return [_info(c) for c in s.scalars(select(ApiClient).order_by(ApiClient.name))]


def disable_client(db: Database, name: str, *, by: int | None = None) -> ClientInfo | None:
    """Stop a client's token for good (a lost terminal, a departed merchant); None if no
    such client. Replicas that cached the token accept it for at most
    settings.token_cache_seconds more."""
    with db.transaction() as s:
        client = s.scalar(select(ApiClient).where(ApiClient.name == name))
        if client is None:
            return None
        if client.disabled_at is None:
            client.disabled_at = utcnow()
            audit.record(s, "client.disable", "ok", client_id=by,
                         detail=f"{name} ({client.role})")
        return _info(client)


def _digest_of(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError("unauthorized", "send the client token as 'Authorization: Bearer <token>'")
    token = authorization[len("Bearer "):].strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        raise ApiError("unauthorized", "the token is not a CardShield client token")
    return token_digest(token)


class Authenticator:
    """Resolve a bearer token to (client id, role), with a short per-replica cache.

    The lookup is a read (`Database.read`): it never takes the writer lock. Tokens found
    unknown or disabled are remembered for the same delay, so a flood of made-up tokens
    costs one indexed read each at most once per delay and never a write transaction.
    Both caches are bounded (CACHE_ENTRIES each); when one is full it starts over."""

    CACHE_ENTRIES = 10_000

    def __init__(self, db: Database, cache_seconds: float):
        self.db = db
        self.cache_seconds = cache_seconds
        self._known: dict[str, tuple[float, int, str]] = {}
        self._refused: dict[str, float] = {}
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
        (safe to call on the event loop); None when the database must be asked. A token
        remembered as unknown is refused here."""
        digest = _digest_of(authorization)
        now = time.monotonic()
        with self._lock:
            hit, refused_until = self._known.get(digest), self._refused.get(digest)
        if refused_until is not None and refused_until > now:
            raise _unknown_token()
        return (hit[1], hit[2]) if hit and hit[0] > now else None

    def identify(self, authorization: str | None) -> tuple[int, str]:
        found = self.cached_identity(authorization)
        if found is not None:
            return found
        digest = _digest_of(authorization)
        with self.db.read() as connection:
            row = connection.execute(_CLIENT_BY_DIGEST, {"digest": digest}).first()
        return self._resolve(digest, None if row is None else tuple(row))

    async def identify_with(self, authorization: str | None, lookup) -> tuple[int, str]:
        """`identify` with an async `lookup(digest) -> (id, role, disabled_at) | None`
        (the payment store's, on the event loop) on a cache miss."""
        found = self.cached_identity(authorization)
        if found is not None:
            return found
        digest = _digest_of(authorization)
        return self._resolve(digest, await lookup(digest))

    def _resolve(self, digest: str, row: tuple | None) -> tuple[int, str]:
        now = time.monotonic()
        if row is None or row[2] is not None:  # unknown, or disabled
            self._remember(self._refused, digest, now + self.cache_seconds)
            raise _unknown_token()
        self._remember(self._known, digest, (now + self.cache_seconds, row[0], row[1]))
        return row[0], row[1]

    def _remember(self, cache: dict, digest: str, entry) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            if len(cache) >= self.CACHE_ENTRIES:
                cache.clear()
            cache[digest] = entry


_CLIENT_BY_DIGEST = (select(ApiClient.id, ApiClient.role, ApiClient.disabled_at)
                     .where(ApiClient.token_sha256 == bindparam("digest")))


def _unknown_token() -> ApiError:
    return ApiError("unauthorized", "unknown or disabled client token")
