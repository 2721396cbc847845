"""A test card issuer for tests and benchmarks: server state with an attestation CA in its
trust store, and SoftCards registered in the card registry as the issuer's personalization
records would register them. The attestation CA's key lives next to the server state here;
at a bank it stays with the personalization station."""
from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from cardshield.attestation.ca import AttestationCA

from ..activation import ensure_activation_key
from ..ca import init_ca
from ..registry import import_records, install_trust_root
from ..settings import Settings
from .softcard import SoftCard

ISSUER_DIR = "test-attestation-ca"


def prepare_server_state(settings: Settings) -> AttestationCA:
    """`cardshield server init`'s files, plus a test attestation CA the server trusts."""
    init_ca(settings)
    ensure_activation_key(settings.activation_key_path)
    directory = settings.state_dir / ISSUER_DIR
    issuer = (AttestationCA.load(directory) if directory.exists()
              else AttestationCA.create(directory, "Test Card Issuer"))
    install_trust_root(settings.attestation_trust_dir,
                       issuer.certificate.public_bytes(serialization.Encoding.PEM))
    return issuer


def load_test_issuer(state_dir: Path) -> AttestationCA:
    return AttestationCA.load(Path(state_dir) / ISSUER_DIR)


def registered_softcard(ctx, issuer: AttestationCA, attestation_key, **kwargs) -> SoftCard:
    """A SoftCard with its own card id and `attestation_key`, certified by `issuer` and
    imported into the card registry of `ctx` (a ServerContext)."""
    kwargs.setdefault("card_id", secrets.token_bytes(8))
    kwargs.setdefault("server_public_key", ctx.ca.request_key.public_key())
    card = SoftCard(attestation_key=attestation_key, **kwargs)
    import_records(ctx, [card.record(issuer)])
    return card
