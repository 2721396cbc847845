"""Dependency installation: Debian packages, the Python virtual environment, Java jars.

Runs with the system Python (stdlib only) from the ./cardshield bootstrap script,
before .venv exists. Every step checks first and does nothing when already done, so a
second run costs well under a second.
"""

from __future__ import annotations

from cardshield.errors import UserError


class SetupError(UserError):
    """A dependency cannot be installed; the message says what to do."""


def ensure_all(*, with_java_deps: bool = True) -> None:
    from cardshield.setup import apt, java, maven, venv

    apt.ensure_packages()
    java.require_jdk()
    venv.ensure_venv()
    if with_java_deps:
        maven.ensure_artifacts()
