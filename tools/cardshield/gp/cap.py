"""CAP files (Java Card VM Specification 3.0.4 Classic, chapter 6) as GlobalPlatform load files.

A CAP file is a JAR whose <package path>/javacard/*.cap entries are the components.
The load file sent by LOAD is the concatenation of the components in the order of
JCVM 6.3 (Debug and Descriptor left out, as the common tools do), after tag C4.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LoadFileError

# JCVM Table 6-1 tags, and 6.3's order for loading
HEADER, DIRECTORY, APPLET, IMPORT, CONSTANT_POOL, CLASS, METHOD, STATIC_FIELD, \
    REF_LOCATION, EXPORT, DESCRIPTOR, DEBUG = range(1, 13)
COMPONENT_NAMES = {HEADER: "Header", DIRECTORY: "Directory", APPLET: "Applet", IMPORT: "Import",
                   CONSTANT_POOL: "ConstantPool", CLASS: "Class", METHOD: "Method",
                   STATIC_FIELD: "StaticField", REF_LOCATION: "RefLocation", EXPORT: "Export",
                   DESCRIPTOR: "Descriptor", DEBUG: "Debug"}
LOAD_ORDER = (HEADER, DIRECTORY, IMPORT, APPLET, CLASS, METHOD, STATIC_FIELD, EXPORT,
              CONSTANT_POOL, REF_LOCATION)
CODE_COMPONENTS = (CLASS, METHOD, STATIC_FIELD, CONSTANT_POOL, REF_LOCATION)
CAP_MAGIC = 0xDECAFFED

JAVACARD_FRAMEWORK_AID = bytes.fromhex("A0000000620101")
# javacard.framework minor version -> Java Card platform (the converters' export files)
FRAMEWORK_MINOR_TO_JAVACARD = {0: "2.1.1", 1: "2.1.2", 2: "2.2.1", 3: "2.2.2", 4: "3.0.1",
                               5: "3.0.4", 6: "3.0.5", 8: "3.1.0"}

# The development load file's custom component (see devloadfile.py)
DEV_COMPONENT_TAG = 0xC5
DEV_COMPONENT_NAME = "CardShieldDevelopmentLoadFile"
DEV_MARKER = b"CARDSHIELD DEVELOPMENT LOAD FILE - NO BYTECODE - CARDSHIELD VIRTUAL CARD ONLY"


@dataclass(frozen=True)
class ImportedPackage:
    aid: bytes
    major: int
    minor: int


@dataclass
class CapFile:
    package_aid: bytes
    package_version: tuple[int, int]
    package_name: str | None
    cap_version: tuple[int, int]
    applet_aids: list[bytes]
    imports: list[ImportedPackage]
    components: dict[int, bytes] = field(repr=False)  # tag -> whole component (tag, size, info)
    custom_components: dict[int, bytes] = field(default_factory=dict, repr=False)
    source: str = ""

    @property
    def is_development_load_file(self) -> bool:
        custom = self.custom_components.get(DEV_COMPONENT_TAG, b"")
        return DEV_MARKER in custom

    @property
    def javacard_version(self) -> str | None:
        for imp in self.imports:
            if imp.aid == JAVACARD_FRAMEWORK_AID:
                return FRAMEWORK_MINOR_TO_JAVACARD.get(imp.minor, f"unknown (framework {imp.major}.{imp.minor})")
        return None

    def load_file_data(self) -> bytes:
        """Components in load order; custom components last (JCVM 6.2 allows them anywhere after)."""
        data = b"".join(self.components[t] for t in LOAD_ORDER if t in self.components)
        return data + b"".join(self.custom_components[t] for t in sorted(self.custom_components))

    def load_file(self) -> bytes:
        """The Load File as sent by LOAD: tag C4, BER length, load file data (GPCS 11.6.2.3)."""
        return b"\xC4" + ber_length(len(self.load_file_data())) + self.load_file_data()


def ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    return b"\x83" + n.to_bytes(3, "big")


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise LoadFileError(f"{self.what} is truncated (needs {self.pos + n} bytes, has {len(self.data)})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u1(self) -> int:
        return self.take(1)[0]

    def u2(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def aid(self) -> bytes:
        length = self.u1()
        if not 5 <= length <= 16:
            raise LoadFileError(f"{self.what}: AID length {length} outside 5..16")
        return self.take(length)

    def more(self) -> bool:
        return self.pos < len(self.data)


def split_components(data: bytes, what: str) -> list[tuple[int, bytes]]:
    """Split concatenated components (u1 tag, u2 size, info[size]) and check each fits."""
    out = []
    reader = _Reader(data, what)
    while reader.more():
        start = reader.pos
        tag = reader.u1()
        size = reader.u2()
        reader.take(size)
        out.append((tag, data[start:reader.pos]))
    return out


def parse_components(components: dict[int, bytes], custom: dict[int, bytes], source: str) -> CapFile:
    """Check the Header/Directory/Import/Applet components and their mutual consistency."""
    for tag in (HEADER, DIRECTORY, IMPORT):
        if tag not in components:
            raise LoadFileError(f"{source}: {COMPONENT_NAMES[tag]} component missing")
    header = _Reader(components[HEADER][3:], f"{source}: Header component")
    if int.from_bytes(header.take(4), "big") != CAP_MAGIC:
        raise LoadFileError(f"{source}: Header component lacks the DECAFFED magic; not a CAP file")
    cap_minor, cap_major = header.u1(), header.u1()
    if cap_major != 2:
        raise LoadFileError(f"{source}: CAP format {cap_major}.{cap_minor}; only the compact format 2.x is"
                            " supported (convert for Java Card 3.0.x classic)")
    header.u1()  # flags
    pkg_minor, pkg_major = header.u1(), header.u1()
    package_aid = header.aid()
    package_name = None
    if header.more():
        package_name = header.take(header.u1()).decode("ascii", "replace")

    directory = _Reader(components[DIRECTORY][3:], f"{source}: Directory component")
    sizes = [directory.u2() for _ in range(11 if cap_minor <= 1 else 12)]
    directory.take(6)  # static_field_size_info
    import_count, applet_count, custom_count = directory.u1(), directory.u1(), directory.u1()
    declared_custom = {}
    for _ in range(custom_count):
        tag, size = directory.u1(), directory.u2()
        directory.aid()
        declared_custom[tag] = size
    for tag, size in enumerate(sizes, start=1):
        present = components.get(tag)
        if tag in (DESCRIPTOR, DEBUG):
            continue
        if (len(present) - 3 if present else 0) != size:
            raise LoadFileError(f"{source}: Directory says the {COMPONENT_NAMES[tag]} component has {size}"
                                f" bytes, the file has {len(present) - 3 if present else 'none'}")
    for tag, size in declared_custom.items():
        if tag not in custom or len(custom[tag]) - 3 != size:
            raise LoadFileError(f"{source}: custom component {tag:02X} missing or of the wrong size")

    imports = []
    imp = _Reader(components[IMPORT][3:], f"{source}: Import component")
    for _ in range(imp.u1()):
        minor, major = imp.u1(), imp.u1()
        imports.append(ImportedPackage(imp.aid(), major, minor))
    if len(imports) != import_count:
        raise LoadFileError(f"{source}: Import component lists {len(imports)} packages, Directory {import_count}")

    applet_aids = []
    if APPLET in components:
        app = _Reader(components[APPLET][3:], f"{source}: Applet component")
        for _ in range(app.u1()):
            applet_aids.append(app.aid())
            app.u2()  # install_method_offset
    if len(applet_aids) != applet_count:
        raise LoadFileError(f"{source}: Applet component lists {len(applet_aids)} applets, Directory {applet_count}")
    return CapFile(package_aid, (pkg_major, pkg_minor), package_name, (cap_major, cap_minor),
                   applet_aids, imports, components, custom, source)


def read_cap(path: Path) -> CapFile:
    """Read a CAP (JAR) file from disk."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(Path(path).read_bytes()))
    except FileNotFoundError:
        raise LoadFileError(f"CAP file {path} does not exist; build it first (./cardshield build --jc-home SDK)") from None
    except zipfile.BadZipFile:
        raise LoadFileError(f"{path} is not a CAP file (not a JAR/ZIP archive)") from None
    components: dict[int, bytes] = {}
    custom: dict[int, bytes] = {}
    for name in archive.namelist():
        if "/javacard/" not in name or not name.endswith(".cap"):
            continue
        data = archive.read(name)
        if len(data) < 3 or int.from_bytes(data[1:3], "big") != len(data) - 3:
            raise LoadFileError(f"{path}: component {name} is truncated or has a wrong size field")
        tag = data[0]
        (custom if tag >= 0x80 else components)[tag] = data
    if not components:
        raise LoadFileError(f"{path} holds no */javacard/*.cap components; is it a CAP file?")
    return parse_components(components, custom, str(path))
