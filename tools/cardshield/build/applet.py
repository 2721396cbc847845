"""Compile the applet (applet/src) against the Java Card API classes of the jcardsim jar."""

from __future__ import annotations

from pathlib import Path

from cardshield import paths
from cardshield.build.javac import CompileError, compile_tree, java_sources
from cardshield.build.variants import DEFAULT, AppletVariant
from cardshield.config import AppletConfig, load_applet_config
from cardshield.setup import maven

# Class files a Java Card 3.0.4 converter reads: Java 7 format (major 51); -g keeps the
# LocalVariableTable the subset checker and the converter use.
APPLET_JAVAC_RELEASE = "7"


def applet_sources_present() -> bool:
    return paths.APPLET_SRC.is_dir() and bool(java_sources(paths.APPLET_SRC))


def compile_applet(
    source_dir: Path = paths.APPLET_SRC,
    output_dir: Path | None = None,
    config: AppletConfig | None = None,
    api_jar: Path | None = None,
    variant: AppletVariant = DEFAULT,
) -> Path:
    """javac the applet (the variant's build, into its classes directory unless output_dir
    says otherwise) against `api_jar` (a Java Card SDK's API of the target version) or
    jcardsim's Java Card API; check that the configured applet class came out of it."""
    config = config or load_applet_config()
    output_dir = output_dir or variant.classes_dir
    compile_tree(
        source_dir,
        output_dir,
        classpath=str(api_jar) if api_jar else maven.classpath(maven.JCARDSIM),
        release=APPLET_JAVAC_RELEASE,
        extra=["-g", "-Xlint:-options"],
        overlay=variant.overlay,
    )
    class_file = output_dir / (config.applet_class.replace(".", "/") + ".class")
    if not class_file.exists():
        raise CompileError(
            f"{config.source}: applet.class={config.applet_class} but {class_file} was not produced; "
            "fix applet.class or the applet's package/class name"
        )
    return output_dir
