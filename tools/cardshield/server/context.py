"""What every service needs: settings, database, CA, authenticator; and the refusal
pattern used by both flows (do the work in one transaction; if it is refused, roll it
back entirely, then record the refusal and its consequences in a second transaction)."""
from __future__ import annotations

from dataclasses import dataclass
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
            on_refusal: Callable[[Session, ApiError], None], *, core: bool = False) -> T:
        """core=True runs both on a plain Connection (Core statements only)."""
        transaction = self.db.core_transaction if core else self.db.transaction
        try:
            with transaction() as session:
                return work(session)
        except ApiError as refusal:
            with transaction() as session:
                on_refusal(session, refusal)
            raise
