"""The project's Python virtual environment (.venv) with tools/ installed editable.

Every package comes from tools/requirements.lock, pinned by version and sha256 (pip
--require-hashes), the runtime dependencies and the test, bench and e2e extras alike (so
`./cardshield test` has what the tests need); regenerate the lock after changing
tools/pyproject.toml with:
    uv pip compile tools/pyproject.toml tools/build-requirements.in --all-extras --generate-hashes \
        --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --no-header -o tools/requirements.lock
(run from tools/; `pip-compile --generate-hashes --all-extras` writes the same). Limit: the
sdists in it (pyscard) are built with pip's isolated build environment, whose own build
requirements pip does not hash-check.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv as stdlib_venv

from cardshield import paths
from cardshield.console import step
from cardshield.setup import SetupError

STAMP = paths.VENV_DIR / ".cardshield-installed"
LOCK = paths.TOOLS_DIR / "requirements.lock"
# what the installed environment was made from: any change reinstalls
STAMPED = ("pyproject.toml", "requirements.lock", "build-requirements.in")


def _wanted_stamp() -> str:
    digest = hashlib.sha256()
    for name in STAMPED:
        digest.update(name.encode() + b"\0" + (paths.TOOLS_DIR / name).read_bytes() + b"\0")
    digest.update(sys.version.encode())
    return digest.hexdigest()


def venv_python() -> str:
    return str(paths.VENV_DIR / "bin" / "python")


def ensure_venv() -> None:
    """Create .venv and install the lock, then tools/ itself, unless nothing in STAMPED changed since."""
    wanted = _wanted_stamp()
    if STAMP.exists() and STAMP.read_text() == wanted and (paths.VENV_DIR / "bin" / "python").exists():
        return
    if sys.version_info < (3, 11):
        raise SetupError(f"Python 3.11+ is needed to create .venv, this is {sys.version.split()[0]}")
    if not (paths.VENV_DIR / "bin" / "python").exists():
        with step(f"creating {paths.VENV_DIR}"):
            stdlib_venv.EnvBuilder(with_pip=True, clear=True).create(paths.VENV_DIR)
    pip = [venv_python(), "-m", "pip", "install", "--progress-bar", "off", "--no-deps"]
    with step(f"pip install --require-hashes -r {LOCK.relative_to(paths.ROOT)} "
              "(pyscard builds from source: about a minute the first time)"):
        _pip(pip + ["--require-hashes", "-r", str(LOCK)], f"installing {LOCK.name}")
    with step("pip install -e tools/ (the cardshield package; its dependencies are the lock's)"):
        _pip(pip + ["--no-build-isolation", "-e", str(paths.TOOLS_DIR)], "pip install -e tools/")
    STAMP.write_text(wanted)


def _pip(command: list[str], what: str) -> None:
    if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
        raise SetupError(f"{what} failed (see pip's output above); a hash mismatch means a package differs "
                         f"from the one {LOCK.name} pinned: do not edit the lock by hand, regenerate it "
                         "(tools/cardshield/setup/venv.py says how)")
