"""`cardshield bench [card|server|all]`: figures into docs/benchmarks.md; card on a private
virtual card, server the same as `cardshield server bench` with its defaults."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cardshield import paths


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks into docs/benchmarks.md: card, server or all")
    parser.add_argument("target", choices=("card", "server", "all"), nargs="?", default="all",
                        help="card, server (options: `cardshield server bench --help`) or all (default)")
    parser.add_argument("--output", type=Path, default=paths.ROOT / "docs" / "benchmarks.md",
                        help="file the card section is written to (default docs/benchmarks.md)")
    parser.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib)")
    parser.set_defaults(func=_run)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_card_bench(output: Path, plots: bool = True) -> str:
    from cardshield.card.client import CardShield
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack

    from .card import BenchIssuer, CardBench
    from .report import plot, render, rsa_sign_floor_ms, write_section

    paths.VAR_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=paths.VAR_DIR) as directory:
        _progress("bench card: starting a private virtual card")
        issuer = BenchIssuer(Path(directory) / "issuer")
        issuer.directory.mkdir()
        with VirtualCardStack(Path(directory) / "card", applets=issuer.applets(default_applets())) as stack:
            bench = CardBench(stack.info.reader, stack.pristine, issuer, _progress)
            try:
                operations = bench.run()
                buffer_size = _buffer_size(CardShield(bench.extended))
            finally:
                bench.close()
    _progress("bench card: RSA-2048 floor with OpenSSL")
    floor = rsa_sign_floor_ms()
    images = plot(operations, output.parent / "bench") if plots else []
    section = render(operations, floor, buffer_size, images)
    write_section(output, section)
    return section


def _buffer_size(card) -> int | None:
    """FCI tag 89 (command/response buffer size), which parse_fci does not keep."""
    from cardshield.protocol import commands, tlv

    fci = tlv.decode(card.transmit(commands.select_applet(card.aid)).data)[0].children()
    proprietary = tlv.decode(tlv.require(fci, 0xA5, "FCI"))
    value = tlv.find(proprietary, 0x89)
    return int.from_bytes(value, "big") if value else None


def _run(args) -> int:
    if args.target in ("card", "all"):
        section = run_card_bench(args.output, plots=not args.no_plots)
        print(section)
        print(f"written to {args.output}")
    if args.target in ("server", "all"):
        from cardshield.cli import main

        return main(["server", "bench"])
    return 0
