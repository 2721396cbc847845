"""Locate an Oracle Java Card SDK (JC_HOME / --jc-home) and what the build needs from it.

Supported: the 3.x kits that ship lib/tools.jar with com.sun.javacard.converter.Main
(jc303..jc305u4, jc310*, jc320*). With JDK 17 use jc310r20210706 or jc320 (the jc305u3/u4
converters predate it; see docs in README). The SDK is never part of the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cardshield.errors import UserError


class SdkError(UserError):
    pass


@dataclass(frozen=True)
class JavaCardSdk:
    home: Path

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    def tool_classpath(self) -> str:
        """The converter's classpath, as the kit's bin/converter scripts build it."""
        return ":".join(str(jar) for jar in sorted(self.lib.glob("*.jar")))

    def api_jar(self, target: str) -> Path:
        """The Java Card API classes of `target` (compile against these: javac then refuses
        members and constants the target lacks)."""
        for candidate in (self.lib / f"api_classic-{target}.jar", self.lib / "api_classic.jar", self.lib / "api.jar"):
            if candidate.exists():
                return candidate
        raise SdkError(f"{self.home}: no API jar for Java Card {target} (looked for lib/api_classic-{target}.jar, "
                       "lib/api_classic.jar, lib/api.jar)")

    @property
    def export_path(self) -> Path | None:
        """Kits before 3.1 keep the API export files in a directory; 3.1+ inside tools.jar."""
        directory = self.home / "api_export_files"
        return directory if directory.is_dir() else None

    @property
    def supports_target_option(self) -> bool:
        return any(self.lib.glob("api_classic-*.jar"))


def find_sdk(jc_home: str | Path | None = None) -> JavaCardSdk | None:
    """--jc-home beats JC_HOME; None when neither is set. A set but unusable path is an error."""
    value = jc_home or os.environ.get("JC_HOME")
    if not value:
        return None
    home = Path(value).expanduser().resolve()
    if not (home / "lib" / "tools.jar").exists():
        raise SdkError(f"{home} is not a Java Card 3.x SDK (no lib/tools.jar); point JC_HOME / --jc-home at the "
                       "kit directory, e.g. .../jc310r20210706_kit")
    return JavaCardSdk(home)
