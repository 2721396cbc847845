"""`cardshield build`: the applet's build, step by step.

1. javac the virtual card host (tools/virtualcard) against jcardsim.
2. javac the applet (--release 7, -g), each build variant (cardshield.build.variants: the
   default with extended length, the SIM one without javacardx.apdu): against the SDK's API
   jar of the target version when a Java Card SDK is given, else against jcardsim's API.
3. The Java Card subset checker on each variant's class files (always; fails the build),
   and for the SIM variant the check that nothing refers to javacardx.apdu.
4. With an SDK: Oracle's converter (which also runs the off-card verifier) -> build/cardshield.cap
   and build/cardshield-sim.cap. Without: no CAP (said plainly), and the development load
   file for the virtual card (cardshield.gp.devloadfile) so the GlobalPlatform LOAD path can
   still be exercised.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cardshield import paths
from cardshield.build.applet import applet_sources_present, compile_applet
from cardshield.build.jcsubset import SubsetError, check_class_dir, check_no_package
from cardshield.build.sdk import JavaCardSdk, find_sdk
from cardshield.build.variants import DEFAULT, VARIANTS, AppletVariant
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
    #: variant name -> its class files, and its CAP when an SDK converted it
    variant_classes: dict[str, Path] = field(default_factory=dict)
    variant_caps: dict[str, Path] = field(default_factory=dict)


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
    for variant in VARIANTS:
        result.variant_classes[variant.name] = compile_and_check(variant, config, api)
    result.applet_classes = result.variant_classes[DEFAULT.name]
    if sdk:
        for variant in VARIANTS:
            convert_with_sdk(sdk, config, variant, result)
    else:
        for variant in VARIANTS:
            # from an earlier SDK build: it no longer matches the sources
            variant.cap_file.unlink(missing_ok=True)
        info("no CAP file produced: no Java Card SDK given (set JC_HOME or pass --jc-home, see README). "
             "The applet passed javac and the Java Card subset checker; the virtual card runs its class files.")
        for variant in VARIANTS:
            info(f"applet build '{variant.name}' ({variant.description}): classes in "
                 f"{result.variant_classes[variant.name]}")
        if development_load_file:
            write_development_load_file(config, result)
    return result


def compile_and_check(variant: AppletVariant, config: AppletConfig, api: Path | None) -> Path:
    """One variant: javac, the subset checker, the packages it must not import."""
    against = "the SDK API " + api.name if api else "the jcardsim Java Card API"
    with step(f"javac the applet ({variant.name} build) against {against}"):
        classes = compile_applet(config=config, api_jar=api, variant=variant)
    with step(f"Java Card subset check of the {variant.name} build's class files"):
        violations = check_class_dir(classes, config.package_name)
        if variant.forbidden_packages:
            violations += check_no_package(classes, variant.forbidden_packages,
                                           f"the {variant.name} build must link on cards without it")
        if violations:
            raise SubsetError(violations)
    return classes


def convert_with_sdk(sdk: JavaCardSdk, config: AppletConfig, variant: AppletVariant, result: BuildResult) -> None:
    from cardshield.build.converter import convert

    with step(f"Oracle converter + off-card verifier, {variant.name} build ({sdk.home.name}, "
              f"target {config.javacard_target})"):
        cap = convert(sdk, config, result.variant_classes[variant.name], cap_file=variant.cap_file,
                      out_dir=paths.BUILD_DIR / f"converter-{variant.name}")
    result.variant_caps[variant.name] = cap
    size = load_file_size(cap)
    if variant is DEFAULT:
        result.cap, result.cap_size, result.load_file_size = cap, cap.stat().st_size, size
    info(f"CAP '{variant.name}' ({variant.description}): {cap} ({cap.stat().st_size} bytes; load file {size} bytes)")


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
