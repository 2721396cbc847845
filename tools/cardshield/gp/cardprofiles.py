"""What the GlobalPlatform client knows about particular cards, kept out of the generic
manager: a card profile is recognised from the card's CPLC and says what the card allows
beyond the GlobalPlatform specification and how to explain its refusals."""
from __future__ import annotations

from dataclasses import dataclass

from .commands import CPLC


@dataclass(frozen=True)
class CardProfile:
    name: str
    #: CPLC IC fabricator + IC type the card answers with, or None for "any card"
    cplc_prefix: bytes | None
    #: a test card by construction: the 40..4F test key may be used without --test-card
    test_card: bool
    #: takes CardShield's development load files (class files, no bytecode)
    loads_development_files: bool
    #: why LOAD may answer 6A80 on this card (GPCS leaves the reason to the card)
    load_refused_hint: str

    def matches(self, cplc: CPLC | None) -> bool:
        return self.cplc_prefix is None or (cplc is not None and cplc.raw.startswith(self.cplc_prefix))


GENERIC_CARD = CardProfile(
    "generic", None, test_card=False, loads_development_files=False,
    load_refused_hint="the card rejected the load file; it may not support the CAP's {version} or one of its "
                      "imported packages")

# The CardShield virtual card's ISD (tools/virtualcard) identifies itself by CPLC IC
# fabricator "CS" and IC type "VC"; it links a package only to applet classes on its classpath
VIRTUAL_CARD = CardProfile(
    "cardshield-virtual-card", bytes.fromhex("43535643"), test_card=True, loads_development_files=True,
    load_refused_hint="the virtual card links a package only to applet classes on its classpath and refuses a "
                      "malformed load file; build the applet (./cardshield build) and check the CAP")

PROFILES = (VIRTUAL_CARD, GENERIC_CARD)


def recognise(cplc: CPLC | None) -> CardProfile:
    return next(profile for profile in PROFILES if profile.matches(cplc))
