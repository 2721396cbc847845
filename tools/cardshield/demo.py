"""`cardshield demo`: the main job on the embedded default (the virtual card).

Today: build, start a private virtual card, select the CardShield applet and print its
FCI. Steps for install, personalization, enrollment and payment join DEMO_STEPS as they
exist (each takes the open transport and the stack).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from cardshield.console import info, step


def install_applet(transport, stack) -> None:
    """GlobalPlatform install, as on a real card: the card starts with the package's classes only."""
    from cardshield.console import warn
    from cardshield.gp.project import install_project_applet

    result = install_project_applet(transport, force=False, progress=info, warn=warn)
    print(f"installed {result.instance_aid.hex().upper()} through GlobalPlatform: {result.load_file_bytes} bytes,"
          f" {result.apdus} APDUs, {result.seconds:.2f} s", flush=True)


def select_applet(transport, stack) -> None:
    from cardshield.card.apdu import CommandAPDU
    from cardshield.config import load_applet_config

    config = load_applet_config()
    response = transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, config.instance_aid, ne=256))
    print(f"SELECT {config.instance_aid.hex().upper()}: {response.sw:04X} ({response.meaning})", flush=True)
    if response.data:
        print(f"FCI: {response.data.hex().upper()}", flush=True)


DEMO_STEPS: list[Callable] = [install_applet, select_applet]


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build, start the virtual card and run the main flow")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from dataclasses import replace

    from cardshield.build.pipeline import build
    from cardshield.card.transport import Transport
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack

    build()
    with tempfile.TemporaryDirectory(prefix="cardshield-demo-") as directory:
        with step("starting the private virtual card"):
            # load files only: the applet instance comes from the GlobalPlatform install step
            stack = VirtualCardStack(Path(directory),
                                     applets=[replace(a, instance_aid=b"") for a in default_applets()])
            stack.start()
        try:
            info(f"reader {stack.info.reader!r}, card up in {stack.info.started_in_seconds} s")
            with Transport.open(stack.info.reader) as transport:
                for demo_step in DEMO_STEPS:
                    demo_step(transport, stack)
        finally:
            stack.stop()
    return 0
