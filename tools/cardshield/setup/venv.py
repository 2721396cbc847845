"""The project's Python virtual environment (.venv) with tools/ installed editable."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv as stdlib_venv

from cardshield import paths
from cardshield.console import step
from cardshield.setup import SetupError

STAMP = paths.VENV_DIR / ".cardshield-installed"


def _wanted_stamp() -> str:
    digest = hashlib.sha256((paths.TOOLS_DIR / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def venv_python() -> str:
    return str(paths.VENV_DIR / "bin" / "python")


def ensure_venv() -> None:
    """Create .venv and `pip install -e tools/` unless pyproject.toml is unchanged since."""
    wanted = _wanted_stamp()
    if STAMP.exists() and STAMP.read_text() == wanted and (paths.VENV_DIR / "bin" / "python").exists():
        return
    if sys.version_info < (3, 11):
        raise SetupError(f"Python 3.11+ is needed to create .venv, this is {sys.version.split()[0]}")
    if not (paths.VENV_DIR / "bin" / "python").exists():
        with step(f"creating {paths.VENV_DIR}"):
            stdlib_venv.EnvBuilder(with_pip=True, clear=True).create(paths.VENV_DIR)
    with step("pip install -e tools/ (pyscard builds from source: about a minute the first time)"):
        result = subprocess.run(
            [venv_python(), "-m", "pip", "install", "--progress-bar", "off", "-e", str(paths.TOOLS_DIR)],
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise SetupError("pip install -e tools/ failed (see pip's output above)")
    STAMP.write_text(wanted)
