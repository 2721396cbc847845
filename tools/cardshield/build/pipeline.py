"""`cardshield build`: the applet's build, step by step.

1. javac the virtual card host (tools/virtualcard) against jcardsim.
2. javac the applet (--release 7, -g): against the SDK's API jar of the target version when
   a Java Card SDK is given, else against jcardsim's Java Card API.
3. The Java Card subset checker on the applet's class files (always; fails the build).
4. With an SDK: Oracle's converter (which also runs the off-card verifier) -> build/cardshield.cap.
   Without: no CAP (said plainly), and the development load file for the virtual card
   (cardshield.gp.devloadfile) so the GlobalPlatform LOAD path can still be exercised.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from cardshield import paths
from cardshield.build.applet import applet_sources_present, compile_applet
from cardshield.build.jcsubset import SubsetError, check_class_dir
from cardshield.build.sdk import JavaCardSdk, find_sdk
from cardshield.build.virtualcard import build_virtualcard
from cardshield.config import AppletConfig, load_applet_config
from cardshield.console import info, step, warn


@dataclass
class BuildResult:
    applet_classes: Path | None = None
    cap: Path | None = None
    cap_size: int = 0
    load_file_size: int = 0  # the CAP components a GlobalPlatform LOAD sends (without Debug)
    development_load_file: Path | None = None


def build(jc_home: str | Path | None = None, *, development_load_file: bool = True) -> BuildResult:
    result = BuildResult()
    sdk = find_sdk(jc_home)  # a bad --jc-home fails before any work
    config = load_applet_config()
    with step("compiling the virtual card host"):
        build_virtualcard()
    if not applet_sources_present():
        warn(f"no applet sources under {paths.APPLET_SRC}: nothing else to build")
        return result
    api = sdk.api_jar(config.javacard_target) if sdk else None
    with step(f"javac the applet against {'the SDK API ' + api.name if api else 'the jcardsim Java Card API'}"):
        result.applet_classes = compile_applet(config=config, api_jar=api)
    with step("Java Card subset check of the applet's class files"):
        violations = check_class_dir(result.applet_classes, config.package_name)
        if violations:
            raise SubsetError(violations)
    if sdk:
        convert_with_sdk(sdk, config, result)
    else:
        if paths.CAP_FILE.exists():
            paths.CAP_FILE.unlink()  # from an earlier SDK build: it no longer matches the sources
        info("no CAP file produced: no Java Card SDK given (set JC_HOME or pass --jc-home, see README). "
             "The applet passed javac and the Java Card subset checker; the virtual card runs its class files.")
        if development_load_file:
            write_development_load_file(config, result)
    return result


def convert_with_sdk(sdk: JavaCardSdk, config: AppletConfig, result: BuildResult) -> None:
    from cardshield.build.converter import convert

    with step(f"Oracle converter + off-card verifier ({sdk.home.name}, target {config.javacard_target})"):
        result.cap = convert(sdk, config, result.applet_classes)
    result.cap_size = result.cap.stat().st_size
    result.load_file_size = load_file_size(result.cap)
    info(f"CAP: {result.cap} ({result.cap_size} bytes; load file {result.load_file_size} bytes)")


def load_file_size(cap: Path) -> int:
    """Bytes of the CAP components (the .cap entries) except Debug: what LOAD transfers."""
    with zipfile.ZipFile(cap) as archive:
        return sum(entry.file_size for entry in archive.infolist()
                   if entry.filename.endswith(".cap") and not entry.filename.endswith("/Debug.cap"))


def write_development_load_file(config: AppletConfig, result: BuildResult) -> None:
    """The GlobalPlatform work's no-SDK load file (virtual card only; no bytecode)."""
    try:
        from cardshield.gp.devloadfile import write_development_load_file as write
    except ImportError:
        return
    result.development_load_file = write(paths.BUILD_DIR, config.package_aid, config.package_name,
                                         config.package_version, [config.applet_aid], result.applet_classes)
    info(f"development load file (virtual card only, no bytecode): {result.development_load_file}")
