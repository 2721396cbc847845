"""Oracle's Java Card converter: class files -> CAP, with its off-card verification."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cardshield import paths
from cardshield.build.sdk import JavaCardSdk
from cardshield.config import AppletConfig
from cardshield.errors import UserError
from cardshield.setup.java import jdk_bin


class ConverterError(UserError):
    pass


def converter_aid(aid: bytes) -> str:
    """The converter's AID syntax: 0xF0:0x43:..."""
    return ":".join(f"0x{byte:02X}" for byte in aid)


def convert(sdk: JavaCardSdk, config: AppletConfig, class_dir: Path, out_dir: Path | None = None,
            cap_file: Path = paths.CAP_FILE) -> Path:
    """Run the converter (it also verifies the CAP unless told not to) and copy the CAP to
    cap_file (default build/cardshield.cap). Returns that path."""
    out_dir = out_dir or paths.BUILD_DIR / "converter"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    command = [jdk_bin("java"), f"-Djc.home={sdk.home}", "-cp", sdk.tool_classpath(),
               "com.sun.javacard.converter.Main", "-nobanner", "-classdir", str(class_dir), "-d", str(out_dir),
               "-out", "CAP", "EXP", "JCA", "-applet", converter_aid(config.applet_aid), config.applet_class]
    if sdk.supports_target_option:
        command += ["-target", config.javacard_target]
    if sdk.export_path:
        command += ["-exportpath", str(sdk.export_path)]
    command += [config.package_name, converter_aid(config.package_aid), config.package_version]
    result = subprocess.run(command, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    package_dir = out_dir.joinpath(*config.package_name.split("."), "javacard")
    produced = package_dir / f"{config.package_name.rsplit('.', 1)[-1]}.cap"
    if result.returncode != 0 or not produced.exists() or "error" in output.lower().replace("0 errors", ""):
        raise ConverterError(f"the Java Card converter refused the applet:\n{output}")
    cap_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(produced, cap_file)
    return cap_file
