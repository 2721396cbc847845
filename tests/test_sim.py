"""The virtual card stack as a user runs it: `cardshield sim start/status/stop` in its own
state directory, seen by an independent PC/SC client, and nothing left behind."""

import json
import os
import subprocess
import sys

import pytest

from cardshield.sim.stack import live_group_members

pytestmark = [pytest.mark.virtual_only, pytest.mark.slow]


def cardshield(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cardshield", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_stack_starts_serves_opensc_and_stops_without_leftovers(tmp_path):
    directory = tmp_path / "sim"
    started = cardshield("sim", "start", "--dir", str(directory))
    assert started.returncode == 0, started.stderr
    state = json.loads((directory / "state.json").read_text())
    try:
        assert live_group_members(state["pid"])
        env = dict(os.environ, PCSCLITE_CSOCK_NAME=state["pcsc_socket"])
        # An independent PC/SC client (OpenSC) sees the card in the private pcscd only.
        listing = subprocess.run(["opensc-tool", "--list-readers"], capture_output=True, text=True, env=env)
        assert state["reader"] in listing.stdout
        atr = subprocess.run(["opensc-tool", "--reader", "0", "--atr"], capture_output=True, text=True, env=env)
        assert "3b:f5:18:00:00:81:31:fe:45:80:73:00:00:c0:d5" in atr.stdout.lower()
        assert cardshield("sim", "status", "--dir", str(directory)).returncode == 0
        second = cardshield("sim", "start", "--dir", str(directory))
        assert second.returncode == 1 and "already runs" in second.stderr
    finally:
        stopped = cardshield("sim", "stop", "--dir", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert live_group_members(state["pid"]) == []
    assert not (directory / "state.json").exists()
    assert "stopped" in stopped.stdout


def test_stack_dies_with_the_process_that_started_it(tmp_path):
    """A test run killed by a timeout must not leave pcscd and the card host behind."""
    script = tmp_path / "starter.py"
    script.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from cardshield.sim.stack import VirtualCardStack\n"
        f"stack = VirtualCardStack(Path({str(tmp_path / 'sim')!r}))\n"
        "info = stack.start()\n"
        "print(info.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    starter = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(starter.stdout.readline())
        assert live_group_members(pid)
    finally:
        starter.kill()  # SIGKILL: no cleanup code runs in the starter
        starter.wait()
    import time

    deadline = time.monotonic() + 10
    while live_group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_group_members(pid) == []


def test_a_second_stack_in_the_same_process_and_back(tmp_path, card_stack, probe_applet):
    """pcsc-lite reads PCSCLITE_CSOCK_NAME once per process: stacks started one after the
    other (or nested, like this one inside the session's) must still each be reachable."""
    from cardshield.card.apdu import CommandAPDU
    from cardshield.card.transport import Transport
    from cardshield.sim.stack import VirtualCardStack

    select_probe = CommandAPDU(0x00, 0xA4, 0x04, 0x00, probe_applet.instance_aid)
    with VirtualCardStack(tmp_path / "inner", applets=[]) as inner:
        with Transport.open(inner.info.reader) as transport:
            assert transport.transmit(select_probe).sw == 0x6A82  # the inner card has no probe applet
    with Transport.open(card_stack.info.reader) as transport:
        assert transport.transmit(select_probe).sw == 0x9000  # the session's card again


def test_missing_vpcd_driver_is_named_with_its_package(tmp_path, monkeypatch):
    from cardshield.sim import stack as stack_module
    from cardshield.sim.stack import SimError, VirtualCardStack

    monkeypatch.setattr(stack_module, "VPCD_DRIVER", tmp_path / "libifdvpcd.so")
    with pytest.raises(SimError, match="apt-get install vsmartcard-vpcd"):
        VirtualCardStack(tmp_path / "sim").start()
    assert not (tmp_path / "sim").exists()  # refused before creating anything


def test_a_card_host_that_cannot_start_is_reported_with_its_log(tmp_path, probe_applet):
    from dataclasses import replace

    from cardshield.sim.stack import SimError, VirtualCardStack

    broken = replace(probe_applet, applet_class="org.cardshield.probe.NoSuchApplet")
    stack = VirtualCardStack(tmp_path / "sim", applets=[broken], start_timeout=20)
    with pytest.raises(SimError) as raised:
        stack.start()
    assert "exited" in str(raised.value) and "NoSuchApplet" in str(raised.value)
    assert stack.info is None and not (tmp_path / "sim" / "state.json").exists()
