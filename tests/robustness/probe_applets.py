"""Small test applets of the strict card's tests (transaction_probe/, apdu_buffer_probe/,
transient_probe/, platform_probe/): compiled against jcardsim and run alone (or with a second
instance) on a virtual card of the chosen profile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cardshield.card.apdu import CommandAPDU
from cardshield.card.transport import Transport

HERE = Path(__file__).parent


def probe_applet(folder: str, package_aid: bytes, applet_class: str):
    """The probe applet whose sources are in tests/robustness/<folder>, instance AID package_aid || 01."""
    from cardshield import paths
    from cardshield.build.javac import compile_tree
    from cardshield.setup import maven
    from cardshield.sim.applets import VirtualApplet

    classes = paths.BUILD_DIR / f"test-{folder.replace('_', '-')}" / "classes"
    compile_tree(HERE / folder, classes, classpath=maven.classpath(maven.JCARDSIM), release="7",
                 extra=["-g", "-Xlint:-options"])
    instance = package_aid + b"\x01"
    return VirtualApplet(package_aid, instance, applet_class, classes, instance)


@contextmanager
def probe_transport(directory: Path, applet, profile: str) -> Iterator[Transport]:
    """A virtual card of this profile holding only the probe, connected and the probe selected."""
    from cardshield.sim.stack import VirtualCardStack

    with VirtualCardStack(directory, applets=[applet], frontend_class=None, profile=profile) as stack:
        with Transport(stack.info.reader) as transport:
            assert transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, applet.instance_aid)).sw == 0x9000
            yield transport
