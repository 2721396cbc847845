"""Where things live in the repository. Every module asks here instead of guessing.

Generated files go to git-ignored directories: build/ (compiler output, CAP),
lib/ (Java dependencies from Maven Central), var/ (run-time state: the virtual card
stack of `cardshield sim start`, logs), .venv/ (Python environment).
"""

from __future__ import annotations

import os
from pathlib import Path


def _find_repo_root() -> Path:
    override = os.environ.get("CARDSHIELD_ROOT")
    if override:
        return Path(override).resolve()
    # tools/cardshield/paths.py -> repository root is two levels above tools/
    here = Path(__file__).resolve()
    for candidate in here.parents:
        if (candidate / "applet" / "applet.properties").is_file() and (candidate / "tools").is_dir():
            return candidate
    raise RuntimeError(
        f"cannot find the CardShield repository root above {here}; "
        "set CARDSHIELD_ROOT to the directory holding applet/ and tools/"
    )


ROOT = _find_repo_root()

APPLET_DIR = ROOT / "applet"
APPLET_SRC = APPLET_DIR / "src"
APPLET_PROPERTIES = APPLET_DIR / "applet.properties"

TOOLS_DIR = ROOT / "tools"
VIRTUALCARD_SRC = TOOLS_DIR / "virtualcard" / "src"

LIB_DIR = ROOT / "lib"
VENV_DIR = ROOT / ".venv"
VAR_DIR = ROOT / "var"
TESTS_DIR = ROOT / "tests"

BUILD_DIR = ROOT / "build"
APPLET_CLASSES = BUILD_DIR / "applet" / "classes"
VIRTUALCARD_CLASSES = BUILD_DIR / "virtualcard" / "classes"
CAP_FILE = BUILD_DIR / "cardshield.cap"

# `cardshield sim` state; CARDSHIELD_SIM_DIR moves it (tests run the README's sim lines in their own)
SIM_STATE_DIR = Path(os.environ.get("CARDSHIELD_SIM_DIR") or VAR_DIR / "sim")
