"""`cardshield card readers|send|status`: look at readers, exchange raw APDUs, and show
what the CardShield applet on a card says about itself."""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    parser = subparsers.add_parser("card", help="list readers, send raw APDUs")
    actions = parser.add_subparsers(dest="card_action", required=True)
    actions.add_parser("readers", help="list PC/SC readers with their index").set_defaults(func=_readers)
    send = actions.add_parser("send", help="send hex APDUs (GET RESPONSE/6Cxx handled)")
    send.add_argument("apdus", nargs="+", type=_apdu_bytes, help="hex APDU, e.g. 00A4040009F04341524453484C44")
    send.add_argument("--reader", default=os.environ.get("CARDSHIELD_READER"), help="exact name or index")
    send.add_argument("--trace", action="store_true", help="print the APDU trace (secrets masked)")
    send.set_defaults(func=_send)
    status = actions.add_parser("status", help="select the CardShield applet and show its FCI")
    status.add_argument("--reader", default=os.environ.get("CARDSHIELD_READER"), help="exact name or index")
    status.set_defaults(func=_status)


def _apdu_bytes(text: str) -> bytes:
    """A command APDU in hex (ISO 7816-4 5.1: CLA INS P1 P2, at least 4 bytes); spaces allowed."""
    try:
        data = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex: give the APDU as hex digits, "
                                         "e.g. 00A4040009F04341524453484C44") from None
    if len(data) < 4:
        raise argparse.ArgumentTypeError(f"{text!r} is {len(data)} bytes: an APDU has at least CLA INS P1 P2")
    return data


def _readers(args) -> int:
    from cardshield.card.transport import list_readers

    for index, name in enumerate(list_readers()):
        print(f"[{index}] {name}")
    return 0


def _send(args) -> int:
    from cardshield.card.apdu import CommandAPDU
    from cardshield.card.transport import Transport

    with Transport.open(args.reader, trace=args.trace or None) as transport:
        for apdu in args.apdus:
            response = transport.transmit(CommandAPDU.decode(apdu))
            print(f"{response.data.hex().upper()} {response.sw:04X} ({response.meaning})")
    return 0


def _status(args) -> int:
    from cardshield.card.client import CardShield, describe_fci
    from cardshield.card.transport import Transport

    with Transport.open(args.reader) as transport:
        print(describe_fci(CardShield(transport).select()))
    return 0
