"""Keys are erased where the card's lifecycle ends them (docs/apdu.md, "Lifecycle"):

- ISSUE: the personalization key set (install tag C0, K-ENC and K-MAC) has no use left,
  and a card that keeps it keeps a secret an attacker could extract to forge issuer
  commands on a cloned key hierarchy; FCI flag 20 says it is gone.
- TERMINATED (the PUK blocked): the slot private keys and the attestation key can never
  be used again, so they are cleared instead of waiting in EEPROM for an attacker.
- the end of every secured command: the secure channel's RAM scratch, which holds bytes
  derived from K-MAC and K-ENC while the command runs, is zeroed whether the command was
  accepted or refused.

What the card holds is read with the virtual card's host-only INSPECT control
(KeyProbe.java: Key.isInitialized() of the applet's key objects, the bytes of a RAM array;
never reachable by APDU).
Not covered: whether a real card's clearKey() overwrites the EEPROM cells (the Java Card
API promises the key is uninitialised; physical remanence is the platform's matter).
"""
from __future__ import annotations

import dataclasses

import pytest

from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardShield
from cardshield.perso import secure_messaging as sm
from cardshield.protocol import commands
from cardshield.protocol.constants import CardFlags, Lifecycle

from .instance import KEYED_AID, PIN, card_keys
from .test_attestation_card import Issuer, attested, issuer  # noqa: F401  (pytest fixtures)

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

SECURE_CHANNEL_KEYS = ("secureChannel.encKey", "secureChannel.macKey")
PRIVATE_KEYS = ("state.slot1.keyPair.private", "state.slot2.keyPair.private", "state.attestation.keyPair.private")


def initialized(virtual_card, path: str) -> bool:
    answer = virtual_card.inspect_applet(KEYED_AID, path)
    assert answer in ("initialized=yes", "initialized=no"), answer
    return answer == "initialized=yes"


def test_issue_erases_the_personalization_key_set(issuer, virtual_card):
    assert all(initialized(virtual_card, path) for path in SECURE_CHANNEL_KEYS)
    card = CardShield(issuer.link, aid=KEYED_AID)
    assert CardFlags.PERSONALIZATION_KEYS_ERASED not in card.select().flags

    issuer.ok(commands.issue())

    assert not any(initialized(virtual_card, path) for path in SECURE_CHANNEL_KEYS)
    fci = card.select()
    assert fci.lifecycle == Lifecycle.ISSUED
    assert CardFlags.PERSONALIZATION_KEYS_ERASED in fci.flags
    # a secured command now names a key version the card no longer has
    assert issuer.send(commands.personalize_pin(PIN)).sw == 0x6A88


def test_a_blocked_puk_erases_every_private_key(attested, virtual_card):
    card, _attestation_key = attested  # issued, attestation key and certificate, key in slot 1
    card.generate_key(2)
    assert all(initialized(virtual_card, path) for path in PRIVATE_KEYS)

    wrong_puk = "00000000"
    while True:
        answer = card.transmit(commands.unblock_pin(wrong_puk, PIN))
        assert answer.sw & 0xFFF0 == 0x63C0, f"{answer.sw:04X}"
        if answer.sw == 0x63C0:
            break

    assert card.select().lifecycle == Lifecycle.TERMINATED
    assert not any(initialized(virtual_card, path) for path in PRIVATE_KEYS)
    # the public keys stay readable (READ PUBLIC KEY works in every state)
    assert card.read_public_key(1) is not None


# The secure channel's RAM scratch (SecureChannel.scratch, CLEAR_ON_DESELECT): the CBC-MAC
# state, the CMAC subkeys K1/K2 derived from K-MAC, the decryption IV derived from K-ENC.
# CLEAR_ON_DESELECT alone would keep them until another applet is selected; a secured
# command must leave none of them behind, whatever its outcome.
SECURE_CHANNEL_SCRATCH = "secureChannel.scratch"


@pytest.fixture
def pin_issuer(perso_card):
    """The issuer's channel after one accepted secured command (the PIN): short APDUs only,
    so the SIM-like card (T=0) runs these tests too."""
    issuer = Issuer(perso_card)
    issuer.ok(commands.personalize_pin(PIN))
    return issuer


def scratch_is_zero(virtual_card) -> bool:
    answer = virtual_card.inspect_applet(KEYED_AID, SECURE_CHANNEL_SCRATCH)
    assert answer.startswith("length=64 "), answer
    return "zero=yes" in answer


def _accepted(issuer):
    return issuer.send(commands.personalize_pin(PIN)).sw


def _mac_wrong(issuer):
    """A forged command: the card computes the CMAC over it (subkeys, state) and refuses."""
    issuer.counter += 1
    secured = sm.wrap(card_keys(), commands.personalize_pin(PIN), issuer.counter)
    forged = dataclasses.replace(secured, data=secured.data[:-1] + bytes([secured.data[-1] ^ 1]))
    return issuer.link.transmit(forged.apdu()).sw


def _replayed(issuer):
    """A replay: the MAC is right (computed), the counter is not above the last one."""
    issuer.counter -= 1
    return issuer.send(commands.personalize_pin(PIN)).sw


def _refused_by_the_step(issuer):
    """MAC, counter and padding right (the IV derived from K-ENC); the step refuses its data
    (a 1-digit PIN: 6700, PinHandler.requireDigits)."""
    step = commands.personalize_pin(PIN)
    return issuer.send(dataclasses.replace(step, data=b"\x01")).sw


@pytest.mark.parametrize("command, sw", [(_accepted, 0x9000), (_mac_wrong, 0x6988), (_replayed, 0x6985),
                                         (_refused_by_the_step, 0x6700)],
                         ids=["accepted", "mac-wrong", "replayed", "refused-by-the-step"])
def test_a_secured_command_leaves_no_key_derived_byte_in_ram(pin_issuer, virtual_card, command, sw):
    answer_sw = command(pin_issuer)
    assert answer_sw == sw, f"{answer_sw:04X}"
    assert scratch_is_zero(virtual_card)
