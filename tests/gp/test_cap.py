"""CAP parsing and the development load file (JCVM 3.0.4 chapter 6 structures)."""
import zipfile

import pytest

from cardshield.gp import cap
from cardshield.gp.devloadfile import build_components, write_development_load_file
from cardshield.gp.errors import LoadFileError

PACKAGE = bytes.fromhex("F04341524453484C44")
APPLET = PACKAGE + b"\x01"


@pytest.fixture
def dev_cap(tmp_path):
    return write_development_load_file(tmp_path, PACKAGE, "org.cardshield.applet", "1.2", [APPLET])


def test_development_load_file_reads_back_with_its_identity(dev_cap):
    parsed = cap.read_cap(dev_cap)
    assert dev_cap.name == "cardshield-DEV-virtualcard-only.cap"
    assert (parsed.package_aid, parsed.applet_aids, parsed.package_version) == (PACKAGE, [APPLET], (1, 2))
    assert parsed.package_name is None  # as the converter writes CAP 2.1 for an applet package
    assert parsed.cap_version == (2, 1) and parsed.javacard_version == "3.0.4"
    assert parsed.is_development_load_file
    assert not any(t in parsed.components for t in cap.CODE_COMPONENTS)  # no bytecode at all


def test_load_file_is_c4_then_components_in_jcvm_load_order(dev_cap):
    parsed = cap.read_cap(dev_cap)
    load_file = parsed.load_file()
    assert load_file[0] == 0xC4 and load_file[1] == 0x81 and load_file[2] == len(load_file) - 3
    tags = [tag for tag, _ in cap.split_components(load_file[3:], "load file")]
    assert tags == [cap.HEADER, cap.DIRECTORY, cap.IMPORT, cap.APPLET, cap.DEV_COMPONENT_TAG]


def test_imports_follow_the_compiled_classes(tmp_path):
    classes = tmp_path / "classes" / "org"
    classes.mkdir(parents=True)
    (classes / "A.class").write_bytes(b"\xCA\xFE\xBA\xBE...javacard/framework/APDU...javacardx/apdu/ExtendedLength")
    path = write_development_load_file(tmp_path, PACKAGE, "org.cardshield.applet", "1.0", [APPLET], tmp_path / "classes")
    imported = {imp.aid.hex().upper() for imp in cap.read_cap(path).imports}
    assert imported == {"A0000000620101", "A0000000620209"}


def _rewrite(path, name_suffix, transform):
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    for name in entries:
        if name.endswith(name_suffix):
            entries[name] = transform(entries[name])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("suffix,transform,message", [
    ("Header.cap", lambda d: d[:3] + b"\x00" + d[4:], "DECAFFED"),
    ("Header.cap", lambda d: d[:-2], "truncated or has a wrong size"),
    ("Import.cap", lambda d: d[:3] + b"\x09" + d[4:], "Import"),
    ("Applet.cap", lambda d: d[:1] + (len(d) + 1 - 3).to_bytes(2, "big") + d[3:] + b"\x00", "Applet"),
])
def test_damaged_cap_is_refused_naming_the_damage(dev_cap, suffix, transform, message):
    _rewrite(dev_cap, suffix, transform)
    with pytest.raises(LoadFileError, match=message):
        cap.read_cap(dev_cap)


def test_not_a_cap(tmp_path):
    bogus = tmp_path / "x.cap"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(LoadFileError, match="not a CAP file"):
        cap.read_cap(bogus)
    with pytest.raises(LoadFileError, match="does not exist"):
        cap.read_cap(tmp_path / "missing.cap")


def test_java_card_version_from_the_framework_import():
    components, custom = build_components(PACKAGE, (1, 0), [APPLET], ["javacard/framework"])
    parsed = cap.parse_components(components, custom, "test")
    assert parsed.javacard_version == "3.0.4"
    for minor, expected in ((2, "2.2.1"), (6, "3.0.5"), (8, "3.1.0")):
        imports = [cap.ImportedPackage(cap.JAVACARD_FRAMEWORK_AID, 1, minor)]
        assert cap.CapFile(PACKAGE, (1, 0), None, (2, 1), [], imports, {}).javacard_version == expected


# Components of build/cardshield.cap as Oracle's converter (jc310r20210706 kit, target 3.0.4)
# wrote them for this package on 2026-11-25: the development load file must match them
# byte for byte where it carries the same information.
CONVERTER_HEADER = "010013decaffed010204000109f04341524453484c44"
CONVERTER_IMPORT = ("04003305000107a0000000620001050107a0000000620101050107a0000000620102050107a0000000"
                    "620201000107a0000000620209")
CONVERTER_APPLET = "03000e010af04341524453484c44010000"  # install_method_offset zeroed (no Method here)


def test_development_load_file_components_match_the_converters():
    components, _ = build_components(PACKAGE, (1, 0), [APPLET],
                                     ["java/lang", "javacard/framework", "javacard/security", "javacardx/crypto",
                                      "javacardx/apdu"])
    assert components[cap.HEADER].hex() == CONVERTER_HEADER
    assert components[cap.IMPORT].hex() == CONVERTER_IMPORT
    assert components[cap.APPLET].hex() == CONVERTER_APPLET
