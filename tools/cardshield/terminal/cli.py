"""`cardshield terminal ...`: the relay agent.

    cardshield terminal serve  [--server URL] [--port 8765] [--origin URL ...] [--reader NAME]
    cardshield terminal enroll USER_ID [--server URL] [--reader NAME]    (activation code and PIN asked here)
    cardshield terminal pay PAYMENT_ID [--server URL] [--reader NAME]    (payment shown here)

The terminal's API token comes from CARDSHIELD_TERMINAL_TOKEN or --token-file (never the
command line, where other users could read it in the process list).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from cardshield.errors import UserError

TOKEN_ENV = "CARDSHIELD_TERMINAL_TOKEN"
SERVER_ENV = "CARDSHIELD_SERVER_URL"
DEFAULT_SERVER = "http://127.0.0.1:8080"
DEFAULT_PORT = 8765


def register(subparsers) -> None:
    parser = subparsers.add_parser("terminal", help="relay agent between the authentication server and the card")
    sub = parser.add_subparsers(dest="terminal_command", required=True, metavar="ACTION")

    def common(p):
        p.add_argument("--server", default=os.environ.get(SERVER_ENV, DEFAULT_SERVER),
                       help=f"authentication server URL (default ${SERVER_ENV} or {DEFAULT_SERVER})")
        p.add_argument("--token-file", type=Path, help=f"file holding the terminal token (default ${TOKEN_ENV})")
        p.add_argument("--ca-file", help="CA certificates to trust for an https:// server (default: the system's)")
        p.add_argument("--reader", help="exact reader name or index (default $CARDSHIELD_READER, or the one "
                                        "reader holding a card)")
        p.add_argument("--slot", type=int, choices=(1, 2), default=1, help="key slot (1 payment, 2 authentication)")

    serve = sub.add_parser("serve", help="serve the pages' WebSocket and the PIN dialog on 127.0.0.1")
    common(serve)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--origin", action="append", default=[],
                       help="another page origin allowed to use the agent (the server's is always allowed)")
    serve.set_defaults(func=_serve)

    enroll = sub.add_parser("enroll", help="apply for a certificate for the card (patent figure 5)")
    common(enroll)
    enroll.add_argument("user_id")
    enroll.add_argument("--label", default="card", help="card label recorded with the certificate")
    enroll.set_defaults(func=_flow, kind="enroll")

    pay = sub.add_parser("pay", help="sign a payment the merchant created (patent figure 6)")
    common(pay)
    pay.add_argument("payment_id")
    pay.set_defaults(func=_flow, kind="pay")


def read_token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as error:
            raise UserError(f"cannot read the terminal token from {token_file}: {error.strerror}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UserError(f"no terminal token: set {TOKEN_ENV} or pass --token-file (create one with "
                        "`cardshield server client NAME --role terminal`)")
    return token


def read_activation_code() -> str:
    """The bank's one-time code, typed without echo (never an argument: the process list
    and the shell history would keep it); one line of stdin when not on a terminal."""
    import getpass
    if sys.stdin.isatty():
        code = getpass.getpass("Activation code from the bank: ")
    else:
        code = sys.stdin.readline()
    code = code.strip()
    if not code:
        raise UserError("no activation code given: type the code the bank gave you for this enrollment")
    return code


def _client(args):
    from .server_client import ServerClient

    try:
        return ServerClient(args.server, read_token(args.token_file), ca_file=args.ca_file)
    except ValueError as error:
        raise UserError(str(error)) from None


def print_progress(event) -> None:
    counts = f" [{event.relayed} APDUs relayed, {event.local} local]" if event.relayed or event.local else ""
    print(f"  {event.step:>5}  {event.text}  ({event.seconds:.2f} s){counts}", flush=True)


def _flow(args) -> int:
    from .flows import FlowFailed
    from .session import run_flow
    from .ui import TtyInterface

    subject = args.user_id if args.kind == "enroll" else args.payment_id
    client = _client(args)
    code = read_activation_code() if args.kind == "enroll" else None
    try:
        runner = run_flow(args.kind, subject, server=client, ui=TtyInterface(), reader=args.reader,
                          on_progress=print_progress, slot=args.slot,
                          card_label=getattr(args, "label", "card"), activation_code=code)
    except FlowFailed as failure:
        print(f"cardshield terminal {args.kind}: {failure}", file=sys.stderr)
        return 1
    state = runner.report.state
    if args.kind == "enroll":
        print(f"certificate {state.get('certificate_serial')} stored in the card "
              f"({runner.report.relayed} APDUs relayed in {runner.report.seconds:.1f} s)")
    else:
        print(f"payment {state.get('payment_id')} authorized, card counter {state.get('card_counter')}")
    return 0


def _serve(args) -> int:
    from .agent import AgentConfig, AgentServer, default_origins

    try:
        origins = default_origins(args.server, args.origin)
    except ValueError as error:
        raise UserError(str(error)) from None
    try:
        server = AgentServer(AgentConfig(_client(args), origins, reader=args.reader, port=args.port, slot=args.slot))
    except OSError as error:
        raise UserError(f"cannot listen on 127.0.0.1:{args.port}: {error.strerror}; is another agent running? "
                        "(choose another --port)") from None
    print(f"CardShield agent on http://127.0.0.1:{server.port}/ (PIN dialog) and ws://127.0.0.1:{server.port}/ws; "
          f"pages allowed from: {', '.join(sorted(origins))}; server {args.server}", flush=True)
    server.serve_forever()
    return 0
