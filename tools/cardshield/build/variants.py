"""The applet's build variants: one set of sources (applet/src), one CAP per kind of card.

default  extended length (javacardx.apdu.ExtendedLength), chaining, GET RESPONSE: build/cardshield.cap
sim      short APDUs only (chaining, GET RESPONSE), no javacardx.apdu import, for cards that
         lack that optional package (many SIM cards): build/cardshield-sim.cap. Its own
         CardShieldApplet.java (applet/variants/sim) replaces the default one.

Same package, applet class and AIDs in both: a card gets one or the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardshield import paths


@dataclass(frozen=True)
class AppletVariant:
    name: str
    description: str
    overlay: Path | None
    classes_dir: Path
    cap_file: Path
    #: class-file packages this variant must not reference (the CAP would not link without them)
    forbidden_packages: tuple[str, ...] = ()


DEFAULT = AppletVariant("default", "extended length, chaining, GET RESPONSE", None, paths.APPLET_CLASSES,
                        paths.CAP_FILE)
SIM = AppletVariant("sim", "short APDUs only (chaining, GET RESPONSE), no javacardx.apdu",
                    paths.APPLET_DIR / "variants" / "sim", paths.BUILD_DIR / "applet-sim" / "classes",
                    paths.BUILD_DIR / "cardshield-sim.cap", forbidden_packages=("javacardx/apdu/",))
VARIANTS = (DEFAULT, SIM)
