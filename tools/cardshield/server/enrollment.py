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
batch's `seq`. Every issued certificate is in the certificates table from the moment it
is signed (pending_store); an enrollment that is restarted, expires or fails revokes its
pending certificate, so nothing issued is ever unaccounted for.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select, update
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


class EnrollmentService:
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

        seen: dict = {}

        def work(s: Session) -> EnrollmentView:
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
            # A new enrollment for the same user and slot replaces any unfinished one.
            for old in s.scalars(select(Enrollment).where(
                    Enrollment.user_id == user.id, Enrollment.slot == slot,
                    Enrollment.state.in_(OPEN_STATES))):
                old.state, old.updated_at, old.pending_batch = "aborted", now, None
                _revoke_pending(s, old, "superseded")
                audit.record(s, "enrollment.abort", "ok", client_id=terminal_id,
                             user=user_external_id, enrollment_id=old.id,
                             serial_hex=old.certificate_serial_hex,
                             detail="replaced by a new enrollment")
            e = Enrollment(id=secrets.token_hex(16), user_id=user.id,
                           terminal_client_id=terminal_id, slot=slot, card_label=card_label,
                           activation_code_id=code.id, replace_authorized=code.replace,
                           state="keygen_sent", seq=1, created_at=now, updated_at=now,
                           expires_at=now + timedelta(seconds=self.ctx.settings.enrollment_ttl_seconds))
            e.pending_batch = Batch(1, "generate_key", [
                card_commands.select_applet(), card_commands.generate_key(slot)],
                ["PIN required: verify the PIN at the terminal before GENERATE"]).dumps()
            s.add(e)
            audit.record(s, "enrollment.start", "ok", client_id=terminal_id,
                         user=user_external_id, enrollment_id=e.id)
            return _view(e)

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
        state: dict = {}

        def work(s: Session) -> EnrollmentView:
            e = self._load(s, terminal_id, enrollment_id)
            state["user_id"] = e.user_id
            if self._expire_if_due(s, e):
                state["expired"] = True
                raise ApiError("enrollment_expired", "the enrollment session expired; start again")
            if e.state not in OPEN_STATES:
                raise ApiError("session_closed", f"the enrollment is {e.state}; start a new one")
            if seq != e.seq:
                raise ApiError("stale_step", f"these responses answer batch {seq}, but batch "
                                             f"{e.seq} is pending")
            data = self._card_data(e, Batch.loads(e.pending_batch), responses)
            state["fatal_possible"] = True
            step = {"keygen_sent": self._on_keygen, "pop_sent": self._on_possession,
                    "cert_sent": self._on_readback}[e.state]
            der = step(s, e, data)
            e.updated_at = utcnow()
            return _view(e, der)

        def on_refusal(s: Session, err: ApiError) -> None:
            user_id = state.get("user_id")
            if state.get("expired") or (state.get("fatal_possible") and err.code in FATAL_CODES):
                e = s.get(Enrollment, enrollment_id)
                if e is not None and e.state in OPEN_STATES:
                    e.state = "expired" if state.get("expired") else "failed"
                    e.failure_code, e.pending_batch, e.updated_at = err.code, None, utcnow()
                    _revoke_pending(s, e, "cessation_of_operation")
            if user_id is not None:
                limits.register_failure(s, err.code, self.ctx.settings.max_consecutive_failures,
                                        user_id=user_id, card_id=None)
            audit.record(s, "enrollment.step", "refused", code=err.code, client_id=terminal_id,
                         enrollment_id=enrollment_id, detail=err.message)

        return self.ctx.run(work, on_refusal)

    def _card_data(self, e: Enrollment, batch: Batch, responses: list[bytes]) -> list:
        """card_data, except that in the attestation step an ATTEST the card cannot answer
        (NO_ATTESTATION_SW) becomes None: unattested, which _on_possession refuses unless
        the settings allow it."""
        if (e.state == "pop_sent" and len(responses) == len(batch.apdus)
                and batch.apdus[-1].name == card_commands.ATTEST_NAME
                and responses[-1][-2:] in NO_ATTESTATION_SW):
            return card_data(Batch(batch.seq, batch.step, batch.apdus[:-1]), responses[:-1]) + [None]
        return card_data(batch, responses)

    def _on_keygen(self, s: Session, e: Enrollment, data: list[bytes]) -> None:
        try:
            card = fci_codec.parse_fci(data[0])
            public_key = key_codec.parse_public_key(data[1])
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed", f"card response unreadable: {exc}") from exc
        keyquality.check_public_key(public_key)
        # The FCI is relayed unauthenticated: its policy counts only for an unattested key
        # (allowed by settings); an attested key's policy comes from the attestation.
        slot_info = card.slots.get(e.slot)
        e.requires_server_signature = bool(
            slot_info and SlotPolicy.SERVER_SIGNED_REQUESTS in slot_info.policy)
        # which of the bank's request keys signs this card's 8E (server/bank_signature.py)
        e.bank_key_algorithm = int(card.server_key_algorithm) or None
        e.public_key_der = _public_key_der(public_key)
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        s.add(Challenge(enrollment_id=e.id, value=challenge,
                        expires_at=utcnow() + timedelta(seconds=self.ctx.settings.challenge_ttl_seconds)))
        e.seq += 1
        e.state = "pop_sent"
        # ATTEST last: a card that cannot attest fails only the last command (see _card_data)
        e.pending_batch = Batch(e.seq, "prove_possession", [
            card_commands.read_public_key(e.slot),
            card_commands.prove_possession(e.slot, challenge),
            card_commands.attest(e.slot, challenge)],
            ["PIN required before PROVE POSSESSION if the card's PIN session was reset",
             "ATTEST: the card's signed statement that it generated this key"]).dumps()

    def _on_possession(self, s: Session, e: Enrollment, data: list[bytes]) -> None:
        try:
            read_key = key_codec.parse_public_key(data[0])
        except (TLVError, ValueError) as exc:
            raise ApiError("card_response_malformed", f"public key unreadable: {exc}") from exc
        if _public_key_der(read_key) != e.public_key_der:
            raise ApiError("public_key_mismatch",
                           "the card's public key differs from the one it generated")
        now = utcnow()
        challenge = s.scalar(select(Challenge).where(Challenge.enrollment_id == e.id,
                                                     Challenge.used_at.is_(None))
                             .order_by(Challenge.id.desc()))
        if challenge is None:
            raise ApiError("proof_of_possession_failed", "no unused challenge for this session")
        if challenge.expires_at <= now:
            raise ApiError("challenge_expired", "the proof-of-possession challenge expired")
        # single use: compare-and-set, so a racing duplicate post cannot reuse it
        used = s.execute(update(Challenge).where(Challenge.id == challenge.id,
                                                 Challenge.used_at.is_(None))
                         .values(used_at=now)).rowcount
        if used != 1:
            raise ApiError("proof_of_possession_failed", "the challenge was already used")
        try:
            read_key.verify(data[1], possession_data(challenge.value), padding.PKCS1v15(),
                            hashes.SHA256())
        except InvalidSignature as exc:
            raise ApiError("proof_of_possession_failed",
                           "the card's signature over the challenge does not verify with the "
                           "generated key") from exc
        evidence = self._attestation(s, e, data[2], challenge.value, data[0], now)
        self._issue(s, e, read_key, evidence)

    def _attestation(self, s: Session, e: Enrollment, response: bytes | None, challenge: bytes,
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
        card = s.get(RegisteredCard, card_id)
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

    def _ensure_replacement_authorized(self, s: Session, e: Enrollment) -> None:
        if not e.replace_authorized and activation.has_active_certificate(s, e.user_id, e.slot):
            raise ApiError("replacement_not_authorized",
                           f"the user has an active certificate for slot {e.slot}; replacing it "
                           "needs an activation code the bank issued for a replacement")

    def _issue(self, s: Session, e: Enrollment, public_key, evidence: CardEvidence) -> None:
        key_sha = hashlib.sha256(e.public_key_der).hexdigest()
        if s.scalar(select(Card.id).where(Card.key_sha256 == key_sha)) is not None:
            raise ApiError("key_already_enrolled",
                           "this public key is already enrolled; generate a new key")
        self._ensure_replacement_authorized(s, e)
        if evidence.registry_card_id is not None:
            bind_card(s, evidence.registry_card_id, e.user_id)
        user_external = self._user_external(s, e.user_id)
        issued = self.ctx.ca.issue(public_key, user_external_id=user_external,
                                   card_label=e.card_label, slot=e.slot,
                                   card_id=evidence.registry_card_id, attested=evidence.attested)
        now = utcnow()
        card = Card(user_id=e.user_id, slot=e.slot, label=e.card_label,
                    public_key_der=e.public_key_der, key_sha256=key_sha,
                    requires_server_signature=evidence.requires_server_signature,
                    registry_card_id=evidence.registry_card_id, attested=evidence.attested,
                    attested_policy=evidence.policy, attestation=evidence.attestation,
                    bank_key_algorithm=e.bank_key_algorithm,
                    last_counter=evidence.counter, consecutive_failures=0, created_at=now)
        s.add(card)
        s.flush()
        s.add(Certificate(serial_hex=issued.serial_hex, user_id=e.user_id, card_id=card.id,
                          enrollment_id=e.id, slot=e.slot, der=issued.der,
                          sha256=hashlib.sha256(issued.der).hexdigest(), status="pending_store",
                          not_before=issued.not_before, not_after=issued.not_after,
                          issued_at=now))
        audit.record(s, "certificate.issue", "ok", client_id=e.terminal_client_id,
                     user=user_external, card_id=card.id, enrollment_id=e.id,
                     serial_hex=issued.serial_hex,
                     detail=f"attested by card {evidence.registry_card_id}" if evidence.attested
                     else "UNATTESTED key (allowed by settings)")
        e.certificate_serial_hex = issued.serial_hex
        e.seq += 1
        e.state = "cert_sent"
        e.pending_batch = Batch(e.seq, "store_certificate",
                                [card_commands.select_applet()]
                                + card_commands.put_certificate(e.slot, issued.der)
                                + card_commands.read_certificate(e.slot, len(issued.der)),
                                ["the READ BINARY responses are the read-back that confirms "
                                 "the write"]).dumps()

    def _on_readback(self, s: Session, e: Enrollment, data: list[bytes]) -> bytes:
        cert = s.get(Certificate, e.certificate_serial_hex)
        batch = Batch.loads(e.pending_batch)
        first_read = next(i for i, a in enumerate(batch.apdus) if a.name.startswith("READ BINARY"))
        readback = b"".join(data[first_read:])
        if hashlib.sha256(readback).hexdigest() != cert.sha256:
            raise ApiError("certificate_readback_mismatch",
                           "the certificate read back from the card differs from the issued one")
        now = utcnow()
        # A concurrent enrollment may have completed since this one was issued.
        self._ensure_replacement_authorized(s, e)
        # The new certificate replaces the user's previous one for this slot (authorized
        # by the activation code).
        for old in s.scalars(select(Certificate).where(
                Certificate.user_id == e.user_id, Certificate.slot == e.slot,
                Certificate.status == "active")):
            old.status, old.revoked_at, old.revocation_reason = "revoked", now, "superseded"
            audit.record(s, "certificate.revoke", "ok", user=self._user_external(s, e.user_id),
                         serial_hex=old.serial_hex, detail="superseded by a new enrollment")
        cert.status, cert.stored_at = "active", now
        e.state, e.pending_batch = "completed", None
        limits.reset_failures(s, user_id=e.user_id)
        audit.record(s, "enrollment.complete", "ok", client_id=e.terminal_client_id,
                     user=self._user_external(s, e.user_id), card_id=cert.card_id,
                     enrollment_id=e.id, serial_hex=cert.serial_hex)
        return cert.der

    @staticmethod
    def _user_external(s: Session, user_id: int) -> str:
        return s.scalar(select(User.external_id).where(User.id == user_id))
