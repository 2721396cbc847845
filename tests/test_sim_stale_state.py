"""`cardshield sim stop|status|start` against a state file the stack did not leave behind (a
crash, a reboot, a copied var/ directory): the PID it names may now belong to anyone. The
attack: the state names an unrelated process; the tools must report the state as stale,
remove it, and signal nothing."""

import json
import subprocess
import sys
import time

import pytest

from cardshield.sim.stack import live_group_members


@pytest.fixture
def bystander():
    """An unrelated process group, as another user's job would be."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def _write_state(directory, pid, **extra):
    directory.mkdir(parents=True, exist_ok=True)
    state = {"directory": str(directory), "pid": pid, "pcsc_socket": str(directory / "run" / "pcscd.comm"),
             "reader": "CardShield Virtual Reader 00 00", "control_socket": str(directory / "control.sock"),
             **extra}
    (directory / "state.json").write_text(json.dumps(state))


def _sim(*args):
    return subprocess.run([sys.executable, "-m", "cardshield", "sim", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("extra", [{}, {"start_time": 1}], ids=["state-without-identity", "wrong-start-time"])
def test_stop_with_a_stale_state_naming_another_process_signals_nothing(tmp_path, bystander, extra):
    _write_state(tmp_path / "sim", bystander.pid, **extra)
    stopped = _sim("stop", "--dir", str(tmp_path / "sim"))
    time.sleep(0.3)  # a SIGTERM would have landed by now
    assert bystander.poll() is None, "sim stop killed a process it did not start"
    assert live_group_members(bystander.pid) == [bystander.pid]
    assert stopped.returncode == 0, stopped.stderr
    assert "stale" in stopped.stdout + stopped.stderr
    assert not (tmp_path / "sim" / "state.json").exists()


def test_status_reports_a_stale_state_as_not_running(tmp_path, bystander):
    _write_state(tmp_path / "sim", bystander.pid, start_time=1)
    status = _sim("status", "--dir", str(tmp_path / "sim"))
    assert status.returncode == 1
    assert "stale" in status.stdout + status.stderr
    assert bystander.poll() is None
    assert not (tmp_path / "sim" / "state.json").exists()
