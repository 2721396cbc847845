"""Extra CardShield instances for the session's virtual card, installed with install
parameters (docs/apdu.md, "Install parameters"): the applet tests check that the card
applies them."""

from __future__ import annotations

import dataclasses

from cardshield.protocol import APPLET_AID, tlv

#: an instance whose certificates may be up to 4096 bytes (install tag 80)
LARGE_CERTIFICATE_AID = APPLET_AID[:-1] + b"\x10"  # 02 and 03 are used by the perso tests
LARGE_CERTIFICATE_SIZE = 4096


def parameterized_instances(applets) -> list:
    """The project applet again with install tag 80 = 4096 (none if it is not built)."""
    params = tlv.encode(0x80, LARGE_CERTIFICATE_SIZE.to_bytes(2, "big"))
    return [dataclasses.replace(a, instance_aid=LARGE_CERTIFICATE_AID, parameters=params)
            for a in applets if a.instance_aid == APPLET_AID]
