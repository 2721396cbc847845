"""`cardshield server ...`: CA setup, migrations, clients, users and activation codes, the
card registry, revocation, running the service."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cardshield.errors import UserError

from .settings import load_settings


def register(subparsers) -> None:
    server = subparsers.add_parser("server", help="authentication server (CA, enrollment, payments)")
    sub = server.add_subparsers(dest="server_command", required=True)

    init = sub.add_parser("init", help="create (or import) the CA and request-signing keys, "
                                       "migrate the database")
    init.add_argument("--import-key", type=Path, help="existing CA private key (PEM, mode 0600)")
    init.add_argument("--import-cert", type=Path, help="existing CA certificate (PEM)")
    init.set_defaults(func=cmd_init)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    run = sub.add_parser("run", help="serve the HTTP API with uvicorn")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=_port, default=8080, help="TCP port, 1-65535 (default 8080)")
    run.add_argument("--workers", type=_positive, default=1, help="uvicorn worker processes (default 1)")
    run.add_argument("--ssl-certfile", help="TLS certificate chain (PEM); required off loopback")
    run.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    run.set_defaults(func=cmd_run)

    client = sub.add_parser("client", help="register an API client and print its token once")
    client.add_argument("name")
    client.add_argument("--role", choices=("terminal", "merchant", "admin"), required=True)
    client.add_argument("--display-name", help="a merchant's name as card holders see it and "
                                               "their cards sign it (default: NAME)")
    client.set_defaults(func=cmd_client)

    sub.add_parser("clients", help="list the API clients (never their tokens)").set_defaults(
        func=cmd_clients)

    disable = sub.add_parser("disable-client", help="end an API client's token for good")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_disable_client)

    user = sub.add_parser("user", help="the bank's users: create, list, show, issue an "
                                       "activation code")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user (terminals never create users)")
    add.add_argument("name")
    add.set_defaults(func=cmd_user_add)
    user_sub.add_parser("list", help="list users and their active certificates").set_defaults(
        func=cmd_user_list)
    show = user_sub.add_parser("show", help="one user and their active certificates")
    show.add_argument("name")
    show.set_defaults(func=cmd_user_show)
    code = user_sub.add_parser("code", help="issue a one-time activation code for enrolling a "
                                            "slot (printed once; hand it over out of band)")
    code.add_argument("name")
    code.add_argument("--slot", type=int, choices=(1, 2), default=1)
    code.add_argument("--replace", action="store_true",
                      help="the code may replace the user's active certificate for the slot")
    code.set_defaults(func=cmd_user_code)

    cards = sub.add_parser("cards", help="the card registry: import personalization records, "
                                         "list, revoke")
    cards_sub = cards.add_subparsers(dest="cards_command", required=True)
    imp = cards_sub.add_parser("import", help="register the cards of a cardshield-card-records/1 "
                                              "file (all or nothing)")
    imp.add_argument("records", type=Path)
    imp.set_defaults(func=cmd_cards_import)
    cards_sub.add_parser("list", help="registered cards, their status and user").set_defaults(
        func=cmd_cards_list)
    card_revoke = cards_sub.add_parser("revoke", help="revoke a card: no more enrollments, its "
                                                      "certificates revoked")
    card_revoke.add_argument("card_id", help="hex, as in the records file")
    card_revoke.set_defaults(func=cmd_cards_revoke)

    trust = sub.add_parser("trust-attestation-ca", help="add an attestation CA certificate to "
                                                        "the trust store of the card registry")
    trust.add_argument("certificate", type=Path, help="PEM (attestation-ca.pem)")
    trust.set_defaults(func=cmd_trust_attestation_ca)

    revoke = sub.add_parser("revoke", help="revoke a certificate by serial, or all of a user's")
    who = revoke.add_mutually_exclusive_group(required=True)
    who.add_argument("--serial", help="certificate serial, hex")
    who.add_argument("--user", help="user id")
    revoke.add_argument("--reason", default="unspecified")
    revoke.set_defaults(func=cmd_revoke)

    unblock = sub.add_parser("unblock", help="unblock a user and their cards after failures")
    unblock.add_argument("--user", required=True)
    unblock.set_defaults(func=cmd_unblock)

    bench = sub.add_parser("bench", help="benchmark on loopback; writes docs/benchmarks.md")
    bench.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    bench.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    bench.add_argument("--database-url", help="default: a fresh SQLite file under var/bench")
    bench.add_argument("--out", type=Path, help="default: docs/benchmarks.md")
    bench.set_defaults(func=cmd_bench)

    sub.add_parser("sweep", help="expire abandoned enrollments (revoking their unconfirmed "
                                 "certificates) and unfinished payments").set_defaults(func=cmd_sweep)

    crl = sub.add_parser("crl", help="write the current CRL (DER)")
    crl.add_argument("--out", type=Path, required=True)
    crl.set_defaults(func=cmd_crl)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port: give a number from 1 to 65535")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def _context():
    from .ca import CaSetupError
    from .context import ServerContext
    try:
        return ServerContext.create(load_settings())
    except CaSetupError as exc:
        raise UserError(f"{exc}")


def cmd_init(args: argparse.Namespace) -> int:
    from .ca import CaSetupError, init_ca
    from .migrations import upgrade
    settings = load_settings()
    try:
        written = init_ca(settings, import_key=args.import_key, import_cert=args.import_cert)
    except CaSetupError as exc:
        raise UserError(f"{exc}")
    from .activation import ensure_activation_key
    if ensure_activation_key(settings.activation_key_path):
        written.append(settings.activation_key_path)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"CA already present in {settings.ca_dir}; kept as is")
    upgrade(settings.effective_database_url)
    print(f"database ready: {_redacted(settings.effective_database_url)}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from .migrations import upgrade
    settings = load_settings()
    upgrade(settings.effective_database_url)
    print(f"database at head: {_redacted(settings.effective_database_url)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.ssl_certfile:
        raise UserError("serving off loopback needs TLS: give --ssl-certfile and --ssl-keyfile "
                 "(or terminate TLS in a reverse proxy bound to loopback)")
    _context()  # fail early, with a readable message, if the CA is not set up
    try:
        uvicorn.run("cardshield.server.asgi:create_from_env", factory=True, host=args.host,
                    port=args.port, workers=args.workers, ssl_certfile=args.ssl_certfile,
                    ssl_keyfile=args.ssl_keyfile, log_level="warning", access_log=False)
    except SystemExit as exc:  # uvicorn exits 3 when it cannot start (after logging why)
        if exc.code:
            raise UserError(f"the server did not start on {args.host}:{args.port} (uvicorn's reason above); "
                            "a port in use: choose another --port") from None
    return 0


def cmd_client(args: argparse.Namespace) -> int:
    from .errors import ApiError
    from .tokens import create_client
    try:
        token = create_client(_context().db, args.name, args.role,
                              display_name=args.display_name)
    except (ApiError, ValueError) as exc:
        print(f"cardshield server client: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def cmd_clients(_args: argparse.Namespace) -> int:
    from .tokens import list_clients
    for c in list_clients(_context().db):
        state = f"disabled {c.disabled_at:%Y-%m-%d %H:%M} UTC" if c.disabled_at else "active"
        shown = f"  payee {c.display_name!r}" if c.role == "merchant" else ""
        print(f"{c.name:24} {c.role:9} created {c.created_at:%Y-%m-%d %H:%M} UTC  {state}{shown}")
    return 0


def cmd_disable_client(args: argparse.Namespace) -> int:
    from .tokens import disable_client
    context = _context()
    if disable_client(context.db, args.name) is None:
        print(f"cardshield server disable-client: no client {args.name!r} "
              "(`cardshield server clients` lists them)", file=sys.stderr)
        return 1
    print(f"client {args.name} disabled: running servers refuse its token within "
          f"{context.settings.token_cache_seconds:g} s (their token cache)")
    return 0


def _refused(command: str, exc) -> int:
    """A refusal by the server's rules (unknown user, taken name, untrusted record): the
    reason on stderr, exit status 1."""
    print(f"cardshield server {command}: {exc.message}", file=sys.stderr)
    return 1


def _print_user(u) -> None:
    state = f"blocked {u.blocked_at:%Y-%m-%d %H:%M} UTC" if u.blocked_at else "active"
    print(f"{u.user_id:24} created {u.created_at:%Y-%m-%d %H:%M} UTC  {state}")
    for c in u.certificates:
        card = f"card {c.card_id}" if c.card_id else "no card attestation"
        print(f"    slot {c.slot}: certificate {c.serial} ({card})")


def _one_user(command: str, fetch, name: str) -> int:
    from .errors import ApiError
    try:
        _print_user(fetch(_context().db, name))
    except ApiError as exc:
        return _refused(command, exc)
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from .users import create_user
    return _one_user("user add", create_user, args.name)


def cmd_user_list(_args: argparse.Namespace) -> int:
    from .users import list_users
    for u in list_users(_context().db):
        _print_user(u)
    return 0


def cmd_user_show(args: argparse.Namespace) -> int:
    from .users import get_user
    return _one_user("user show", get_user, args.name)


def cmd_user_code(args: argparse.Namespace) -> int:
    from .activation import issue_code
    from .errors import ApiError
    try:
        issued = issue_code(_context(), args.name, args.slot, replace=args.replace)
    except ApiError as exc:
        return _refused("user code", exc)
    print(issued.activation_code)
    print(f"activation code for {issued.user_id}, slot {issued.slot}"
          f"{', may replace the active certificate' if issued.replace else ''}; single use, "
          f"expires {issued.expires_at:%Y-%m-%d %H:%M} UTC. It is not stored: hand it to the "
          "user out of band now.", file=sys.stderr)
    return 0


def cmd_cards_import(args: argparse.Namespace) -> int:
    from cardshield.attestation.record import load_records
    from .errors import ApiError
    from .registry import import_records
    try:
        result = import_records(_context(), load_records(args.records))
    except ApiError as exc:
        return _refused("cards import", exc)
    for card_id in result.imported:
        print(f"registered card {card_id}")
    for card_id in result.unchanged:
        print(f"card {card_id} was registered already (unchanged)")
    return 0


def _print_card(c) -> None:
    user = f"bound to {c.bound_user}" if c.bound_user else "not bound yet"
    print(f"{c.card_id:32} {c.status:8} {user:28} applet {c.applet_version}  "
          f"attested by {c.attestation_ca}")


def cmd_cards_list(_args: argparse.Namespace) -> int:
    from .registry import list_cards
    for c in list_cards(_context()):
        _print_card(c)
    return 0


def cmd_cards_revoke(args: argparse.Namespace) -> int:
    from .errors import ApiError
    from .registry import revoke_card
    try:
        _print_card(revoke_card(_context(), args.card_id))
    except ApiError as exc:
        return _refused("cards revoke", exc)
    return 0


def cmd_trust_attestation_ca(args: argparse.Namespace) -> int:
    from .registry import install_trust_root
    settings = load_settings()
    try:
        pem = args.certificate.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {args.certificate}: {exc.strerror}")
    try:
        path = install_trust_root(settings.attestation_trust_dir, pem)
    except ValueError as exc:
        raise UserError(f"{args.certificate}: {exc}")
    print(f"trusted attestation CA in {path}; restart running servers to apply it")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from .errors import ApiError
    from .revocation import revoke
    try:
        serials = revoke(_context(), serial_hex=args.serial, user_external_id=args.user,
                         reason=args.reason)
    except ApiError as exc:
        raise UserError(f"{exc.message}")
    print("revoked: " + (", ".join(serials) or "nothing (already revoked)"))
    return 0


def cmd_unblock(args: argparse.Namespace) -> int:
    from .limits import unblock
    ctx = _context()
    with ctx.db.transaction() as s:
        found = unblock(s, user_external_id=args.user)
    if not found:
        raise UserError(f"no user {args.user}")
    print(f"unblocked {args.user}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run
    return run(seconds=args.seconds, workers=args.workers, database_url=args.database_url,
               out=args.out)


def cmd_sweep(args: argparse.Namespace) -> int:
    from .enrollment import sweep_expired
    from .payment import sweep_expired_payments
    with _context().db.transaction() as s:
        swept = sweep_expired(s)
        payments = sweep_expired_payments(s.connection())
    print(f"expired {len(swept)} abandoned enrollment(s) and {len(payments)} unfinished payment(s)")
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    from .revocation import renew_crl
    args.out.write_bytes(renew_crl(_context()))
    print(f"wrote {args.out}")
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


