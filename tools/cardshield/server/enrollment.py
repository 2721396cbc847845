"""Certificate enrollment, patent figure 5 (steps 501-512), as a server-driven session.

    start            501-502  the bank's activation code for this user and slot is checked
                              and consumed; SELECT + GENERATE ASYMMETRIC KEY PAIR (PIN at
                              the terminal)
    keygen_sent      503-506  card answers FCI + new public key; key-quality checks;
                     507      READ PUBLIC KEY + PROVE POSSESSION + ATTEST, both over one
                              one-time challenge
    pop_sent         508-510  read-back key must equal the generated one; challenge
                              consumed once; proof verified (claim 7); the card attestation
                              verified (registered card, chain to a trusted attestation CA,
                              statement about this key, slot and challenge, slot policy
                              meeting the bank's); the card bound to the user; certificate
                              issued
                     511      PUT DATA chain + SELECT EF + READ BINARY read-back
    cert_sent        512      read-back must equal the issued DER: certificate active

Only users the bank created can enroll, each time with a fresh activation code; a code
issued without `replace` cannot supersede an active certificate (activation.py).

Each post must come from the terminal that started the session and carry the pending
batch's `seq`. A post is checked on a read snapshot (the CPU: parsing, key checks, proof
of possession, attestation, the CA signature, the next batch), then written in one short
transaction that re-checks by compare-and-set what may have changed since (EnrollmentService;
on PostgreSQL both in one transaction: check_and_write).
Every certificate sent to a card is in the certificates table (pending_store) from the
transaction whose answer carries it; a post refused after the signature discards its
certificate unsent. An enrollment that is restarted, expires or fails revokes its pending
certificate, so nothing issued is ever unaccounted for.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from cardshield.attestation.verify import AttestationError, verify_attestation
from cardshield.protocol import fci as fci_codec
from cardshield.protocol import keys as key_codec
from cardshield.protocol.attestation import parse_attest_response
from cardshield.protocol.constants import SlotPolicy
from cardshield.protocol.tlv import TLVError
from cardshield.protocol.transaction import possession_data

from . import activation, audit, card_commands, keyquality, limits
from .batches import Batch, card_data, stored_json
from .clock import utcnow
from .context import ServerContext
from .errors import ApiError
from .models import Card, Certificate, Challenge, Enrollment, RegisteredCard, User
from .registry import bind_card
from .users import find_user

OPEN_STATES = ("keygen_sent", "pop_sent", "cert_sent")
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CHALLENGE_BYTES = 32
# Refusals after which the session cannot continue (the terminal must start again).
# A card status word (card_error, e.g. a PIN problem) leaves the batch pending instead.
FATAL_CODES = frozenset({
    "card_response_malformed", "weak_key", "public_key_mismatch",
    "proof_of_possession_failed", "challenge_expired", "certificate_readback_mismatch",
    "key_already_enrolled", "attestation_required", "attestation_malformed",
    "attestation_untrusted", "attestation_signature_invalid", "attestation_challenge_mismatch",
    "attestation_key_mismatch", "attestation_card_mismatch", "attestation_slot_mismatch",
    "attestation_policy_insufficient", "card_not_registered", "card_revoked",
    "card_bound_to_another_user", "replacement_not_authorized",
})
# ATTEST answers of a card that cannot attest: INS not supported (an applet without ATTEST),
# no attestation key (personalized without one).
NO_ATTESTATION_SW = (b"\x6d\x00", b"\x6a\x88")
ACTIVATION_REFUSALS = frozenset({
    "activation_code_not_issued", "activation_code_invalid", "activation_code_locked",
    "activation_code_expired", "replacement_not_authorized"})


@dataclass(frozen=True)
class CardEvidence:
    """What the card proved about the new key: attested by a registered card, or not."""
    registry_card_id: str | None
    attested: bool
    policy: int | None
    requires_server_signature: bool
    counter: int
    attestation: bytes | None


@dataclass
class EnrollmentView:
    enrollment_id: str
    state: str
    expires_at: datetime
    batch: dict | None
    certificate_serial: str | None = None
    certificate_der: bytes | None = None
    failure_code: str | None = None


def _view(e: Enrollment, der: bytes | None = None) -> EnrollmentView:
    return EnrollmentView(e.id, e.state, e.expires_at,
                          stored_json(e.pending_batch),
                          e.certificate_serial_hex, der, e.failure_code)


def _public_key_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _revoke_pending(session: Session, enrollment: Enrollment, reason: str) -> None:
    if enrollment.certificate_serial_hex:
        session.execute(update(Certificate)
                        .where(Certificate.serial_hex == enrollment.certificate_serial_hex,
                               Certificate.status == "pending_store")
                        .values(status="revoked", revoked_at=utcnow(), revocation_reason=reason))


def _replacement_refused(slot: int) -> ApiError:
    return ApiError("replacement_not_authorized",
                    f"the user has an active certificate for slot {slot}; replacing it needs an "
                    "activation code the bank issued for a replacement")


def sweep_expired(s: Session, limit: int = 500) -> list[str]:
    """Expire overdue open enrollments and revoke their unconfirmed certificates, so a
    session abandoned after issuance leaves a revoked (and listed) certificate, not a
    pending one. Runs before every CRL and from `cardshield server sweep`."""
    now = utcnow()
    swept = []
    for e in s.scalars(select(Enrollment).where(Enrollment.state.in_(OPEN_STATES),
                                                Enrollment.expires_at <= now).limit(limit)):
        e.state, e.pending_batch, e.updated_at = "expired", None, now
        _revoke_pending(s, e, "cessation_of_operation")
        audit.record(s, "enrollment.expire", "ok", enrollment_id=e.id,
                     serial_hex=e.certificate_serial_hex, detail="session expired unfinished")
        swept.append(e.id)
    return swept


# The statements of every enrollment step, built once as plain Core with bind parameters
# (SQLAlchemy compiles each once); the ORM stays for the rare paths (refusals, resume, sweep).
ENROLLMENTS, CHALLENGES = Enrollment.__table__, Challenge.__table__
CARDS, CERTIFICATES, USERS = Card.__table__, Certificate.__table__, User.__table__
REGISTERED_CARDS = RegisteredCard.__table__
# The session with its user's external id: what a step checks before it writes.
_SESSION = (select(ENROLLMENTS, USERS.c.external_id.label("user_external_id"))
            .join(USERS, USERS.c.id == ENROLLMENTS.c.user_id)
            .where(ENROLLMENTS.c.id == bindparam("enrollment_id")))
_LATEST_UNUSED_CHALLENGE = (select(CHALLENGES.c.id, CHALLENGES.c.value, CHALLENGES.c.expires_at)
                            .where(CHALLENGES.c.enrollment_id == bindparam("enrollment_id"),
                                   CHALLENGES.c.used_at.is_(None))
                            .order_by(CHALLENGES.c.id.desc()).limit(1))
_REGISTERED_CARD = (select(REGISTERED_CARDS.c.status, REGISTERED_CARDS.c.bound_user_id,
                           REGISTERED_CARDS.c.attestation_certificate_der)
                    .where(REGISTERED_CARDS.c.card_id_hex == bindparam("card_id")))
_KEY_ENROLLED = select(CARDS.c.id).where(CARDS.c.key_sha256 == bindparam("key_sha256")).limit(1)
_ISSUED = (select(CERTIFICATES.c.sha256, CERTIFICATES.c.der, CERTIFICATES.c.card_id)
           .where(CERTIFICATES.c.serial_hex == bindparam("serial_hex")))
_SUPERSEDED = (select(CERTIFICATES.c.serial_hex)
               .where(CERTIFICATES.c.user_id == bindparam("user_id"),
                      CERTIFICATES.c.slot == bindparam("slot"), CERTIFICATES.c.status == "active"))
_REVOKE_SUPERSEDED = (update(CERTIFICATES)  # bind names differ from the columns it sets
                      .where(CERTIFICATES.c.user_id == bindparam("owner_id"),
                             CERTIFICATES.c.slot == bindparam("slot_number"),
                             CERTIFICATES.c.status == "active")
                      .values(status="revoked", revoked_at=bindparam("now"),
                              revocation_reason="superseded"))
_CONFIRM = (update(CERTIFICATES)
            .where(CERTIFICATES.c.serial_hex == bindparam("serial"),
                   CERTIFICATES.c.status == "pending_store")
            .values(status="active", stored_at=bindparam("now")))
_UNFINISHED = (select(ENROLLMENTS.c.id)
               .where(ENROLLMENTS.c.user_id == bindparam("user_id"),
                      ENROLLMENTS.c.slot == bindparam("slot"), ENROLLMENTS.c.state.in_(OPEN_STATES))
               .limit(1))
_INSERT_ENROLLMENT, _INSERT_CHALLENGE = insert(ENROLLMENTS), insert(CHALLENGES)
_INSERT_CARD, _INSERT_CERTIFICATE = insert(CARDS), insert(CERTIFICATES)
_USE_CHALLENGE = (update(CHALLENGES).where(CHALLENGES.c.id == bindparam("challenge_id"),
                                           CHALLENGES.c.used_at.is_(None))
                  .values(used_at=bindparam("now")))


def _advance(*columns: str):
    """The step's compare-and-set: from the state and batch the checks saw to the next,
    setting `columns` too, while the session is unexpired; a post that lost a race to
    another (or to the clock) finds no row."""
    return (update(ENROLLMENTS)
            .where(ENROLLMENTS.c.id == bindparam("enrollment_id"),
                   ENROLLMENTS.c.state == bindparam("from_state"),
                   ENROLLMENTS.c.seq == bindparam("from_seq"),
                   ENROLLMENTS.c.expires_at > bindparam("now"))
            .values(state=bindparam("to_state"), seq=bindparam("to_seq"),
                    pending_batch=bindparam("to_batch"), updated_at=bindparam("now"),
                    **{c: bindparam("to_" + c) for c in columns}))


_ADVANCE_AFTER_KEYGEN = _advance("public_key_der", "requires_server_signature",
                                 "bank_key_algorithm")
_ADVANCE_AFTER_ISSUE = _advance("certificate_serial_hex")
_ADVANCE = _advance()


@dataclass
class Post:
    """The card's answers to a batch, and how far their checks went (for the refusal)."""
    terminal_id: int
    enrollment_id: str
    seq: int
    responses: list[bytes]
    user_id: int | None = None
    expired: bool = False
    fatal_possible: bool = False


