"""Compile a Java source tree with javac, skipping the work when nothing changed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from cardshield.errors import UserError
from cardshield.setup.java import jdk_bin


class CompileError(UserError):
    """javac refused the sources; the message holds its diagnostics."""


def java_sources(source_dir: Path, overlay: Path | None = None) -> list[Path]:
    """The .java files under source_dir; a file under `overlay` replaces the one at the same
    relative path (a build variant's own classes, e.g. applet/variants/sim)."""
    files = {path.relative_to(source_dir): path for path in source_dir.rglob("*.java")}
    if overlay is not None:
        files.update({path.relative_to(overlay): path for path in overlay.rglob("*.java")})
    return sorted(files.values())


def _fingerprint(sources: list[Path], arguments: list[str]) -> str:
    digest = hashlib.sha256("\0".join(arguments).encode())
    for source in sources:
        digest.update(str(source).encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def compile_tree(
    source_dir: Path, output_dir: Path, *, classpath: str, release: str, extra: list[str] | None = None,
    overlay: Path | None = None,
) -> bool:
    """javac every .java under source_dir (with `overlay`'s files in place of theirs) into
    output_dir (cleaned first). Returns False when the stamp shows the same sources and
    options were already compiled."""
    sources = java_sources(source_dir, overlay)
    if not sources:
        raise CompileError(f"no .java files under {source_dir}")
    arguments = ["--release", release, "-encoding", "UTF-8", "-cp", classpath, *(extra or [])]
    stamp = output_dir.parent / (output_dir.name + ".stamp")
    fingerprint = _fingerprint(sources, arguments)
    if stamp.exists() and stamp.read_text() == fingerprint and output_dir.is_dir():
        return False
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    result = subprocess.run(
        [jdk_bin("javac"), *arguments, "-d", str(output_dir), *map(str, sources)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        stamp.unlink(missing_ok=True)
        raise CompileError(f"javac failed for {source_dir}:\n{result.stdout}{result.stderr}")
    stamp.write_text(fingerprint)
    return True
