"""Refusals and bad requests: one exception type carrying a machine-readable code.

Every code maps to a 4xx status; the HTTP layer turns ApiError into
{"error": {"code": ..., "message": ...}}. Messages name what is wrong and never carry
secrets (no PIN, no key material).
"""
from __future__ import annotations

# code -> HTTP status
STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400,
    "malformed_json": 400,
    "invalid_hex": 400,
    "invalid_der": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "user_blocked": 403,
    "card_blocked": 403,
    "not_found": 404,
    "wrong_terminal": 403,
    "stale_step": 409,
    "conflict": 409,
    "session_closed": 409,
    "payment_not_awaiting_signature": 409,
    "nonce_already_used": 409,
    "enrollment_expired": 410,
    "challenge_expired": 410,
    "payment_expired": 410,
    "body_too_large": 413,
    "card_error": 422,
    "card_refused_signature": 422,
    "card_response_malformed": 422,
    "public_key_mismatch": 422,
    "proof_of_possession_failed": 422,
    "weak_key": 422,
    "key_already_enrolled": 409,
    "unknown_user": 404,
    "certificate_readback_mismatch": 422,
    "certificate_unreadable": 422,
    "certificate_untrusted": 422,
    "certificate_not_valid_now": 422,
    "certificate_revoked": 422,
    "certificate_not_registered": 422,
    "certificate_wrong_user": 422,
    "no_active_certificate": 422,
    "signature_mismatch": 422,
    "counter_not_increasing": 422,
    "counter_jump": 422,
    "certificate_mismatch": 422,
    "card_not_attested": 422,
    "client_rate_limited": 429,
    # bank-authorized enrollment
    "activation_code_not_issued": 403,
    "activation_code_invalid": 403,
    "activation_code_locked": 403,
    "activation_code_expired": 410,
    "replacement_not_authorized": 403,
    # card registry and attestation
    "card_not_registered": 403,
    "card_revoked": 403,
    "card_bound_to_another_user": 403,
    "attestation_required": 422,
    "attestation_malformed": 422,
    "attestation_untrusted": 422,
    "attestation_signature_invalid": 422,
    "attestation_challenge_mismatch": 422,
    "attestation_key_mismatch": 422,
    "attestation_card_mismatch": 422,
    "attestation_slot_mismatch": 422,
    "attestation_policy_insufficient": 422,
    "invalid_card_record": 400,
    "database_busy": 503,
}


class ApiError(Exception):
    """A refusal or a bad request, reported to the client as a 4xx."""

    def __init__(self, code: str, message: str, *, status: int | None = None):
        if code not in STATUS_BY_CODE and status is None:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE[code]

    def as_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}
