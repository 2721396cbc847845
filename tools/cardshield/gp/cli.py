"""`cardshield gp ...`: GlobalPlatform card management.

info, list; install / uninstall (the CardShield applet); install-cap / delete (any CAP or
AID); put-key (add or replace a key set); lock / unlock (an application), lock-card /
unlock-card; devcap (the development load file of the virtual card)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cardshield import console, paths
from cardshield.card.transport import Transport
from cardshield.config import load_applet_config

from .devloadfile import write_development_load_file
from .cap import read_cap
from .errors import GPError
from .keys import DIVERSIFICATIONS, load_key_file
from .manager import SECURITY_LEVELS, CardManager
from .project import install_project_applet, keys_for_card


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hexadecimal") from None


def _aid(text: str) -> bytes:
    aid = _hex(text)
    if not 5 <= len(aid) <= 16:
        raise argparse.ArgumentTypeError(f"{text!r} is {len(aid)} bytes; an AID has 5 to 16 (10 to 32 hex digits)")
    return aid


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (decimal, or hex as 0x30)") from None


def _block_size(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 255:
        raise argparse.ArgumentTypeError(f"block size {value} outside 1..255 (short APDU data)")
    return value


def _add_card_options(parser: argparse.ArgumentParser, keys: bool = True) -> None:
    parser.add_argument("--reader", help="exact PC/SC reader name, or its index (default: the only reader,"
                        " or $CARDSHIELD_READER)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--trace", action="store_true", help="print the APDUs (secrets masked)")
    parser.add_argument("--sd", type=_aid, metavar="AID", help="the security domain's AID (default: the card's"
                        " default selection, then A000000151000000, A000000003000000)")
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
                       help="mac: C-MAC; enc: C-MAC + C-DECRYPTION (default mac; secrets need enc)")
    parser.add_argument("--block-size", type=_block_size, help="LOAD block data bytes (default: from the"
                        " card's 9F65, else 247 with C-MAC, 239 with C-DECRYPTION)")


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
    manager = CardManager(transport, None, security_level=args.security_level, sd_aid=args.sd,
                          block_size=args.block_size, warn=console.warn, progress=console.info)
    manager.keys = keys_for_card(manager, _key_options(args), args.test_card)
    return manager


def cmd_info(args) -> int:
    with _open(args) as transport, CardManager(transport, sd_aid=args.sd, warn=console.warn) as manager:
        info = manager.info()
    lines = [f"ISD {info.isd_aid.hex().upper()}" + ("  (CardShield virtual card)" if info.virtual_card else "")
             + ("  CARD_LOCKED" if info.locked else "")]
    if info.card_data.gp_version:
        lines.append(f"GlobalPlatform {info.card_data.gp_version}")
    for option in info.card_data.scp:
        lines.append(f"SCP{option.scp:02X} i={option.i:02X}" + (" (S16)" if option.s16 else ""))
    if info.max_command_data:
        lines.append(f"command data up to {info.max_command_data} bytes (9F65)")
    for key in info.key_information:
        lines.append(f"key set {key.version:#04x}: key {key.id} {key.type_name} length {key.length}")
    if info.cplc:
        lines.append("CPLC " + " ".join(f"{k}={v}" for k, v in info.cplc.as_dict().items()))
    _print(args, info.as_dict(), "\n".join(lines))
    return 0


def cmd_list(args) -> int:
    with _open(args) as transport, _manager(args, transport) as manager:
        registry = manager.registry()
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
            sd_aid=args.sd, block_size=args.block_size, warn=console.warn, progress=console.info)
    _print_install(args, result)
    return 0


def _print_install(args, result) -> None:
    d = result.as_dict()
    _print(args, d, f"installed {d['instance']} (package {d['package']}{', replaced' if result.replaced else ''}): "
                    f"{d['load_file_bytes']} bytes in {d['load_blocks']} LOAD blocks of {d['block_size']} bytes"
                    f"{', with the load-file hash' if result.load_file_hash else ''}{', DAP-signed' if result.dap else ''}"
                    f", {d['apdus']} APDUs, {d['seconds']} s")


def _dap_signer(path: Path | None):
    """RSA PKCS#1 v1.5 / SHA-256 over the Load File Data Block Hash (GPCS C.2), key from a PEM file."""
    if path is None:
        return None
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise GPError(f"--dap-key {path}: not a readable unencrypted PEM private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GPError(f"--dap-key {path}: a DAP key here is an RSA private key")
    return lambda digest: key.sign(digest, padding.PKCS1v15(), hashes.SHA256())


def cmd_install_cap(args) -> int:
    cap = read_cap(args.file)
    signer = _dap_signer(args.dap_key)
    with _open(args) as transport, _manager(args, transport) as manager:
        result = manager.install(cap, applet_aid=args.applet, instance_aid=args.instance, privileges=args.privileges,
                                 applet_data=args.params, force=args.force, secret_parameters=args.secret_params,
                                 load_file_hash=args.load_hash, dap_signer=signer)
    _print_install(args, result)
    return 0


def cmd_delete(args) -> int:
    with _open(args) as transport, _manager(args, transport) as manager:
        manager.delete(args.aid, related=args.related)
    _print(args, {"deleted": args.aid.hex().upper(), "related": args.related},
           f"deleted {args.aid.hex().upper()}{' and its applications' if args.related else ''}")
    return 0


def cmd_put_key(args) -> int:
    new = load_key_file(args.new_key_file, args.new_key_version)
    if not new.version:
        raise GPError(f"{args.new_key_file}: the new key set needs a version: VERSION= in the file or "
                      "--new-key-version (1..0x7F)")
    with _open(args) as transport, _manager(args, transport) as manager:
        result = manager.put_keys(new.enc, new.mac, new.dek, new.version, args.replace)
    what = f"replaced key set {args.replace:#04x} with" if args.replace else "added"
    _print(args, result.as_dict(), f"{what} key set {result.version:#04x}; key check values "
                                   + " ".join(k.hex().upper() for k in result.key_check_values))
    return 0


def cmd_lock(args, locked: bool) -> int:
    with _open(args) as transport, _manager(args, transport) as manager:
        manager.set_application_locked(args.aid, locked)
    print(f"{args.aid.hex().upper()} {'LOCKED: it cannot be selected' if locked else 'unlocked'}")
    return 0


def cmd_lock_card(args, locked: bool) -> int:
    with _open(args) as transport, _manager(args, transport) as manager:
        manager.set_card_locked(locked)
    print("card LOCKED: only the security domain can be selected" if locked else "card unlocked (SECURED)")
    return 0


def cmd_uninstall(args) -> int:
    config = load_applet_config()
    with _open(args) as transport, _manager(args, transport) as manager:
        deleted = manager.uninstall(config.package_aid, [config.instance_aid])
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
    p = sub.add_parser("install-cap", help="load any CAP file and install one of its applets")
    _add_card_options(p)
    p.add_argument("file", type=Path, help="CAP file")
    p.add_argument("--applet", type=_aid, help="applet (class) AID in the CAP (default: its first applet)")
    p.add_argument("--instance", type=_aid, help="instance AID (default: the applet AID)")
    p.add_argument("--privileges", type=_hex, default=b"\x00", help="privileges, 1 or 3 bytes hex (default 00)")
    p.add_argument("--params", type=_hex, default=b"", help="applet install parameters, hex (tag C9 value)")
    p.add_argument("--secret-params", action="store_true", help="the parameters carry keys: send them only under"
                   " C-DECRYPTION (--security-level enc) and mask them in traces")
    p.add_argument("--force", action="store_true", help="delete the package and instance first if present")
    p.add_argument("--load-hash", action="store_true", help="send the SHA-256 Load File Data Block Hash (sent"
                   " anyway with --dap-key, or when the card asks for it)")
    p.add_argument("--dap-key", type=Path, help="RSA private key (PEM) that signs the load file's DAP block")
    p.set_defaults(func=cmd_install_cap)
    p = sub.add_parser("delete", help="delete an application or a package (load file) by AID")
    _add_card_options(p)
    p.add_argument("aid", type=_aid, help="AID to delete")
    p.add_argument("--related", action="store_true", help="with a package: delete its applications too")
    p.set_defaults(func=cmd_delete)
    p = sub.add_parser("put-key", help="add a key set, or replace one (PUT KEY, with key check values)")
    _add_card_options(p)
    p.add_argument("--new-key-file", type=Path, required=True, help="chmod-600 key file with the new keys"
                   " (KEY= or ENC=/MAC=/DEK=, VERSION=)")
    p.add_argument("--new-key-version", type=_int, help="version of the new key set (default: VERSION= in the file)")
    p.add_argument("--replace", type=_int, help="version of the key set to replace (default: add a key set)")
    p.set_defaults(func=cmd_put_key)
    for name, locked, text in (("lock", True, "lock an application (SET STATUS): it can no longer be selected"),
                               ("unlock", False, "unlock a locked application (SET STATUS)")):
        p = sub.add_parser(name, help=text)
        _add_card_options(p)
        p.add_argument("aid", type=_aid, help="application AID")
        p.set_defaults(func=lambda args, locked=locked: cmd_lock(args, locked))
    for name, locked, text in (("lock-card", True, "lock the card (SET STATUS CARD_LOCKED): only the ISD answers"),
                               ("unlock-card", False, "unlock a CARD_LOCKED card back to SECURED")):
        p = sub.add_parser(name, help=text)
        _add_card_options(p)
        p.set_defaults(func=lambda args, locked=locked: cmd_lock_card(args, locked))
    p = sub.add_parser("devcap", help="write the development load file (CardShield virtual card only)")
    p.add_argument("--out", default=str(paths.BUILD_DIR), help="output directory (default build/)")
    p.set_defaults(func=cmd_devcap)


