"""`cardshield server ...`: CA setup, migrations, clients, revocation, running the service."""
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
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--ssl-certfile", help="TLS certificate chain (PEM); required off loopback")
    run.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    run.set_defaults(func=cmd_run)

    client = sub.add_parser("client", help="register an API client and print its token once")
    client.add_argument("name")
    client.add_argument("--role", choices=("terminal", "merchant", "admin"), required=True)
    client.set_defaults(func=cmd_client)

    sub.add_parser("clients", help="list the API clients (never their tokens)").set_defaults(
        func=cmd_clients)

    disable = sub.add_parser("disable-client", help="end an API client's token for good")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_disable_client)

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
    uvicorn.run("cardshield.server.asgi:create_from_env", factory=True, host=args.host,
                port=args.port, workers=args.workers, ssl_certfile=args.ssl_certfile,
                ssl_keyfile=args.ssl_keyfile, log_level="warning", access_log=False)
    return 0


def cmd_client(args: argparse.Namespace) -> int:
    from .errors import ApiError
    from .tokens import create_client
    try:
        token = create_client(_context().db, args.name, args.role)
    except (ApiError, ValueError) as exc:
        print(f"cardshield server client: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_clients(_args: argparse.Namespace) -> int:
    from .tokens import list_clients
    for c in list_clients(_context().db):
        state = f"disabled {c.disabled_at:%Y-%m-%d %H:%M} UTC" if c.disabled_at else "active"
        print(f"{c.name:24} {c.role:9} created {c.created_at:%Y-%m-%d %H:%M} UTC  {state}")
    return 0


def cmd_disable_client(args: argparse.Namespace) -> int:
    from .tokens import disable_client
    context = _context()
    if disable_client(context.db, args.name) is None:
        print(f"cardshield server disable-client: no client {args.name!r} "
              "(`cardshield server clients` lists them)", file=sys.stderr)
        return 2
    print(f"client {args.name} disabled: running servers refuse its token within "
          f"{context.settings.token_cache_seconds:g} s (their token cache)")
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


