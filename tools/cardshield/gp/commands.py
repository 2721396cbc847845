"""GlobalPlatform card management commands and response parsers (GPCS v2.3 chapter 11). No I/O."""
from __future__ import annotations

from dataclasses import dataclass, field

from cardshield.protocol import tlv
from cardshield.protocol.command import Command

ISD_AIDS = (bytes.fromhex("A000000151000000"), bytes.fromhex("A000000003000000"))  # GP 2.2+, OP/GP 2.1 default

CLA_GP = 0x80
INS_SELECT = 0xA4
INS_INITIALIZE_UPDATE = 0x50
INS_GET_DATA = 0xCA
INS_GET_STATUS = 0xF2
INS_INSTALL = 0xE6
INS_LOAD = 0xE8
INS_DELETE = 0xE4

# GET STATUS P1 (GPCS 11.4.2.1)
STATUS_ISD = 0x80
STATUS_APPLICATIONS = 0x40
STATUS_LOAD_FILES = 0x20
STATUS_LOAD_FILES_AND_MODULES = 0x10

# GET DATA tags
TAG_CPLC = 0x9F7F
TAG_CARD_DATA = 0x0066
TAG_KEY_INFORMATION = 0x00E0

SW_MORE_DATA = 0x6310
ALL = 256  # Ne of a short Le 00: as many response bytes as the card has

LIFE_CYCLES = {
    STATUS_ISD: {0x01: "OP_READY", 0x07: "INITIALIZED", 0x0F: "SECURED", 0x7F: "CARD_LOCKED", 0xFF: "TERMINATED"},
    STATUS_APPLICATIONS: {0x03: "INSTALLED", 0x07: "SELECTABLE", 0x0F: "PERSONALIZED"},
    STATUS_LOAD_FILES: {0x01: "LOADED"},
    STATUS_LOAD_FILES_AND_MODULES: {0x01: "LOADED"},
}


def select(aid: bytes) -> Command:
    return Command(0x00, INS_SELECT, 0x04, 0x00, aid, ALL, "SELECT")


def initialize_update(key_version: int, host_challenge: bytes) -> Command:
    return Command(CLA_GP, INS_INITIALIZE_UPDATE, key_version, 0x00, host_challenge, ALL, "INITIALIZE UPDATE")


def get_data(tag: int) -> Command:
    return Command(CLA_GP, INS_GET_DATA, tag >> 8, tag & 0xFF, b"", ALL, f"GET DATA {tag:04X}")


def get_status(kind: int, next_part: bool = False) -> Command:
    # P2 b2: tagged response format (GP 2.2+); b1: next occurrence. Search criteria 4F00: all.
    return Command(CLA_GP, INS_GET_STATUS, kind, 0x02 | int(next_part), b"\x4F\x00", ALL, "GET STATUS")


def _lv(value: bytes) -> bytes:
    if len(value) > 255:
        raise ValueError("INSTALL field longer than 255 bytes")
    return bytes([len(value)]) + value


def install_for_load(package_aid: bytes, sd_aid: bytes) -> Command:
    # GPCS 11.5.2.3.2: load file AID, SD AID, no hash, no load parameters, no token
    data = _lv(package_aid) + _lv(sd_aid) + _lv(b"") + _lv(b"") + _lv(b"")
    return Command(CLA_GP, INS_INSTALL, 0x02, 0x00, data, ALL, "INSTALL [for load]")


def load_blocks(load_file: bytes, block_size: int) -> list[Command]:
    """LOAD commands (GPCS 11.6): P1 80 on the last block, P2 the block number 00..FF."""
    blocks = [load_file[i:i + block_size] for i in range(0, len(load_file), block_size)]
    if len(blocks) > 256:
        raise ValueError(f"load file needs {len(blocks)} LOAD blocks; GlobalPlatform numbers at most 256")
    return [Command(CLA_GP, INS_LOAD, 0x80 if i == len(blocks) - 1 else 0x00, i, block, ALL, f"LOAD block {i}")
            for i, block in enumerate(blocks)]


def install_parameters(applet_data: bytes) -> bytes:
    """Install parameters field: C9 with the applet-specific data (GPCS 11.5.2.3.7)."""
    return tlv.encode(0xC9, applet_data)


def install_for_install(package_aid: bytes, applet_aid: bytes, instance_aid: bytes,
                        applet_data: bytes, privileges: bytes = b"\x00") -> Command:
    # P1 0C: for install and make selectable (GPCS 11.5.2.1)
    data = (_lv(package_aid) + _lv(applet_aid) + _lv(instance_aid) + _lv(privileges)
            + _lv(install_parameters(applet_data)) + _lv(b""))
    return Command(CLA_GP, INS_INSTALL, 0x0C, 0x00, data, ALL, "INSTALL [for install and make selectable]")


def delete(aid: bytes, related: bool) -> Command:
    # GPCS 11.2: P2 80 deletes the object and its related objects (a package with its applications)
    return Command(CLA_GP, INS_DELETE, 0x00, 0x80 if related else 0x00, tlv.encode(0x4F, aid), ALL, "DELETE")


