"""The development load file: a CAP-format file for the CardShield virtual card only.

Without a Java Card SDK there is no converter, so no bytecode components. This file
has REAL Header, Directory, Import and Applet components (JCVM 3.0.4 chapter 6)
for our package and applet AIDs, and a custom component (tag C5, JCVM 6.1 allows
tags 128-255) that says, in plain text, that it carries no bytecode. The virtual
card links the package to the applet classes on its classpath; a real card would
reject it, and the GP client refuses to send it to any card but the virtual one.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from . import cap

# JC 3.0.4 API export files: package name -> (AID, major, minor)
JC304_PACKAGES = {
    "java/lang": ("A0000000620001", 1, 0),
    "javacard/framework": ("A0000000620101", 1, 5),
    "javacard/security": ("A0000000620102", 1, 5),
    "javacardx/crypto": ("A0000000620201", 1, 5),
    "javacardx/apdu": ("A0000000620209", 1, 0),
}
DEFAULT_IMPORTS = ("java/lang", "javacard/framework", "javacard/security", "javacardx/crypto")
ACC_APPLET = 0x04
FILE_SUFFIX = "-DEV-virtualcard-only.cap"


def imports_of_classes(classes_dir: Path | None) -> list[str]:
    """Java Card API packages the compiled applet refers to (names in its constant pools)."""
    if classes_dir is None or not classes_dir.is_dir():
        return list(DEFAULT_IMPORTS)
    blob = b"".join(p.read_bytes() for p in classes_dir.rglob("*.class"))
    found = [name for name in JC304_PACKAGES if (name + "/").encode() in blob]
    return found or list(DEFAULT_IMPORTS)


def _component(tag: int, info: bytes) -> bytes:
    return bytes([tag]) + len(info).to_bytes(2, "big") + info


def _aid(aid: bytes) -> bytes:
    return bytes([len(aid)]) + aid


def build_components(package_aid: bytes, package_version: tuple[int, int],
                     applet_aids: list[bytes], imports: list[str]) -> tuple[dict[int, bytes], dict[int, bytes]]:
    major, minor = package_version
    # CAP format 2.1 as Oracle's converter writes it for an applet package: no package name
    header = _component(cap.HEADER, cap.CAP_MAGIC.to_bytes(4, "big") + bytes([1, 2, ACC_APPLET, minor, major])
                        + _aid(package_aid))
    import_info = bytes([len(imports)]) + b"".join(
        bytes([JC304_PACKAGES[p][2], JC304_PACKAGES[p][1]]) + _aid(bytes.fromhex(JC304_PACKAGES[p][0]))
        for p in imports)
    import_component = _component(cap.IMPORT, import_info)
    # install_method_offset 0: there is no Method component to point into
    applet = _component(cap.APPLET, bytes([len(applet_aids)]) + b"".join(_aid(a) + b"\x00\x00" for a in applet_aids))
    dev = _component(cap.DEV_COMPONENT_TAG, cap.DEV_MARKER)
    dev_aid = package_aid + b"DEV"
    custom_info = bytes([cap.DEV_COMPONENT_TAG]) + (len(dev) - 3).to_bytes(2, "big") + _aid(dev_aid)
    directory_info_len = 11 * 2 + 6 + 3 + len(custom_info)
    sizes = {cap.HEADER: len(header) - 3, cap.DIRECTORY: directory_info_len,
             cap.APPLET: len(applet) - 3, cap.IMPORT: len(import_component) - 3}
    directory_info = b"".join(sizes.get(tag, 0).to_bytes(2, "big") for tag in range(1, 12)) \
        + bytes(6) + bytes([len(imports), len(applet_aids), 1]) + custom_info
    directory = _component(cap.DIRECTORY, directory_info)
    return ({cap.HEADER: header, cap.DIRECTORY: directory, cap.IMPORT: import_component, cap.APPLET: applet},
            {cap.DEV_COMPONENT_TAG: dev})


def write_development_load_file(out_dir: Path, package_aid: bytes, package_name: str, package_version: str,
                                applet_aids: list[bytes], classes_dir: Path | None = None) -> Path:
    """Write <out_dir>/<package>-DEV-virtualcard-only.cap and return its path."""
    major, _, minor = package_version.partition(".")
    components, custom = build_components(package_aid, (int(major), int(minor or 0)),
                                          applet_aids, imports_of_classes(classes_dir))
    folder = package_name.replace(".", "/") + "/javacard/"
    names = {**{tag: cap.COMPONENT_NAMES[tag] for tag in components}, cap.DEV_COMPONENT_TAG: cap.DEV_COMPONENT_NAME}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/MANIFEST.MF",
                         "Manifest-Version: 1.0\r\nCreated-By: CardShield development load file writer\r\n"
                         f"\r\nName: {package_name.replace('.', '/')}\r\nJava-Card-CAP-File-Version: 2.1\r\n"
                         f"Java-Card-Package-AID: {package_aid.hex().upper()}\r\n"
                         "CardShield-Load-File: development, CardShield virtual card only, no bytecode\r\n")
        for tag, data in {**components, **custom}.items():
            archive.writestr(folder + names[tag] + ".cap", data)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("cardshield" + FILE_SUFFIX)
    path.write_bytes(buffer.getvalue())
    return path
