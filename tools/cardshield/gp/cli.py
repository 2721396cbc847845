"""`cardshield gp info|list|install|uninstall|devcap`: GlobalPlatform card management."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cardshield import console, paths
from cardshield.card.transport import Transport
from cardshield.config import load_applet_config

from .devloadfile import write_development_load_file
from .keys import DIVERSIFICATIONS
from .manager import SECURITY_LEVELS, CardManager
from .project import install_project_applet, keys_for_card


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hexadecimal") from None


def _int(text: str) -> int:
    return int(text, 0)


def _add_card_options(parser: argparse.ArgumentParser, keys: bool = True) -> None:
    parser.add_argument("--reader", help="exact PC/SC reader name, or its index (default: the only reader,"
                        " or $CARDSHIELD_READER)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--trace", action="store_true", help="print the APDUs (secrets masked)")
    if not keys:
        return
    group = parser.add_argument_group("card keys (never printed)")
    group.add_argument("--key", help="one key for ENC, MAC and DEK (hex); or $CARDSHIELD_GP_KEY")
    group.add_argument("--key-enc", help="ENC key (hex)")
    group.add_argument("--key-mac", help="MAC key (hex)")
    group.add_argument("--key-dek", help="DEK key (hex)")
    group.add_argument("--key-file", help="key file, chmod 600 (KEY= or ENC=/MAC=/DEK=, VERSION=, DIVERSIFICATION=)")
    group.add_argument("--key-version", type=_int, help="key set version for INITIALIZE UPDATE (default 0: card's"
                       " default); on the virtual card 0x20 is SCP02, 0x30 SCP03")
    group.add_argument("--diversification", choices=DIVERSIFICATIONS, help="derive the card keys from master"
                       " keys: emv (EMV CPG 2.1), visa2, kdf3 (SCP03)")
    group.add_argument("--test-card", action="store_true", help="declare a test card: allows the 40..4F test key")
    group.add_argument("--security-level", choices=sorted(SECURITY_LEVELS), default="mac",
                       help="mac: C-MAC; enc: C-MAC + C-DECRYPTION (default mac)")


def _key_options(args) -> dict:
    return {"key": args.key, "key_enc": args.key_enc, "key_mac": args.key_mac, "key_dek": args.key_dek,
            "key_file": args.key_file, "key_version": args.key_version, "diversification": args.diversification}


def _open(args) -> Transport:
    import os
    return Transport.open(args.reader if args.reader is not None else os.environ.get("CARDSHIELD_READER"),
                          trace=args.trace or None)


def _print(args, result: dict, text: str) -> None:
    print(json.dumps(result, indent=2) if args.json else text)


def _manager(args, transport) -> CardManager:
    manager = CardManager(transport, None, security_level=args.security_level, warn=console.warn,
                          progress=console.info)
    manager.keys = keys_for_card(manager, _key_options(args), args.test_card)
    return manager


def cmd_info(args) -> int:
    with _open(args) as transport:
        info = CardManager(transport).info()
    d = info.as_dict()
    lines = [f"ISD {d['isd']}" + ("  (CardShield virtual card)" if info.virtual_card else "")]
    if d["card_data"].get("gp_version"):
        lines.append(f"GlobalPlatform {d['card_data']['gp_version']}")
    for scp in d["card_data"].get("scp", []):
        lines.append(f"SCP{scp['scp']:02X} i={scp['i']:02X}")
    for key in d["key_information"]:
        lines.append(f"key set {key['version']:#04x}: key {key['id']} type {key['type']} length {key['length']}")
    if d["cplc"]:
        lines.append("CPLC " + " ".join(f"{k}={v}" for k, v in d["cplc"].items()))
    _print(args, d, "\n".join(lines))
    return 0


def cmd_list(args) -> int:
    with _open(args) as transport:
        registry = _manager(args, transport).registry()
    d = registry.as_dict()
    lines = []
    if d["isd"]:
        lines.append(f"ISD  {d['isd']['aid']}  {d['isd']['life_cycle']}")
    lines += [f"APP  {a['aid']}  {a['life_cycle']}  (package {a.get('load_file', '?')})" for a in d["applications"]]
    lines += [f"PKG  {e['aid']}  v{e.get('version', '?')}  applets {', '.join(e.get('applets', []))}"
              for e in d["load_files"]]
    if not d["applications"] and not d["load_files"]:
        lines.append("(no applications or packages besides the security domain)")
    _print(args, d, "\n".join(lines))
    return 0


def cmd_install(args) -> int:
    with _open(args) as transport:
        result = install_project_applet(
            transport, cap_path=args.cap, applet_data=args.params or b"", force=args.force,
            key_options=_key_options(args), test_card=args.test_card, security_level=args.security_level,
            warn=console.warn, progress=console.info)
    d = result.as_dict()
    _print(args, d, f"installed {d['instance']} (package {d['package']}{', replaced' if result.replaced else ''}): "
                    f"{d['load_file_bytes']} bytes in {d['load_blocks']} LOAD blocks, {d['apdus']} APDUs, "
                    f"{d['seconds']} s")
    return 0


def cmd_uninstall(args) -> int:
    config = load_applet_config()
    with _open(args) as transport:
        deleted = _manager(args, transport).uninstall(config.package_aid, [config.instance_aid])
    _print(args, {"deleted": deleted}, "deleted " + ", ".join(deleted) if deleted else "nothing to delete")
    return 0


def cmd_devcap(args) -> int:
    config = load_applet_config()
    path = write_development_load_file(Path(args.out), config.package_aid, config.package_name,
                                       config.package_version, [config.applet_aid], paths.APPLET_CLASSES)
    print(path)
    return 0


def register(subparsers) -> None:
    gp = subparsers.add_parser("gp", help="GlobalPlatform card management (SCP02/SCP03)")
    sub = gp.add_subparsers(dest="gp_command", required=True, metavar="ACTION")
    p = sub.add_parser("info", help="ISD, CPLC, card data and key sets (no authentication)")
    _add_card_options(p, keys=False)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("list", help="applications and packages on the card (authenticates)")
    _add_card_options(p)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("install", help="load and install the CardShield applet")
    _add_card_options(p)
    p.add_argument("--cap", type=Path, help="CAP file (default: build/cardshield.cap, else the development"
                   " load file for the virtual card)")
    p.add_argument("--force", action="store_true", help="delete the installed applet first (its data is lost)")
    p.add_argument("--params", type=_hex, help="applet install parameters, hex (tag C9 value; docs/apdu.md)")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("uninstall", help="delete the CardShield applet and package")
    _add_card_options(p)
    p.set_defaults(func=cmd_uninstall)
    p = sub.add_parser("devcap", help="write the development load file (CardShield virtual card only)")
    p.add_argument("--out", default=str(paths.BUILD_DIR), help="output directory (default build/)")
    p.set_defaults(func=cmd_devcap)


