"""An issued card with an attestation key, on a virtual card stack of its own, for the
tests that run the flows end to end (terminal, Chromium): the real attested path, as a card
holder's card takes it.

The card holds one CardShield instance, at the applet's default AID, installed with a
personalization key set (tests/perso/instance.py). The issuer runs the demo's secured script
on it (PIN, PUK, the server's request key, slot 1 with PIN per signature and server-signed
requests, an attestation key certified by the issuer's attestation CA, ISSUE), and the bank
imports its record into the server's card registry. So the server's SELECT reaches this
instance byte for byte: no AID mapping on the terminal side, no unattested setting on the
server.

A stack of its own because the session's stack holds a development card at the default AID.
While it runs, this process's PC/SC clients reach it (cardshield.sim.stack: the most recently
started stack); use it in a module-scoped fixture so the session's card is back afterwards.
Costs: one stack start and the attestation key generation (about 1 s on jcardsim)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from cardshield.attestation.ca import AttestationCA
from cardshield.attestation.record import load_records
from cardshield.perso.keystore import MappingKeyStore
from cardshield.protocol.constants import APPLET_AID
from cardshield.sim.stack import VirtualCardStack

from perso import vectors
from perso.instance import PIN, PUK, SECRETS, keyed_instances


@dataclass(frozen=True)
class AttestedCard:
    stack: VirtualCardStack  # host controls: remove_card / insert_card
    reader: str
    card_id_hex: str
    pin: str = PIN
    puk: str = PUK


class CardIssuer:
    """The issuer's side: its attestation CA (which the server must trust from its start)
    and the personalization of one card."""

    def __init__(self, directory: Path):
        from cardshield.demo import ATTESTATION_CA_DIR

        self.directory = directory
        self.ca = AttestationCA.create(directory / ATTESTATION_CA_DIR, "Test Card Issuer")

    @property
    def trust_roots(self) -> list[Path]:
        """For LocalServer(attestation_cas=...)."""
        return [AttestationCA.certificate_path(self.ca.directory)]

    @contextmanager
    def issued_card(self, server) -> Iterator[AttestedCard]:
        """Start the card's stack, personalize it for `server` (a running LocalServer that
        trusts this issuer) and import its record into the server's card registry."""
        from cardshield.card.transport import Transport
        from cardshield.demo import personalize_card
        from cardshield.sim.applets import default_applets

        applets = keyed_instances(default_applets(), instance_aid=APPLET_AID)
        if not applets:
            pytest.skip("the CardShield applet is not built: no card to issue")
        stack = VirtualCardStack(self.directory / "card", applets=applets)
        stack.start()
        try:
            store = MappingKeyStore(SECRETS, "the test issuer's secrets", "tests/perso/instance.py sets {name}")
            with Transport.open(stack.info.reader) as transport:
                records = personalize_card(transport, self.directory, vectors.CARD_ID, store,
                                           server.request_key_pem)
            [record] = load_records(records)
            server.import_cards(records)
            yield AttestedCard(stack, stack.info.reader, record.card_id_hex)
        finally:
            stack.stop()
