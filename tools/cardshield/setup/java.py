"""Locate the JDK used for javac and for the virtual card host."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from cardshield.setup import SetupError

# The virtual card host uses Unix domain sockets (Java 16+); javac --release 8 needs 9+.
MINIMUM_JDK = 17


@lru_cache(maxsize=None)
def jdk_bin(tool: str) -> str:
    """Path of a JDK tool (javac, java, javap), from JAVA_HOME or PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / tool).exists():
        return str(Path(java_home) / "bin" / tool)
    found = shutil.which(tool)
    if not found:
        raise SetupError(
            f"{tool} not found: install a JDK {MINIMUM_JDK}+ (apt-get install openjdk-17-jdk-headless) "
            "or set JAVA_HOME"
        )
    return found


def jdk_major(javac: str) -> int:
    output = subprocess.run([javac, "-version"], capture_output=True, text=True).stdout
    match = re.search(r"javac (\d+)", output)
    if not match:
        raise SetupError(f"cannot read the version of {javac}: {output.strip()!r}")
    return int(match.group(1))


def require_jdk() -> None:
    javac = jdk_bin("javac")
    major = jdk_major(javac)
    if major < MINIMUM_JDK:
        raise SetupError(f"{javac} is JDK {major}; JDK {MINIMUM_JDK}+ is needed (set JAVA_HOME)")
