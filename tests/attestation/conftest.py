"""Keys and certificates made in the test: an attestation CA, a card attestation key, a
slot key, and a signer of statements as the applet's ATTEST makes them (docs/apdu.md)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.attestation.ca import AttestationCA
from cardshield.protocol import tlv
from cardshield.protocol.attestation import STATEMENT_PREFIX, encode_statement
from cardshield.protocol.keys import encode_rsa_public_key

CARD_ID = bytes.fromhex("0102030405060708")
CHALLENGE = bytes(range(32))


@dataclass
class Card:
    """What a genuine card holds: its id, attestation key and a slot-1 key."""
    card_id: bytes
    attestation_key: rsa.RSAPrivateKey
    slot_key_do: bytes

    def attest(self, *, challenge: bytes = CHALLENGE, slot: int = 1, card_id: bytes | None = None,
               key_do: bytes | None = None, signer: rsa.RSAPrivateKey | None = None, policy: int = 3) -> bytes:
        statement = encode_statement(
            card_id=card_id or self.card_id, applet_version=(1, 0), slot=slot, algorithm=1, policy=policy,
            public_key_do=key_do or self.slot_key_do, challenge=challenge, counter=0)
        signature = (signer or self.attestation_key).sign(STATEMENT_PREFIX + statement, padding.PKCS1v15(),
                                                           hashes.SHA256())
        return statement + tlv.encode(0x9E, signature)


@pytest.fixture(scope="session")
def attestation_ca(tmp_path_factory) -> AttestationCA:
    return AttestationCA.create(tmp_path_factory.mktemp("att") / "ca", "Example Bank")


@pytest.fixture(scope="session")
def rsa2048():
    """A few RSA-2048 keys, made once (generation is the slow part)."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture(scope="session")
def card(rsa2048) -> Card:
    return Card(CARD_ID, rsa2048[0], encode_rsa_public_key(rsa2048[1].public_key()))


@pytest.fixture(scope="session")
def card_certificate(attestation_ca, card):
    return attestation_ca.certify_card(card.card_id, card.attestation_key.public_key(), (1, 0))


NOW = datetime.now(timezone.utc)
