"""What every service needs: settings, database, CA, authenticator; and the refusal
pattern used by both flows (do the work in one transaction; if it is refused, roll it
back entirely, then record the refusal and its consequences in a second transaction)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, TypeVar

from cryptography import x509
from sqlalchemy.orm import Session

from .ca import CertificateAuthority
from .db import Database
from .errors import ApiError
from .settings import Settings
from .tokens import Authenticator

T = TypeVar("T")


@dataclass
class ServerContext:
    settings: Settings
    db: Database
    ca: CertificateAuthority
    auth: Authenticator
    # HMAC key of the stored activation codes (activation.py)
    activation_key: bytes
    # Attestation CA certificates the card registry and enrollment trust (registry.py);
    # read at start: restart the server after changing the trust store.
    attestation_roots: list[x509.Certificate]

    @cached_property
    def payment_store(self):
        """The payment path's database work (payment_store.py), one per context: on
        PostgreSQL it holds the asyncpg pools."""
        from .payment_store import payment_store
        return payment_store(self.db)

    @classmethod
    def create(cls, settings: Settings, *, pool_size: int = 10) -> "ServerContext":
        from .activation import load_activation_key
        from .registry import load_trust_roots
        db = Database(settings.effective_database_url, pool_size=pool_size)
        return cls(settings, db, CertificateAuthority.load(settings),
                   Authenticator(db, settings.token_cache_seconds),
                   load_activation_key(settings.activation_key_path),
                   load_trust_roots(settings.attestation_trust_dir))

    def run(self, work: Callable[[Session], T],
            on_refusal: Callable[[Session, ApiError], None]) -> T:
        try:
            with self.db.transaction() as session:
                return work(session)
        except ApiError as refusal:
            with self.db.transaction() as session:
                on_refusal(session, refusal)
            raise
