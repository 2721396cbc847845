"""The CardShield applet installed a second time on the session's virtual card, as an
instance with a personalization key set (install tags C0, C1) diversified from the test
master key of vectors.py. The first instance stays a development card for other tests."""
from __future__ import annotations

import dataclasses

from cardshield.perso import keys
from cardshield.protocol.constants import APPLET_AID

from . import vectors as v

KEYED_AID = APPLET_AID[:-1] + b"\x02"
PIN, PUK = "482913", "80417256"
SECRETS = {"ISSUER_MK": v.MASTER_KEY.hex().upper(), "CARD_PIN": PIN, "CARD_PUK": PUK}


def card_keys() -> keys.PersoKeySet:
    return keys.diversify(keys.software_master(v.MASTER_KEY), v.KEY_VERSION, v.CARD_ID)


def keyed_instances(applets, instance_aid: bytes = KEYED_AID) -> list:
    """For the session stack: the project applet again, keyed (none if it is not built).
    With instance_aid=APPLET_AID: a card whose only CardShield instance is keyed, as an
    issuer delivers it (tests/attested_card.py)."""
    params = keys.install_parameters(card_keys(), v.CARD_ID)
    return [dataclasses.replace(a, instance_aid=instance_aid, parameters=params)
            for a in applets if a.instance_aid == APPLET_AID]
