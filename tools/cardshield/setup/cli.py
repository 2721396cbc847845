"""`cardshield setup`: install what is missing (the same as ./cardshield does first)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("setup", help="install Debian packages, .venv and Java jars when missing")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from cardshield.setup import ensure_all

    ensure_all()
    return 0
