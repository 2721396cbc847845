"""Activation codes: the bank's one-time authorization of an enrollment (issue 12 part 2;
CFCA-style reference + authorization code; PSD2 RTS art. 4).

The bank issues a code for one user and one slot and hands it to the customer out of band
(letter, branch, banking app). The terminal sends it only in the enrollment start request.

- Shown once: only HMAC-SHA256(server activation-code key, user id | slot | code) is stored,
  so a copy of the database alone does not let anyone test guesses offline.
- 80 random bits, in 16 Crockford base32 characters shown as XXXX-XXXX-XXXX-XXXX.
- Expires (settings.activation_code_ttl_seconds), single use (consumed when an enrollment
  starts), and locked after settings.activation_code_max_attempts wrong tries.
- Issuing a new code for a user and slot revokes the one still outstanding, so at most one
  code per user and slot can be guessed at, and its lock cannot be reset by the attacker.
- Replacing an active certificate needs a code issued with replace=True.
- Every issue, use and failure is audited, never with the code.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from . import audit
from .ca import CaSetupError, check_private_file
from .clock import utcnow
from .context import ServerContext
from .errors import ApiError
from .models import ActivationCode, Certificate
from .users import find_user

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I L O U
CODE_LENGTH = 16
KEY_BYTES = 32
# What a user may type for a Crockford digit that is not in the alphabet.
_TYPO = str.maketrans({"O": "0", "I": "1", "L": "1"})


def ensure_activation_key(path: Path) -> bool:
    """Create the server's activation-code HMAC key (0600) if missing; True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(KEY_BYTES))
    return True


def load_activation_key(path: Path) -> bytes:
    if not path.exists():
        raise CaSetupError(f"{path} is missing; run `cardshield server init` first")
    check_private_file(path)
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise CaSetupError(f"{path} is shorter than {KEY_BYTES} bytes; move it away and run "
                           "`cardshield server init` (codes issued with it stop working)")
    return key


def normalize(code: str) -> str:
    """The code as issued: case, dashes and spaces are ignored, O/I/L read as 0/1/1."""
    return code.upper().replace("-", "").replace(" ", "").translate(_TYPO)


def _grouped(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def _digest(key: bytes, user_id: int, slot: int, code: str) -> str:
    message = f"cardshield-activation/1|{user_id}|{slot}|{normalize(code)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class IssuedCode:
    activation_code: str  # shown once to the bank operator, never stored
    user_id: str
    slot: int
    replace: bool
    expires_at: datetime


def _slot(slot: int) -> int:
    if slot not in (1, 2):
        raise ApiError("invalid_request", "slot must be 1 (payment) or 2 (authentication)")
    return slot


def _outstanding(s: Session, user_id: int, slot: int):
    return (select(ActivationCode)
            .where(ActivationCode.user_id == user_id, ActivationCode.slot == slot,
                   ActivationCode.used_at.is_(None), ActivationCode.revoked_at.is_(None)))


def issue_code(ctx: ServerContext, user_external_id: str, slot: int, *, replace: bool = False,
               by: int | None = None) -> IssuedCode:
    _slot(slot)
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    with ctx.db.transaction() as s:
        user = find_user(s, user_external_id, lock=True)
        now = utcnow()
        for old in s.scalars(_outstanding(s, user.id, slot)):
            old.revoked_at = now
            audit.record(s, "activation_code.revoke", "ok", client_id=by, user=user.external_id,
                         detail=f"slot {slot}: replaced by a new code")
        expires_at = now + timedelta(seconds=ctx.settings.activation_code_ttl_seconds)
        s.add(ActivationCode(user_id=user.id, slot=slot, replace=replace, failed_attempts=0,
                             code_hmac=_digest(ctx.activation_key, user.id, slot, code),
                             created_at=now, created_by_client_id=by, expires_at=expires_at))
        audit.record(s, "activation_code.issue", "ok", client_id=by, user=user.external_id,
                     detail=f"slot {slot}{', may replace the active certificate' if replace else ''}"
                            f", expires {expires_at:%Y-%m-%d %H:%M} UTC")
    return IssuedCode(_grouped(code), user_external_id, slot, replace, expires_at)


CODES = ActivationCode.__table__
_OUTSTANDING_LOCKED = (select(CODES).where(CODES.c.user_id == bindparam("user_id"),
                                           CODES.c.slot == bindparam("slot"),
                                           CODES.c.used_at.is_(None), CODES.c.revoked_at.is_(None))
                       .with_for_update())
_USE = (update(CODES).where(CODES.c.id == bindparam("code_id"), CODES.c.used_at.is_(None))
        .values(used_at=bindparam("now")))
_ACTIVE_CERTIFICATE = (select(Certificate.serial_hex)
                       .where(Certificate.user_id == bindparam("user_id"),
                              Certificate.slot == bindparam("slot"),
                              Certificate.status == "active").limit(1))


def consume_code(ctx: ServerContext, s: Session | Connection, user_id: int, slot: int,
                 code: str):
    """Check `code` for the user and slot and mark it used (in the caller's transaction, so
    a refused enrollment start leaves it unused). A wrong code raises
    activation_code_invalid: the caller's refusal handler counts it (count_wrong_code)."""
    row = s.execute(_OUTSTANDING_LOCKED, {"user_id": user_id, "slot": slot}).first()
    if row is None:
        raise ApiError("activation_code_not_issued",
                       f"no activation code is outstanding for this user and slot {slot}: "
                       "ask the bank for one")
    if row.locked_at is not None:
        raise ApiError("activation_code_locked",
                       "the activation code is locked after too many wrong tries: ask the bank "
                       "for a new one")
    if row.expires_at <= utcnow():
        raise ApiError("activation_code_expired",
                       f"the activation code expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: "
                       "ask the bank for a new one")
    if not hmac.compare_digest(row.code_hmac, _digest(ctx.activation_key, user_id, slot, code)):
        left = ctx.settings.activation_code_max_attempts - row.failed_attempts - 1
        raise ApiError("activation_code_invalid",
                       f"wrong activation code; {left} tr{'y' if left == 1 else 'ies'} left before "
                       "it locks" if left > 0 else
                       "wrong activation code; it is now locked: ask the bank for a new one")
    if s.execute(_USE, {"code_id": row.id, "now": utcnow()}).rowcount != 1:
        raise ApiError("activation_code_not_issued", "the activation code was just used")
    return row


def count_wrong_code(ctx: ServerContext, s: Session, user_id: int, slot: int) -> None:
    """One more wrong try on the outstanding code; locks it at the limit (atomic, so
    concurrent guesses cannot get more tries)."""
    limit = ctx.settings.activation_code_max_attempts
    s.execute(update(ActivationCode)
              .where(ActivationCode.user_id == user_id, ActivationCode.slot == slot,
                     ActivationCode.used_at.is_(None), ActivationCode.revoked_at.is_(None),
                     ActivationCode.locked_at.is_(None))
              .values(failed_attempts=ActivationCode.failed_attempts + 1))
    s.execute(update(ActivationCode)
              .where(ActivationCode.user_id == user_id, ActivationCode.slot == slot,
                     ActivationCode.used_at.is_(None), ActivationCode.revoked_at.is_(None),
                     ActivationCode.locked_at.is_(None),
                     ActivationCode.failed_attempts >= limit)
              .values(locked_at=utcnow()))


def has_active_certificate(s: Session | Connection, user_id: int, slot: int) -> bool:
    return s.execute(_ACTIVE_CERTIFICATE, {"user_id": user_id, "slot": slot}).first() is not None
