"""Fixtures of the GlobalPlatform tests: the probe applet's development load file, and
virtual cards whose Issuer Security Domain behaves like a given family of real cards
(IsdProfile.java: plain, gp211, s16, dm, locked, small)."""
from __future__ import annotations

import pytest

from cardshield.gp.cap import read_cap
from cardshield.gp.devloadfile import write_development_load_file


@pytest.fixture(scope="session")
def probe_load_file(probe_applet, tmp_path_factory):
    path = write_development_load_file(tmp_path_factory.mktemp("cap"), probe_applet.package_aid,
                                       "org.cardshield.probe", "1.0", [probe_applet.module_aid],
                                       probe_applet.classes_dir)
    return read_cap(path)


@pytest.fixture(scope="class")
def isd_card(request, real_reader, probe_applet, tmp_path_factory):
    """A virtual card of the class's ISD_PROFILE (and ISD_PROPERTIES) holding the probe
    applet's load file; while the class runs, this process's PC/SC clients reach it."""
    if real_reader is not None:
        pytest.skip("virtual ISD profiles exist on the virtual card only")
    from dataclasses import replace

    from cardshield.sim.stack import VirtualCardStack

    stack = VirtualCardStack(tmp_path_factory.mktemp(f"isd-{request.cls.ISD_PROFILE}"),
                             applets=[replace(probe_applet, instance_aid=b"")],
                             isd_profile=request.cls.ISD_PROFILE,
                             isd_properties=getattr(request.cls, "ISD_PROPERTIES", {}))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def isd_transport(isd_card):
    from cardshield.card.transport import Transport

    isd_card.pristine()
    connection = Transport(isd_card.info.reader)
    connection.connect()
    try:
        yield connection
    finally:
        connection.close("reset")
