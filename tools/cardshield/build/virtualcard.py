"""Build the virtual card host (tools/virtualcard) against the jcardsim jar."""

from __future__ import annotations

from cardshield import paths
from cardshield.build.javac import compile_tree
from cardshield.setup import maven


def build_virtualcard() -> None:
    compile_tree(
        paths.VIRTUALCARD_SRC,
        paths.VIRTUALCARD_CLASSES,
        classpath=maven.classpath(maven.JCARDSIM, maven.ASM),
        release="17",
        extra=["-Xlint:all,-serial"],  # warnings shown, not fatal: the host is test tooling
    )
