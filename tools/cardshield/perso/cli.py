"""`cardshield perso ...`: compile personalization scripts and deliver bundles.

    cardshield perso compile SCRIPT --card-id HEX [--counter N] [--scp80-tar HEX] [-o BUNDLE]
    cardshield perso run BUNDLE --reader NAME [--report FILE]
    cardshield perso run SCRIPT --reader NAME      (local: card id and counter from the card)
    cardshield perso certify REPORT --bundle BUNDLE --attestation-ca DIR --output NEXT
                                                   (relayed: certify the attestation key)

Secrets come from --key-store (env, file:PATH, hook:MODULE:FUNCTION); see
docs/personalization.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

from . import bundle as bundle_mod
from . import compiler, keystore, script as script_mod
from .keys import check_card_id
from .runner import PersoRunError, Runner, read_card_state, save_report


def register(subparsers) -> None:
    parser = subparsers.add_parser("perso", help="personalize cards with secured scripts (docs/personalization.md)")
    sub = parser.add_subparsers(dest="perso_command", required=True, metavar="ACTION")

    comp = sub.add_parser("compile", help="script + card id -> offline bundle of secured APDUs (no secret in it)")
    comp.add_argument("script", type=Path)
    comp.add_argument("--card-id", required=True, help="the card identity in hex (FCI tag 8A), 8-16 bytes")
    comp.add_argument("--counter", type=int, default=1, help="first secure-channel counter to use (default 1)")
    comp.add_argument("--scp80-tar", help="also export SCP80 command packets for this TAR (6 hex digits)")
    comp.add_argument("--key-store", default="env", help="env (default), file:PATH or hook:MODULE:FUNCTION")
    comp.add_argument("--applet-aid", help="instance AID of the applet (default: applet/applet.properties)")
    comp.add_argument("-o", "--output", type=Path, help="bundle file (default: SCRIPT with .bundle.json)")
    comp.set_defaults(func=_compile)

    run = sub.add_parser("run", help="deliver a bundle (or compile and deliver a script) through PC/SC")
    run.add_argument("target", type=Path, help="a bundle (.json) or a script (.yaml)")
    run.add_argument("--reader", help="exact reader name or index")
    run.add_argument("--key-store", default="env", help="for the PIN of key steps and receipt checks")
    run.add_argument("--report", type=Path, help="write the per-step report as JSON here")
    run.add_argument("--applet-aid", help="instance AID when running a script (default: applet.properties)")
    run.add_argument("--trace", action="store_true", help="trace APDUs (secrets masked)")
    run.add_argument("--short-apdus", action="store_true",
                     help="send long commands as ISO command chains of short APDUs even where the card's ATR "
                          "announces extended length (a reader or relay that carries short APDUs only); "
                          "T=0 cards get chains anyway")
    run.add_argument("--record", type=Path, help="append the card's record (card id, attestation certificate) "
                     "to this cardshield-card-records/1 file for the server's card registry")
    run.set_defaults(func=_run)

    cert = sub.add_parser("certify", help="check the attestation key's receipt in a relay's report, certify the "
                          "key and compile the follow-up bundle (certificate parts + the remaining steps)")
    cert.add_argument("report", type=Path, help="the JSON report of `perso run --report` for --bundle")
    cert.add_argument("--bundle", type=Path, required=True, help="the bundle that was delivered")
    cert.add_argument("--attestation-ca", type=Path, required=True, help="directory of the attestation CA")
    cert.add_argument("--output", "-o", type=Path, required=True, help="the follow-up bundle to write")
    cert.add_argument("--record", type=Path, help="also append the card's record to this records file")
    cert.add_argument("--key-store", default="env", help="holds the bundle's issuer master key")
    cert.set_defaults(func=_certify)

    inst = sub.add_parser("install", help="install the applet through GlobalPlatform with this card's "
                          "personalization key set (C-MAC + C-DECRYPTION)")
    from ..gp.cli import _add_card_options

    _add_card_options(inst)
    inst.add_argument("--card-id", required=True,
                      help="card identity to diversify with, hex (8-16 bytes), or 'cplc': IC fabricator, "
                           "IC type and IC serial number from the card's CPLC")
    inst.add_argument("--perso-key-version", type=int, default=1, help="personalization key version (default 1)")
    inst.add_argument("--master", default="ISSUER_MK", help="key store name of the issuer master key")
    inst.add_argument("--key-store", default="env", help="env (default), file:PATH or hook:MODULE:FUNCTION")
    inst.add_argument("--cap", type=Path, help="CAP file (default: build/cardshield.cap, else the dev load file)")
    inst.add_argument("--force", action="store_true", help="delete the installed applet first (its data is lost)")
    inst.set_defaults(func=_install)

    rec = sub.add_parser("receipts", help="check the receipts in a run report a relay sent back")
    rec.add_argument("report", type=Path, help="the JSON report of `perso run --report`")
    rec.add_argument("--bundle", type=Path, required=True, help="the bundle that was delivered")
    rec.add_argument("--key-store", default="env", help="holds the bundle's issuer master key")
    rec.set_defaults(func=_receipts)

    por = sub.add_parser("por", help="check and open an SCP80 Proof of Receipt (SMS TP-User-Data in hex)")
    por.add_argument("user_data", help="TP-User-Data of the PoR, hex, starting 027100")
    por.add_argument("--bundle", type=Path, required=True, help="the bundle whose SCP80 packet it answers")
    por.add_argument("--key-store", default="env", help="holds the bundle's issuer master key")
    por.set_defaults(func=_por)


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise script_mod.ScriptError(f"{what} {text!r} is not hexadecimal") from None


def compile_file(path: Path, card_id: bytes, store: keystore.KeyStore, counter: int = 1,
                 scp80_tar: bytes | None = None, applet_aid: bytes = compiler.APPLET_AID) -> bundle_mod.Bundle:
    try:
        check_card_id(card_id)
    except ValueError as exc:
        raise script_mod.ScriptError(f"card id {card_id.hex().upper()}: {exc} (FCI tag 8A of the card)") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise script_mod.ScriptError(f"cannot read script {path}: {exc.strerror}") from None
    parsed = script_mod.parse(text, path)
    options = compiler.Options(card_id=card_id, first_counter=counter, scp80_tar=scp80_tar, applet_aid=applet_aid)
    return compiler.compile_script(parsed, store, options, text)


def _compile(args) -> int:
    store = keystore.open_key_store(args.key_store)
    tar = _hex(args.scp80_tar, "TAR") if args.scp80_tar else None
    if tar is not None and len(tar) != 3:
        raise script_mod.ScriptError("--scp80-tar is 3 bytes (6 hex digits)")
    result = compile_file(args.script, _hex(args.card_id, "card id"), store, args.counter, tar, _aid(args))
    output = args.output or args.script.with_suffix(".bundle.json")
    result.save(output)
    counters = result.secured_counters
    span = f"counters {counters[0]}..{counters[-1]}" if counters else "no secured step"
    print(f"{output}: {len(result.steps)} steps, {span}, card {result.card_id.hex().upper()}")
    return 0


def card_id_from_cplc(cplc: bytes) -> bytes:
    """IC fabricator (2) || IC type (2) || IC serial number (4): 8 bytes that name the chip
    (GlobalPlatform CPLC, GET DATA 9F7F), as key diversification data commonly does."""
    return cplc[0:4] + cplc[12:16]


def _install(args) -> int:
    from .. import console
    from ..gp import commands as gp
    from ..gp.cli import _key_options, _open
    from ..gp.manager import CardManager
    from ..gp.project import install_project_applet
    from .keys import diversify, install_parameters

    store = keystore.open_key_store(args.key_store)
    with _open(args) as transport:
        if args.card_id == "cplc":
            manager = CardManager(transport, sd_aid=args.sd)
            manager.select_isd()
            data, sw = manager.send(gp.get_data(gp.TAG_CPLC))
            cplc = gp.parse_cplc(data) if sw == 0x9000 else None
            if cplc is None:
                raise script_mod.ScriptError("the card has no CPLC (GET DATA 9F7F): give --card-id in hex")
            card_id = card_id_from_cplc(cplc.raw)
        else:
            card_id = _hex(args.card_id, "card id")
        check_card_id(card_id)
        key_set = diversify(store.master_cmac(args.master), args.perso_key_version, card_id)
        if args.security_level != "enc":
            console.info("install parameters carry the personalization keys: using C-MAC + C-DECRYPTION")
        result = install_project_applet(
            transport, cap_path=args.cap, applet_data=install_parameters(key_set, card_id), force=args.force,
            key_options=_key_options(args), test_card=args.test_card, security_level="enc",
            sd_aid=args.sd, block_size=args.block_size, warn=console.warn, progress=console.info)
    print(f"installed {result.instance_aid.hex().upper()} for card {card_id.hex().upper()}, personalization "
          f"key version {args.perso_key_version}; next: cardshield perso compile SCRIPT --card-id "
          f"{card_id.hex().upper()}")
    return 0


def _bundle_keys(path: Path, store_spec: str):
    from .keys import diversify

    delivered = bundle_mod.load(path)
    store = keystore.open_key_store(store_spec)
    return delivered, diversify(store.master_cmac(delivered.master_key_name), delivered.key_version,
                                delivered.card_id)


def _load_report(path: Path) -> dict:
    import json

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise bundle_mod.BundleError(f"cannot read report {path}: {exc}") from None
    if not isinstance(report, dict):
        raise bundle_mod.BundleError(f"report {path} is not a JSON object of `perso run --report`")
    return report


def _receipts(args) -> int:
    from .runner import check_receipts

    delivered, card = _bundle_keys(args.bundle, args.key_store)
    report = _load_report(args.report)
    if report.get("card_id") != delivered.card_id.hex().upper():
        raise bundle_mod.BundleError(f"report {args.report} is for card {report.get('card_id')}, not this bundle's")
    lines = check_receipts(delivered, report, card)
    if not lines:
        print(f"report {args.report} shows no secured step done")
    for line in lines:
        print(line)
    return 0 if lines and all("confirmed by the card" in line for line in lines) else 1


def _certify(args) -> int:
    from ..attestation.ca import AttestationCA
    from ..attestation.record import append_record
    from .certify import certify_report

    delivered, card = _bundle_keys(args.bundle, args.key_store)
    result = certify_report(delivered, _load_report(args.report), card, AttestationCA.load(args.attestation_ca))
    result.bundle.save(args.output)
    counters = result.bundle.secured_counters
    print(f"attestation key of card {delivered.card_id.hex().upper()} confirmed by its receipt and certified")
    print(f"{args.output}: {len(result.bundle.steps)} steps, counters {counters[0]}..{counters[-1]}")
    if args.record:
        append_record(result.record, args.record)
        print(f"{args.record}: record of card {result.record.card_id_hex}")
    return 0


def write_record(link, delivered: bundle_mod.Bundle, report, path: Path) -> int:
    """The card's record from the attestation certificate it holds (public data, read back)."""
    import datetime as dt

    from ..attestation.record import CardRecord, append_record
    from ..card.client import CardShield

    card = CardShield(link, aid=delivered.applet_aid)
    fci = card.select()
    der = card.read_attestation_certificate()
    if der is None:
        print(f"no record written: card {report.card_id} has no attestation certificate "
              "(add attestation_key and attestation_certificate steps to the script)", file=sys.stderr)
        return 1
    append_record(CardRecord(delivered.card_id, der, fci.version, dt.datetime.now(dt.timezone.utc),
                             delivered.script_sha256), path)
    print(f"{path}: record of card {report.card_id}")
    return 0


