"""Debian packages the project needs, installed with apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess

from cardshield.console import info, step
from cardshield.setup import SetupError

# Why each package is here. Keep --no-install-recommends: pcsc-tools would pull GTK.
PACKAGES: dict[str, str] = {
    "pcscd": "PC/SC daemon: cards and the virtual card are reached through it",
    "vsmartcard-vpcd": "virtual reader driver the virtual card connects to",
    "libpcsclite-dev": "pyscard builds against it",
    "swig": "pyscard's build needs it",
    "gcc": "pyscard's C extension",
    "libc6-dev": "pyscard's C extension",
    "openjdk-17-jdk-headless": "javac for the applet and the virtual card host",
    "maven": "resolves pinned Java dependencies from Maven Central",
    "ant": "build.xml release build for Java Card SDK holders",
    "opensc": "opensc-tool: an independent PC/SC client to cross-check the stack",
    "pcsc-tools": "pcsc_scan / scriptor for manual checks",
    "iproute2": "`ip` brings up loopback inside the private network namespace",
    "util-linux": "`unshare` creates the virtual card's private namespaces",
    "chromium": "the end-to-end tests drive Debian's Chromium with Playwright (never a downloaded browser)",
}


def missing_packages(names: list[str]) -> list[str]:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *names],
        capture_output=True,
        text=True,
    )
    installed = {
        line.split()[0].split(":")[0]
        for line in result.stdout.splitlines()
        if line.endswith(" installed")
    }
    return [name for name in names if name not in installed]


def ensure_packages(names: list[str] | None = None) -> None:
    names = list(names or PACKAGES)
    if not shutil.which("dpkg-query"):
        raise SetupError("dpkg-query not found: the setup supports Debian/Ubuntu machines only")
    missing = missing_packages(names)
    if not missing:
        return
    if os.geteuid() != 0:
        raise SetupError(
            "missing Debian packages: " + " ".join(missing) + "\n  install them with: sudo apt-get update && "
            "sudo apt-get install -y --no-install-recommends " + " ".join(missing)
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with step("apt-get update (missing: " + " ".join(missing) + ")"):
        _run(["apt-get", "update", "-q"], env)
    with step("apt-get install " + " ".join(missing)):
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env)
    still_missing = missing_packages(names)
    if still_missing:
        raise SetupError("apt-get did not install: " + " ".join(still_missing))
    info("Debian packages present")


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(command)} failed with exit code {result.returncode}")
