"""`cardshield build`: compile the applet and the virtual card host."""

from __future__ import annotations

from cardshield.console import info


def register(subparsers) -> None:
    parser = subparsers.add_parser("build", help="compile the applet and the virtual card host")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from cardshield import paths
    from cardshield.build.applet import applet_sources_present, compile_applet
    from cardshield.build.virtualcard import build_virtualcard

    build_virtualcard()
    info(f"virtual card host: {paths.VIRTUALCARD_CLASSES}")
    if applet_sources_present():
        compile_applet()
        info(f"applet classes: {paths.APPLET_CLASSES}")
    else:
        info(f"no applet sources under {paths.APPLET_SRC} yet: nothing to compile")
    return 0