@dataclass(frozen=True)
class _Checked:
    """A post that passed every check on a snapshot, with what its transaction writes:
    `write(connection, checked)` re-checks under the row lock what may have changed since
    (compare-and-sets) and records it."""
    enrollment: object  # the enrollments row (+ user_external_id) as the checks read it
    write: Callable
    batch: Batch | None = None
    values: dict = field(default_factory=dict)


class EnrollmentService:
    """Each post is checked on a read snapshot first (card answers parsed, proof of
    possession and attestation verified, the certificate signed, the next batch composed:
    the CPU of a step), then written in one short transaction that re-checks by
    compare-and-set whatever may have changed since. On SQLite that transaction is the
    writer's (one at a time), so the CPU-heavy part stays out of it."""

    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    # -- 501/502 ------------------------------------------------------------------------
    def start(self, terminal_id: int, user_external_id: str, slot: int,
              card_label: str, activation_code: str) -> EnrollmentView:
        if not limits.USER_ID_PATTERN.fullmatch(user_external_id):
            raise ApiError("invalid_request", "user_id must be 1-64 of A-Z a-z 0-9 . _ @ -")
        if not LABEL_PATTERN.fullmatch(card_label):
            raise ApiError("invalid_request", "card_label must be 1-64 of A-Z a-z 0-9 . _ -")
        if slot not in (1, 2):
            raise ApiError("invalid_request", "slot must be 1 (payment) or 2 (authentication)")
        first_batch = Batch(1, "generate_key", [
            card_commands.select_applet(), card_commands.generate_key(slot)],
            ["PIN required: verify the PIN at the terminal before GENERATE"])

        seen: dict = {}

        def work(session: Session) -> EnrollmentView:
            s = session.connection()
            user = find_user(s, user_external_id, lock=True)
            seen["user_id"] = user.id
            limits.ensure_user_not_blocked(user)
            code = activation.consume_code(self.ctx, s, user.id, slot, activation_code)
            if not code.replace and activation.has_active_certificate(s, user.id, slot):
                raise ApiError("replacement_not_authorized",
                               f"{user_external_id} has an active certificate for slot {slot}; "
                               "replacing it needs an activation code the bank issued for a "
                               "replacement")
            audit.record(s, "activation_code.use", "ok", client_id=terminal_id,
                         user=user_external_id, detail=f"slot {slot}")
            now = utcnow()
            # A new enrollment for the same user and slot replaces any unfinished one (rare:
            # then through the ORM, on the same connection).
            unfinished = s.execute(_UNFINISHED, {"user_id": user.id, "slot": slot}).first()
            for old in session.scalars(select(Enrollment).where(
                    Enrollment.user_id == user.id, Enrollment.slot == slot,
                    Enrollment.state.in_(OPEN_STATES))) if unfinished else ():
                old.state, old.updated_at, old.pending_batch = "aborted", now, None
                _revoke_pending(session, old, "superseded")
                audit.record(s, "enrollment.abort", "ok", client_id=terminal_id,
                             user=user_external_id, enrollment_id=old.id,
                             serial_hex=old.certificate_serial_hex,
                             detail="replaced by a new enrollment")
            session.flush()
            enrollment_id = secrets.token_hex(16)
            expires_at = now + timedelta(seconds=self.ctx.settings.enrollment_ttl_seconds)
            s.execute(_INSERT_ENROLLMENT, dict(
                id=enrollment_id, user_id=user.id, terminal_client_id=terminal_id, slot=slot,
                card_label=card_label, state="keygen_sent", seq=1, pending_batch=first_batch.dumps(),
                public_key_der=None, requires_server_signature=False, bank_key_algorithm=None,
                activation_code_id=code.id,
                replace_authorized=code.replace, certificate_serial_hex=None, failure_code=None,
                created_at=now, updated_at=now, expires_at=expires_at))
            audit.record(s, "enrollment.start", "ok", client_id=terminal_id,
                         user=user_external_id, enrollment_id=enrollment_id)
            return EnrollmentView(enrollment_id, "keygen_sent", expires_at, first_batch.to_json())

        def on_refusal(s: Session, err: ApiError) -> None:
            if err.code == "activation_code_invalid":
                activation.count_wrong_code(self.ctx, s, seen["user_id"], slot)
            action = ("activation_code.use" if err.code in ACTIVATION_REFUSALS
                      else "enrollment.start")
            audit.record(s, action, "refused", code=err.code, client_id=terminal_id,
                         user=user_external_id, detail=err.message)

        return self.ctx.run(work, on_refusal)

    # -- resume ---------------------------------------------------------------------------
    def get(self, terminal_id: int, enrollment_id: str) -> EnrollmentView:
        with self.ctx.db.transaction() as s:
            e = self._load(s, terminal_id, enrollment_id)
            self._expire_if_due(s, e)
            der = None
            if e.state == "completed" and e.certificate_serial_hex:
                der = s.scalar(select(Certificate.der).where(
                    Certificate.serial_hex == e.certificate_serial_hex))
            return _view(e, der)

    def _load(self, s: Session, terminal_id: int, enrollment_id: str) -> Enrollment:
        e = s.scalar(select(Enrollment).where(Enrollment.id == enrollment_id).with_for_update())
        if e is None:
            raise ApiError("not_found", f"no enrollment {enrollment_id}")
        if e.terminal_client_id != terminal_id:
            raise ApiError("wrong_terminal", "this enrollment belongs to another terminal")
        return e

    def _expire_if_due(self, s: Session, e: Enrollment) -> bool:
        if e.state in OPEN_STATES and e.expires_at <= utcnow():
            e.state, e.pending_batch, e.updated_at = "expired", None, utcnow()
            _revoke_pending(s, e, "cessation_of_operation")
            return True
        return False

    # -- 505/506, 509/510, 512 ------------------------------------------------------------
    def post_responses(self, terminal_id: int, enrollment_id: str, seq: int,
                       responses: list[bytes]) -> EnrollmentView:
        """The card's answers to the pending batch: checked, then written (see the class)."""
        post = Post(terminal_id, enrollment_id, seq, responses)
        try:
            checked = self.check(post)
        except ApiError as refusal:
            self.record_refusal(post, refusal)
            raise
        return self.write(post, checked)

    async def post_responses_async(self, terminal_id: int, enrollment_id: str, seq: int,
                                   responses: list[bytes]) -> EnrollmentView:
        """post_responses for the event loop: the checks on a read snapshot (never the
        writer), the writes through Database.run (SQLite: the writer's group commit)."""
        db, post = self.ctx.db, Post(terminal_id, enrollment_id, seq, responses)
        if not db.is_sqlite:
            return await db.run(self.check_and_write, post)
        try:
            checked = await db.run_read(self.check, post)
        except ApiError as refusal:
            await db.run(self.record_refusal, post, refusal)
            raise
        return await db.run(self.write, post, checked)

    def check_and_write(self, post: Post) -> EnrollmentView:
        """post_responses in one transaction, for PostgreSQL: the checks read at the start of
        the write transaction instead of a snapshot of their own. Under READ COMMITTED each
        statement sees the latest commits and the checks' reads take no lock, so the write's
        compare-and-sets re-check exactly as after a separate snapshot; this saves a
        transaction and a pool-thread hop per post. (On SQLite the checks stay off the one
        writer: there they are the CPU the writer must not hold.)"""
        def work(session: Session) -> EnrollmentView:
            c = session.connection()
            checked = self._check_on(c, post)
            return checked.write(c, checked)
        return self.ctx.run(work, partial(self._on_refusal, post))

    def check(self, post: Post) -> _Checked:
        """Every check of the post on a read snapshot, in the order the API documents;
        nothing written."""
        with self.ctx.db.read() as c:
            return self._check_on(c, post)

    def _check_on(self, c: Connection, post: Post) -> _Checked:
        """The checks of `check`, on the connection given."""
        e = c.execute(_SESSION, {"enrollment_id": post.enrollment_id}).first()
        if e is None:
            raise ApiError("not_found", f"no enrollment {post.enrollment_id}")
        if e.terminal_client_id != post.terminal_id:
            raise ApiError("wrong_terminal", "this enrollment belongs to another terminal")
        post.user_id = e.user_id
        if e.state in OPEN_STATES and e.expires_at <= utcnow():
            post.expired = True
            raise ApiError("enrollment_expired", "the enrollment session expired; start again")
        if e.state not in OPEN_STATES:
            raise ApiError("session_closed", f"the enrollment is {e.state}; start a new one")
        if post.seq != e.seq:
            raise ApiError("stale_step", f"these responses answer batch {post.seq}, but "
                                         f"batch {e.seq} is pending")
        batch = Batch.loads(e.pending_batch)
        data = self._card_data(e.state, batch, post.responses)
        post.fatal_possible = True
        step = {"keygen_sent": self._check_keygen, "pop_sent": self._check_possession,
                "cert_sent": self._check_readback}[e.state]
        try:
            return step(c, e, batch, data)
        except ApiError as refusal:
            # PostgreSQL reads each statement at READ COMMITTED: another post of this batch
            # may have committed since the session was read, and its writes (the challenge
            # used, the key enrolled) refuse this one. That post won; this one is stale and
            # must not fail the session (SQLite's snapshot never sees this).
            now = c.execute(_SESSION, {"enrollment_id": post.enrollment_id}).first()
            if (now.state, now.seq) != (e.state, e.seq):
                raise ApiError("stale_step", f"batch {e.seq} was answered meanwhile; fetch the "
                                             "enrollment's state") from refusal
            raise

    def write(self, post: Post, checked: _Checked) -> EnrollmentView:
        """The checked post's one transaction (a refusal in it is recorded like the checks')."""
        return self.ctx.run(lambda session: checked.write(session.connection(), checked),
                            partial(self._on_refusal, post))

    def record_refusal(self, post: Post, refusal: ApiError) -> None:
        """A refusal found by the checks, recorded in its own transaction (as ctx.run does)."""
        with self.ctx.db.transaction() as s:
            self._on_refusal(post, s, refusal)

    def _on_refusal(self, post: Post, s: Session, err: ApiError) -> None:
        if post.expired or (post.fatal_possible and err.code in FATAL_CODES):
            e = s.get(Enrollment, post.enrollment_id)
            if e is not None and e.state in OPEN_STATES:
                e.state = "expired" if post.expired else "failed"
                e.failure_code, e.pending_batch, e.updated_at = err.code, None, utcnow()
                _revoke_pending(s, e, "cessation_of_operation")
        if post.user_id is not None:
            limits.register_failure(s, err.code, self.ctx.settings.max_consecutive_failures,
                                    user_id=post.user_id, card_id=None)
        audit.record(s, "enrollment.step", "refused", code=err.code, client_id=post.terminal_id,
                     enrollment_id=post.enrollment_id, detail=err.message)

    @staticmethod
    def _advance(s: Connection, statement, checked: _Checked, to_state: str, now: datetime,
                 **columns) -> None:
        e, batch = checked.enrollment, checked.batch
        moved = s.execute(statement, {
            "enrollment_id": e.id, "from_state": e.state, "from_seq": e.seq, "to_state": to_state,
            "to_seq": batch.seq if batch else e.seq, "to_batch": batch.dumps() if batch else None,
            "now": now, **{"to_" + name: value for name, value in columns.items()}}).rowcount
        if moved != 1:  # another post of the same batch committed first, or time ran out
            raise ApiError("stale_step", f"batch {e.seq} was answered meanwhile or the session "
                                         "expired; fetch the enrollment's state")

    def _card_data(self, state: str, batch: Batch, responses: list[bytes]) -> list:
        """card_data, except that in the attestation step an ATTEST the card cannot answer
        (NO_ATTESTATION_SW) becomes None: unattested, which the checks refuse unless the
        settings allow it."""
        if (state == "pop_sent" and len(responses) == len(batch.apdus)
                and batch.apdus[-1].name == card_commands.ATTEST_NAME
                and responses[-1][-2:] in NO_ATTESTATION_SW):
            return card_data(Batch(batch.seq, batch.step, batch.apdus[:-1]), responses[:-1]) + [None]
        return card_data(batch, responses)

    # keygen_sent: 505/506, then 507
    def _check_keygen(self, c: Connection, e, batch: Batch, data: list[bytes]) -> _Checked:
        try:
            card = fci_codec.parse_fci(data[0])
            public_key = key_codec.parse_public_key(data[1])
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed", f"card response unreadable: {exc}") from exc
        keyquality.check_public_key(public_key)
        # The FCI is relayed unauthenticated: its policy counts only for an unattested key
        # (allowed by settings); an attested key's policy comes from the attestation.
        slot_info = card.slots.get(e.slot)
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        # ATTEST last: a card that cannot attest fails only the last command (see _card_data)
        return _Checked(e, self._write_keygen, Batch(e.seq + 1, "prove_possession", [
            card_commands.read_public_key(e.slot),
            card_commands.prove_possession(e.slot, challenge),
            card_commands.attest(e.slot, challenge)],
            ["PIN required before PROVE POSSESSION if the card's PIN session was reset",
             "ATTEST: the card's signed statement that it generated this key"]), dict(
            challenge=challenge, public_key_der=_public_key_der(public_key),
            requires_server_signature=bool(
                slot_info and SlotPolicy.SERVER_SIGNED_REQUESTS in slot_info.policy),
            # which of the bank's request keys signs this card's 8E (server/bank_signature.py)
            bank_key_algorithm=int(card.server_key_algorithm) or None))

    def _write_keygen(self, s: Connection, checked: _Checked) -> EnrollmentView:
        now, values = utcnow(), checked.values
        self._advance(s, _ADVANCE_AFTER_KEYGEN, checked, "pop_sent", now,
                      public_key_der=values["public_key_der"],
                      requires_server_signature=values["requires_server_signature"],
                      bank_key_algorithm=values["bank_key_algorithm"])
        s.execute(_INSERT_CHALLENGE, dict(
            enrollment_id=checked.enrollment.id, value=values["challenge"], used_at=None,
            expires_at=now + timedelta(seconds=self.ctx.settings.challenge_ttl_seconds)))
        return self._next_view(checked, "pop_sent")

    # pop_sent: 508-510, then 511
    def _check_possession(self, c: Connection, e, batch: Batch, data: list) -> _Checked:
        try:
            read_key = key_codec.parse_public_key(data[0])
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed", f"public key unreadable: {exc}") from exc
        if _public_key_der(read_key) != e.public_key_der:
            raise ApiError("public_key_mismatch",
                           "the card's public key differs from the one it generated")
        now = utcnow()
        challenge = c.execute(_LATEST_UNUSED_CHALLENGE, {"enrollment_id": e.id}).first()
        if challenge is None:
            raise ApiError("proof_of_possession_failed", "no unused challenge for this session")
        if challenge.expires_at <= now:
            raise ApiError("challenge_expired", "the proof-of-possession challenge expired")
        try:
            read_key.verify(data[1], possession_data(challenge.value), padding.PKCS1v15(),
                            hashes.SHA256())
        except InvalidSignature as exc:
            raise ApiError("proof_of_possession_failed",
                           "the card's signature over the challenge does not verify with the "
                           "generated key") from exc
        evidence = self._attestation(c, e, data[2], challenge.value, data[0], now)
        key_sha = hashlib.sha256(e.public_key_der).hexdigest()
        self._ensure_key_new(c, key_sha)
        self._ensure_replacement_authorized(c, e)
        issued = self.ctx.ca.issue(read_key, user_external_id=e.user_external_id,
                                   card_label=e.card_label, slot=e.slot,
                                   card_id=evidence.registry_card_id, attested=evidence.attested)
        return _Checked(e, self._write_issue, Batch(
            e.seq + 1, "store_certificate",
            [card_commands.select_applet()] + card_commands.put_certificate(e.slot, issued.der)
            + card_commands.read_certificate(e.slot, len(issued.der)),
            ["the READ BINARY responses are the read-back that confirms the write"]),
            dict(challenge_id=challenge.id, evidence=evidence, key_sha256=key_sha, issued=issued))

    def _write_issue(self, s: Connection, checked: _Checked) -> EnrollmentView:
        """The challenge consumed once, the key still new, the replacement still authorized,
        the card bound (compare-and-set), then the card and certificate rows: every issued
        certificate is recorded (pending_store) before it is sent to the card."""
        e, values, now = checked.enrollment, checked.values, utcnow()
        evidence, issued = values["evidence"], values["issued"]
        self._advance(s, _ADVANCE_AFTER_ISSUE, checked, "cert_sent", now,
                      certificate_serial_hex=issued.serial_hex)
        if s.execute(_USE_CHALLENGE, {"challenge_id": values["challenge_id"], "now": now}).rowcount != 1:
            raise ApiError("proof_of_possession_failed", "the challenge was already used")
        self._ensure_key_new(s, values["key_sha256"])
        self._ensure_replacement_authorized(s, e)
        if evidence.registry_card_id is not None:
            bind_card(s, evidence.registry_card_id, e.user_id)
        card_id = s.execute(_INSERT_CARD, dict(
            user_id=e.user_id, slot=e.slot, label=e.card_label, public_key_der=e.public_key_der,
            key_sha256=values["key_sha256"],
            requires_server_signature=evidence.requires_server_signature,
            registry_card_id=evidence.registry_card_id, attested=evidence.attested,
            attested_policy=evidence.policy, attestation=evidence.attestation,
            bank_key_algorithm=e.bank_key_algorithm,
            last_counter=evidence.counter, consecutive_failures=0, blocked_at=None,
            created_at=now)).inserted_primary_key[0]
        s.execute(_INSERT_CERTIFICATE, dict(
            serial_hex=issued.serial_hex, user_id=e.user_id, card_id=card_id, enrollment_id=e.id,
            slot=e.slot, der=issued.der, sha256=hashlib.sha256(issued.der).hexdigest(),
            status="pending_store", not_before=issued.not_before, not_after=issued.not_after,
            issued_at=now, stored_at=None, revoked_at=None, revocation_reason=None))
        audit.record(s, "certificate.issue", "ok", client_id=e.terminal_client_id,
                     user=e.user_external_id, card_id=card_id, enrollment_id=e.id,
                     serial_hex=issued.serial_hex,
                     detail=f"attested by card {evidence.registry_card_id}" if evidence.attested
                     else "UNATTESTED key (allowed by settings)")
        return self._next_view(checked, "cert_sent", serial=issued.serial_hex)

    def _attestation(self, c: Connection, e, response: bytes | None, challenge: bytes,
                     public_key_do: bytes, now: datetime) -> CardEvidence:
        """Verify the ATTEST response (None: the card could not attest)."""
        if response is None:
            if not self.ctx.settings.allow_unattested_enrollment:
                raise ApiError("attestation_required",
                               "the card cannot attest that it generated this key, and this "
                               "server enrolls attested keys only")
            return CardEvidence(None, False, None, e.requires_server_signature, -1, None)
        try:
            card_id = parse_attest_response(response)[0].card_id.hex().upper()
        except TLVError as exc:
            raise ApiError("attestation_malformed", f"the ATTEST response is malformed: {exc}") from exc
        card = c.execute(_REGISTERED_CARD, {"card_id": card_id}).first()
        if card is None:
            raise ApiError("card_not_registered",
                           f"card {card_id} is not in the bank's card registry")
        if card.status != "active":
            raise ApiError("card_revoked", f"card {card_id} is revoked in the card registry")
        if card.bound_user_id not in (None, e.user_id):
            raise ApiError("card_bound_to_another_user",
                           f"card {card_id} is registered to another user")
        try:
            verified = verify_attestation(
                response, card_certificate=x509.load_der_x509_certificate(
                    card.attestation_certificate_der),
                trust_roots=self.ctx.attestation_roots, challenge=challenge,
                public_key_do=public_key_do, slot=e.slot, now=now)
        except AttestationError as exc:
            raise ApiError(exc.code, exc.message) from exc
        statement = verified.statement
        required = self.ctx.settings.required_slot_policy.get(e.slot, 0)
        if statement.policy & required != required:
            raise ApiError("attestation_policy_insufficient",
                           f"slot {e.slot} policy {statement.policy:02X} on the card lacks bits "
                           f"{required & ~statement.policy:02X} the bank requires "
                           "(01 PIN per signature, 02 server-signed requests)")
        return CardEvidence(card_id, True, statement.policy,
                            bool(statement.policy & SlotPolicy.SERVER_SIGNED_REQUESTS),
                            statement.counter, response)

    @staticmethod
    def _ensure_key_new(s: Connection, key_sha256: str) -> None:
        if s.execute(_KEY_ENROLLED, {"key_sha256": key_sha256}).first() is not None:
            raise ApiError("key_already_enrolled",
                           "this public key is already enrolled; generate a new key")

    @staticmethod
    def _ensure_replacement_authorized(s: Connection, e) -> None:
        if not e.replace_authorized and activation.has_active_certificate(s, e.user_id, e.slot):
            raise _replacement_refused(e.slot)

    # cert_sent: 512
    def _check_readback(self, c: Connection, e, batch: Batch, data: list[bytes]) -> _Checked:
        cert = c.execute(_ISSUED, {"serial_hex": e.certificate_serial_hex}).first()
        first_read = next(i for i, a in enumerate(batch.apdus) if a.name.startswith("READ BINARY"))
        readback = b"".join(data[first_read:])
        if hashlib.sha256(readback).hexdigest() != cert.sha256:
            raise ApiError("certificate_readback_mismatch",
                           "the certificate read back from the card differs from the issued one")
        return _Checked(e, self._write_readback, None, dict(certificate=cert))

    def _write_readback(self, s: Connection, checked: _Checked) -> EnrollmentView:
        e, cert, now = checked.enrollment, checked.values["certificate"], utcnow()
        self._advance(s, _ADVANCE, checked, "completed", now)
        # The new certificate replaces the user's previous one for this slot, if the
        # activation code authorized a replacement (a concurrent enrollment may have
        # completed since this one was issued): one read for both.
        superseded = s.scalars(_SUPERSEDED, {"user_id": e.user_id, "slot": e.slot}).all()
        if superseded and not e.replace_authorized:
            raise _replacement_refused(e.slot)
        if superseded:
            s.execute(_REVOKE_SUPERSEDED, {"owner_id": e.user_id, "slot_number": e.slot, "now": now})
        for serial in superseded:
            audit.record(s, "certificate.revoke", "ok", user=e.user_external_id,
                         serial_hex=serial, detail="superseded by a new enrollment")
        if s.execute(_CONFIRM, {"serial": e.certificate_serial_hex, "now": now}).rowcount != 1:
            raise ApiError("session_closed", "the issued certificate was revoked before the card "
                                             "confirmed it; start a new enrollment")
        limits.reset_failures(s, user_id=e.user_id)
        audit.record(s, "enrollment.complete", "ok", client_id=e.terminal_client_id,
                     user=e.user_external_id, card_id=cert.card_id, enrollment_id=e.id,
                     serial_hex=e.certificate_serial_hex)
        return EnrollmentView(e.id, "completed", e.expires_at, None, e.certificate_serial_hex,
                              cert.der, None)

    @staticmethod
    def _next_view(checked: _Checked, state: str, serial: str | None = None) -> EnrollmentView:
        e = checked.enrollment
        return EnrollmentView(e.id, state, e.expires_at, checked.batch.to_json(),
                              serial or e.certificate_serial_hex, None, None)