def _por(args) -> int:
    from . import scp80

    _, card = _bundle_keys(args.bundle, args.key_store)
    try:
        por = scp80.decode_por(card.enc, card.mac, _hex(args.user_data, "PoR"))
    except scp80.PacketError as exc:
        raise script_mod.ScriptError(f"PoR refused: {exc}") from None
    sw = f", last status word {por.last_sw:04X}" if por.last_sw is not None else ""
    print(f"TAR {por.tar.hex().upper()} counter {por.counter}: {por.status_text}"
          f"{f', {por.commands_executed} command(s)' if por.commands_executed is not None else ''}{sw}")
    return 0 if por.status == 0 and por.last_sw in (0x9000, None) else 1


def _aid(args) -> bytes:
    if not args.applet_aid:
        return compiler.APPLET_AID
    aid = _hex(args.applet_aid, "applet AID")
    if not 5 <= len(aid) <= 16:
        raise script_mod.ScriptError(f"applet AID {args.applet_aid} must be 5-16 bytes (ISO/IEC 7816-4 8.2.1.2)")
    return aid


def _is_bundle(path: Path) -> bool:
    return path.suffix == ".json" or path.read_text(encoding="utf-8").lstrip().startswith("{")


def _run(args) -> int:
    from ..card.transport import Transport

    store = keystore.open_key_store(args.key_store)
    # None: extended APDUs where the protocol and the ATR allow them, else chains (section 5)
    extended_length = False if args.short_apdus else None
    with Transport.open(args.reader, trace=args.trace or None, extended_length=extended_length) as link:
        if _is_bundle(args.target):
            delivered = bundle_mod.load(args.target)
        else:
            # local personalization: identity and counter come from the card itself
            state = read_card_state(link, _aid(args))
            if state.card_id is None:
                raise PersoRunError("the card reports no identity (FCI 8A): install it with tags C0 and C1")
            delivered = compile_file(args.target, state.card_id, store, state.counter + 1, applet_aid=_aid(args))
        report = Runner(link, delivered, store=store).run()
        if args.report:
            save_report(report, args.report)
        if not report.succeeded:
            return 1
        if args.record:
            return write_record(link, delivered, report, args.record)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m cardshield perso ...")
