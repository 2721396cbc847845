"""The CardShield applet's load file and the install path the demo and `./cardshield install` share."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from cardshield import paths
from cardshield.config import load_applet_config

from cardshield.perso.keys import TAG_KEY_SET
from cardshield.protocol.tlv import TLVError

from . import ber
from .cap import CapFile, read_cap
from .devloadfile import write_development_load_file
from .keys import StaticKeys, resolve_keys
from .manager import CardManager, InstallResult


def project_load_file(cap_path: Path | None = None, progress: Callable[[str], None] = lambda m: None) -> CapFile:
    """An explicit CAP, else the converter's build/cardshield.cap, else a development load file."""
    if cap_path is not None:
        return read_cap(Path(cap_path))
    if paths.CAP_FILE.exists():
        return read_cap(paths.CAP_FILE)
    config = load_applet_config()
    dev = write_development_load_file(paths.BUILD_DIR, config.package_aid, config.package_name,
                                      config.package_version, [config.applet_aid], paths.APPLET_CLASSES)
    progress(f"no converted CAP ({paths.CAP_FILE}); using the development load file {dev} "
             "(CardShield virtual card only)")
    return read_cap(dev)


def keys_for_card(manager: CardManager, key_options: dict, declared_test_card: bool) -> StaticKeys:
    """Resolve keys; a card whose profile is a test card (the virtual card, recognised by its
    CPLC) counts as declared."""
    manager.select_isd()
    test_card = declared_test_card or manager.card_profile().test_card
    return resolve_keys(test_card=test_card, **key_options)


def carries_key_set(applet_data: bytes) -> bool:
    """CardShield's install parameters with the personalization key set (docs/apdu.md tag C0):
    secret, so sent only under C-DECRYPTION."""
    try:
        return any(item.tag == TAG_KEY_SET for item in ber.decode(applet_data))
    except TLVError:
        return True  # unreadable: treat as secret rather than risk a key in clear


def install_project_applet(transport, *, cap_path: Path | None = None, applet_data: bytes = b"",
                           force: bool = True, key_options: dict | None = None, test_card: bool = False,
                           security_level: str = "mac", sd_aid: bytes | None = None, block_size: int | None = None,
                           warn: Callable[[str], None] = lambda m: None,
                           progress: Callable[[str], None] = lambda m: None) -> InstallResult:
    """Install the CardShield applet through GlobalPlatform: what the demo and `./cardshield install` run."""
    config = load_applet_config()
    cap = project_load_file(cap_path, progress)
    manager = CardManager(transport, None, security_level=security_level, sd_aid=sd_aid, block_size=block_size,
                          warn=warn, progress=progress)
    manager.keys = keys_for_card(manager, key_options or {}, test_card)
    with manager:
        return manager.install(cap, applet_aid=config.applet_aid, instance_aid=config.instance_aid,
                               applet_data=applet_data, force=force, secret_parameters=carries_key_set(applet_data))
