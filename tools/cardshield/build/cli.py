"""`cardshield build [--jc-home DIR]`: compile, check the Java Card subset, convert to CAP."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("build", help="compile the applet, check the Java Card subset, make the CAP")
    parser.add_argument("--jc-home", help="Java Card SDK kit directory (default: $JC_HOME); without one no CAP")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from cardshield.build.pipeline import build

    build(args.jc_home)
    return 0
