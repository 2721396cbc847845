"""Server settings, read once from the environment (CARDSHIELD_* variables).

Replicas share nothing but the database, so everything here is static configuration.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

# Private-arc OID under IANA's documentation PEN 32473 (RFC 5612). It marks certificates
# whose key was generated on the card and proven by an on-card signature at enrollment.
# A deployment with its own PEN sets CARDSHIELD_KEY_ON_CARD_POLICY_OID to its own arc.
DEFAULT_KEY_ON_CARD_POLICY_OID = "1.3.6.1.4.1.32473.1.1"
# Same arc: a key enrolled WITHOUT a verified card attestation (only when
# allow_unattested_enrollment is set). Relying parties must not read it as "key on card".
DEFAULT_UNATTESTED_POLICY_OID = "1.3.6.1.4.1.32473.1.3"
# The bank's minimum slot policy (ATTEST tag 84 bits: 01 PIN per signature, 02 server-signed
# requests): the payment slot needs both; the authentication slot nothing.
DEFAULT_REQUIRED_SLOT_POLICY = {1: 0x03, 2: 0x00}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_state_dir() -> Path:
    return Path(os.environ.get("CARDSHIELD_SERVER_DIR", _repo_root() / "var" / "server"))


@dataclass(frozen=True)
class Settings:
    state_dir: Path = field(default_factory=default_state_dir)
    database_url: str = ""
    organization: str = "CardShield"
    key_on_card_policy_oid: str = DEFAULT_KEY_ON_CARD_POLICY_OID
    unattested_policy_oid: str = DEFAULT_UNATTESTED_POLICY_OID
    # Off by default: every enrollment must carry a verified card attestation. When on, an
    # enrollment without one gets unattested_policy_oid and cards.attested = false.
    allow_unattested_enrollment: bool = False
    required_slot_policy: dict[int, int] = field(
        default_factory=lambda: dict(DEFAULT_REQUIRED_SLOT_POLICY))
    # Activation codes (PSD2 RTS art. 4(3)(b): at most 5 wrong tries, then locked).
    activation_code_ttl_seconds: int = 7 * 24 * 3600
    activation_code_max_attempts: int = 5
    certificate_validity_days: int = 730
    ca_validity_days: int = 3650
    crl_validity_hours: int = 24
    enrollment_ttl_seconds: int = 900
    challenge_ttl_seconds: int = 120
    payment_ttl_seconds: int = 300
    max_body_bytes: int = 64 * 1024
    max_consecutive_failures: int = 5
    # Refusals that are no evidence against a user (a certificate that is not the user's,
    # a malformed card answer) are not counted against the user; a terminal that makes
    # more than this many within the window is refused (429) until the window ends.
    client_refusal_limit: int = 20
    client_refusal_window_seconds: int = 600
    # EMV-style bound on the card's signature counter: a signature whose counter is more
    # than this above the last accepted one is refused and audited as suspicious.
    max_counter_jump: int = 1 << 16
    # Payments only from keys whose card attestation was verified at enrollment.
    payments_require_attested_card: bool = False
    # Seconds an authenticated API token stays cached in a replica; 0 disables the cache.
    token_cache_seconds: float = 5.0
    # The server's public base URL (https://ca.bank.example). When set, issued certificates
    # say where relying parties fetch the CRL and the CA certificate (RFC 5280 4.2.1.13 and
    # 4.2.2.1); empty (the default) leaves both extensions out.
    public_url: str = ""

    @property
    def ca_dir(self) -> Path:
        return self.state_dir / "ca"

    @property
    def ca_key_path(self) -> Path:
        return self.ca_dir / "ca.key.pem"

    @property
    def ca_cert_path(self) -> Path:
        return self.ca_dir / "ca.cert.pem"

    @property
    def request_key_path(self) -> Path:
        """The server's RSA-2048 request-signing key (tag 8E of SIGN TRANSACTION), for cards
        that hold an RSA bank key (cards without EC)."""
        return self.ca_dir / "request-signing.key.pem"

    @property
    def request_key_ec_path(self) -> Path:
        """The server's EC P-256 request-signing key (8E as ECDSA), for cards that hold an
        EC bank key: 186 bytes fewer per payment."""
        return self.ca_dir / "request-signing-ec.key.pem"

    @property
    def activation_key_path(self) -> Path:
        """HMAC key for stored activation codes: a stolen database alone does not let
        anyone test guesses offline."""
        return self.ca_dir / "activation-code.key"

    @property
    def attestation_trust_dir(self) -> Path:
        """Attestation CA certificates (*.pem) whose card certificates the registry accepts."""
        return self.state_dir / "attestation-trust"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'cardshield.db'}"

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)


def _number_env(name: str, default: int | float, unit: str) -> int | float:
    """The number in environment variable `name` (`default` when unset or empty), of the
    default's type; anything else stops with a message naming the variable, what it must
    be and an example (the default), e.g. `CARDSHIELD_PAYMENT_TTL='5m' is not a whole
    number; set it to seconds, e.g. 300`."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    whole = isinstance(default, int)
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")):
        kind = "a whole number" if whole else "a finite number"
        raise SystemExit(f"{name}={raw!r} is not {kind}; set it to {unit}, e.g. {default}")
    return value


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name}={raw!r} is not a boolean; set it to 1 or 0")


