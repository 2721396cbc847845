"""Which applets the virtual card holds: the project's applet from applet.properties, plus
any a test adds (e.g. a probe applet compiled in a temporary directory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardshield import paths
from cardshield.build.applet import applet_sources_present, compile_applet
from cardshield.build.variants import DEFAULT, AppletVariant
from cardshield.config import AppletConfig, load_applet_config
from cardshield.console import warn


@dataclass(frozen=True)
class VirtualApplet:
    package_aid: bytes
    module_aid: bytes
    applet_class: str
    classes_dir: Path
    instance_aid: bytes
    privileges: bytes = b"\x00"
    # Application-specific install parameters (GlobalPlatform tag C9's value).
    parameters: bytes = b""


def project_applet(config: AppletConfig | None = None, parameters: bytes = b"",
                   variant: AppletVariant = DEFAULT) -> VirtualApplet:
    config = config or load_applet_config()
    return VirtualApplet(
        package_aid=config.package_aid,
        module_aid=config.applet_aid,
        applet_class=config.applet_class,
        classes_dir=variant.classes_dir,
        instance_aid=config.instance_aid,
        parameters=parameters,
    )


def default_applets(variant: AppletVariant = DEFAULT) -> list[VirtualApplet]:
    """The project applet (the given build variant), compiled, when its main class has a
    source; otherwise a card without it (SELECT answers 6A82)."""
    config = load_applet_config()
    main_source = paths.APPLET_SRC / (config.applet_class.replace(".", "/") + ".java")
    if not applet_sources_present() or not main_source.exists():
        warn(f"{main_source} does not exist yet: the virtual card holds no CardShield applet")
        return []
    compile_applet(config=config, variant=variant)
    return [project_applet(config, variant=variant)]
