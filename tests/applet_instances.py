"""Extra CardShield instances on the session's virtual card, installed and deleted through the
project's GlobalPlatform client as an issuer manages a card with little memory: a 32 kB SIM
holds two CardShield instances (15.5 kB of EEPROM each with their 3 kB certificate areas),
not a third, least of all one with 4 kB certificate areas (about 19.6 kB). So a test that
needs such an instance deletes the card's CardShield instances, installs its own from the
package on the card, and the card is wiped back to the session's instances afterwards."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from cardshield.config import load_applet_config
from cardshield.gp.keys import resolve_keys
from cardshield.gp.manager import CardManager
from cardshield.protocol import APPLET_AID, tlv

#: an instance whose certificates may be up to 4096 bytes (install tag 80)
LARGE_CERTIFICATE_AID = APPLET_AID[:-1] + b"\x10"  # 02 and 03 are used by the perso tests
LARGE_CERTIFICATE_SIZE = 4096
LARGE_CERTIFICATE_PARAMETERS = tlv.encode(0x80, LARGE_CERTIFICATE_SIZE.to_bytes(2, "big"))


@contextmanager
def issuer(transport) -> Iterator[CardManager]:
    """A GlobalPlatform session with the virtual card's security domain (its test key set)."""
    with CardManager(transport, resolve_keys(test_card=True, environ={})) as manager:
        yield manager  # authenticates at its first command that needs the secure channel


def replace_cardshield_instances(transport, instance_aid: bytes, applet_data: bytes) -> list[bytes]:
    """Delete every CardShield instance on the card (GPCS 11.2 DELETE: the card frees their
    memory), then install one instance of the package already loaded, with these install
    parameters (INSTALL [for install and make selectable]). Returns the deleted AIDs."""
    config = load_applet_config()
    with issuer(transport) as manager:
        deleted = [app.aid for app in manager.registry().applications if app.load_file_aid == config.package_aid]
        for aid in deleted:
            manager.delete(aid, related=False)
        manager.install_instance(config.package_aid, config.applet_aid, instance_aid, applet_data=applet_data)
    return deleted