def load_settings() -> Settings:
    """Settings from CARDSHIELD_* environment variables (DATABASE_URL is accepted too)."""
    base = Settings()
    return base.with_overrides(
        database_url=os.environ.get("CARDSHIELD_DATABASE_URL") or os.environ.get("DATABASE_URL", ""),
        organization=os.environ.get("CARDSHIELD_ORGANIZATION", base.organization),
        key_on_card_policy_oid=os.environ.get(
            "CARDSHIELD_KEY_ON_CARD_POLICY_OID", base.key_on_card_policy_oid),
        certificate_validity_days=_number_env(
            "CARDSHIELD_CERT_VALIDITY_DAYS", base.certificate_validity_days, "days"),
        enrollment_ttl_seconds=_number_env("CARDSHIELD_ENROLLMENT_TTL", base.enrollment_ttl_seconds,
                                           "seconds"),
        challenge_ttl_seconds=_number_env("CARDSHIELD_CHALLENGE_TTL", base.challenge_ttl_seconds,
                                          "seconds"),
        payment_ttl_seconds=_number_env("CARDSHIELD_PAYMENT_TTL", base.payment_ttl_seconds, "seconds"),
        max_body_bytes=_number_env("CARDSHIELD_MAX_BODY_BYTES", base.max_body_bytes, "bytes"),
        public_url=os.environ.get("CARDSHIELD_PUBLIC_URL", base.public_url),
        payments_require_attested_card=_bool_env("CARDSHIELD_PAYMENTS_REQUIRE_ATTESTED_CARD",
                                                 base.payments_require_attested_card),
        token_cache_seconds=_number_env("CARDSHIELD_TOKEN_CACHE_SECONDS", base.token_cache_seconds,
                                         "seconds"),
        allow_unattested_enrollment=_bool_env("CARDSHIELD_ALLOW_UNATTESTED_ENROLLMENT",
                                              base.allow_unattested_enrollment),
        unattested_policy_oid=os.environ.get("CARDSHIELD_UNATTESTED_POLICY_OID",
                                             base.unattested_policy_oid),
        required_slot_policy={
            slot: _number_env(f"CARDSHIELD_SLOT{slot}_REQUIRED_POLICY", bits,
                              "the policy bits in decimal (1 PIN per signature, 2 server-signed "
                              "requests)")
            for slot, bits in base.required_slot_policy.items()},
        activation_code_ttl_seconds=_number_env("CARDSHIELD_ACTIVATION_CODE_TTL",
                                                base.activation_code_ttl_seconds, "seconds"),
    )