@dataclass(frozen=True)
class RegistryEntry:
    kind: int  # STATUS_ISD / STATUS_APPLICATIONS / STATUS_LOAD_FILES
    aid: bytes
    life_cycle: int
    privileges: bytes = b""
    load_file_aid: bytes | None = None
    version: bytes | None = None
    modules: tuple[bytes, ...] = ()

    @property
    def life_cycle_name(self) -> str:
        return LIFE_CYCLES.get(self.kind, {}).get(self.life_cycle, f"{self.life_cycle:02X}")

    def as_dict(self) -> dict:
        out = {"aid": self.aid.hex().upper(), "life_cycle": self.life_cycle_name}
        if self.privileges:
            out["privileges"] = self.privileges.hex().upper()
        if self.load_file_aid:
            out["load_file"] = self.load_file_aid.hex().upper()
        if self.version:
            out["version"] = ".".join(str(b) for b in self.version)
        if self.modules:
            out["applets"] = [m.hex().upper() for m in self.modules]
        return out


def parse_status(kind: int, data: bytes) -> list[RegistryEntry]:
    """Tagged GET STATUS response: E3 templates (GPCS 11.4.3.2)."""
    entries = []
    for item in tlv.decode(data):
        if item.tag != 0xE3:
            continue
        fields = item.children()
        aid = tlv.find(fields, 0x4F)
        if aid is None:
            continue
        life_cycle = tlv.find(fields, 0x9F70) or b"\x00"
        modules = tuple(f.value for f in fields if f.tag == 0x84)
        entries.append(RegistryEntry(kind, aid, life_cycle[0], tlv.find(fields, 0xC5) or b"",
                                     tlv.find(fields, 0xC4), tlv.find(fields, 0xCE), modules))
    return entries


@dataclass
class Registry:
    isd: RegistryEntry | None = None
    applications: list[RegistryEntry] = field(default_factory=list)
    load_files: list[RegistryEntry] = field(default_factory=list)

    def application(self, aid: bytes) -> RegistryEntry | None:
        return next((a for a in self.applications if a.aid == aid), None)

    def load_file(self, aid: bytes) -> RegistryEntry | None:
        return next((e for e in self.load_files if e.aid == aid), None)

    def as_dict(self) -> dict:
        return {"isd": self.isd.as_dict() if self.isd else None,
                "applications": [a.as_dict() for a in self.applications],
                "load_files": [e.as_dict() for e in self.load_files]}


@dataclass(frozen=True)
class CPLC:
    """Card Production Life Cycle data (GET DATA 9F7F), the fields people look at."""

    raw: bytes

    @property
    def ic_fabricator(self) -> bytes:
        return self.raw[0:2]

    @property
    def ic_type(self) -> bytes:
        return self.raw[2:4]

    @property
    def os_id(self) -> bytes:
        return self.raw[4:6]

    @property
    def ic_serial(self) -> bytes:
        return self.raw[12:16]

    def as_dict(self) -> dict:
        return {"ic_fabricator": self.ic_fabricator.hex().upper(), "ic_type": self.ic_type.hex().upper(),
                "os_id": self.os_id.hex().upper(), "os_release_date": self.raw[6:8].hex().upper(),
                "ic_serial": self.ic_serial.hex().upper()}


def parse_cplc(data: bytes) -> CPLC | None:
    value = tlv.find(data, TAG_CPLC) if data[:2] == b"\x9F\x7F" else data
    return CPLC(value) if value and len(value) >= 42 else None


GP_OID = bytes.fromhex("2A864886FC6B")


def parse_card_data(data: bytes) -> dict:
    """Card recognition data (GET DATA 66, GPCS H.2): GP version and secure channel protocols."""
    out: dict = {"scp": []}
    template = tlv.find(data, 0x66) if data[:1] == b"\x66" else data
    recognition = tlv.find(template or b"", 0x73)
    for item in tlv.decode(recognition or b""):
        oid = tlv.find(item.children(), 0x06) if item.constructed else None
        if not oid or not oid.startswith(GP_OID):
            continue
        arc = oid[len(GP_OID):]
        if item.tag == 0x60 and arc[:1] == b"\x02":
            out["gp_version"] = ".".join(str(b) for b in arc[1:])
        elif item.tag == 0x64 and arc[:1] == b"\x04" and len(arc) >= 3:
            out["scp"].append({"scp": arc[1], "i": arc[2]})
    return out


def parse_key_information(data: bytes) -> list[dict]:
    """Key information template E0 (GPCS 11.3.3.1): key id, version, type/length pairs."""
    template = tlv.find(data, 0xE0) if data[:1] == b"\xE0" else data
    keys = []
    for item in tlv.decode(template or b""):
        if item.tag == 0xC0 and len(item.value) >= 4:
            v = item.value
            keys.append({"id": v[0], "version": v[1], "type": f"{v[2]:02X}", "length": v[3]})
    return keys
