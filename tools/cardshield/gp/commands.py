"""GlobalPlatform card management commands and response parsers (GPCS v2.3 chapter 11). No I/O."""
from __future__ import annotations

from dataclasses import dataclass, field

from cardshield.protocol import tlv
from cardshield.protocol.command import Command

from . import ber

ISD_AIDS = (bytes.fromhex("A000000151000000"), bytes.fromhex("A000000003000000"))  # GP 2.2+, OP/GP 2.1 default

CLA_GP = 0x80
INS_SELECT = 0xA4
INS_INITIALIZE_UPDATE = 0x50
INS_GET_DATA = 0xCA
INS_GET_STATUS = 0xF2
INS_INSTALL = 0xE6
INS_LOAD = 0xE8
INS_DELETE = 0xE4
INS_PUT_KEY = 0xD8
INS_SET_STATUS = 0xF0

# GET STATUS P1 (GPCS 11.4.2.1)
STATUS_ISD = 0x80
STATUS_APPLICATIONS = 0x40
STATUS_LOAD_FILES = 0x20
STATUS_LOAD_FILES_AND_MODULES = 0x10

# SET STATUS (GPCS 11.10.2): P1 and the states it sets
CARD_LOCKED = 0x7F
CARD_SECURED = 0x0F
APPLICATION_LOCKED = 0x80

# GET DATA tags
TAG_CPLC = 0x9F7F
TAG_CARD_DATA = 0x0066
TAG_KEY_INFORMATION = 0x00E0

SW_MORE_DATA = 0x6310
ALL = 256  # Ne of a short Le 00: as many response bytes as the card has

LIFE_CYCLES = {
    STATUS_ISD: {0x01: "OP_READY", 0x07: "INITIALIZED", 0x0F: "SECURED", 0x7F: "CARD_LOCKED", 0xFF: "TERMINATED"},
    STATUS_APPLICATIONS: {0x03: "INSTALLED", 0x07: "SELECTABLE", 0x0F: "PERSONALIZED", 0x83: "LOCKED",
                          0x87: "LOCKED", 0x8F: "LOCKED"},
    STATUS_LOAD_FILES: {0x01: "LOADED"},
    STATUS_LOAD_FILES_AND_MODULES: {0x01: "LOADED"},
}


def select(aid: bytes) -> Command:
    return Command(0x00, INS_SELECT, 0x04, 0x00, aid, ALL, "SELECT")


def initialize_update(key_version: int, host_challenge: bytes) -> Command:
    return Command(CLA_GP, INS_INITIALIZE_UPDATE, key_version, 0x00, host_challenge, ALL, "INITIALIZE UPDATE")


def get_data(tag: int) -> Command:
    return Command(CLA_GP, INS_GET_DATA, tag >> 8, tag & 0xFF, b"", ALL, f"GET DATA {tag:04X}")


def get_status(kind: int, next_part: bool = False, tagged: bool = True) -> Command:
    # P2 b2: tagged response format (GP 2.2+), else the legacy one; b1: next occurrence.
    # Search criteria 4F00: all.
    p2 = (0x02 if tagged else 0x00) | int(next_part)
    return Command(CLA_GP, INS_GET_STATUS, kind, p2, b"\x4F\x00", ALL, f"GET STATUS {kind:02X}")


def _lv(value: bytes) -> bytes:
    if len(value) > 255:
        raise ValueError("INSTALL field longer than 255 bytes")
    return bytes([len(value)]) + value


def install_for_load(package_aid: bytes, sd_aid: bytes, load_file_hash: bytes = b"") -> Command:
    # GPCS 11.5.2.3.2: load file AID, SD AID, Load File Data Block Hash, no load parameters, no token
    data = _lv(package_aid) + _lv(sd_aid) + _lv(load_file_hash) + _lv(b"") + _lv(b"")
    return Command(CLA_GP, INS_INSTALL, 0x02, 0x00, data, ALL, "INSTALL [for load]")


def dap_block(sd_aid: bytes, signature: bytes) -> bytes:
    """DAP block (GPCS 11.6.2.2, C.2): E2 { 4F SD AID, C3 signature }, before the C4 block."""
    return tlv.encode(0xE2, tlv.encode(0x4F, sd_aid) + tlv.encode(0xC3, signature))


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


def java_card_install_data(instance_aid: bytes, privileges: bytes, applet_data: bytes) -> bytes:
    """What Applet.install() receives (JCRE 3.0.4 11.1.4 / GPCS 11.5.2.3.7): Li AID, Lc
    privileges, La applet data; at most 127 bytes in all, or the card refuses (6A80)."""
    return (bytes([len(instance_aid)]) + instance_aid + bytes([len(privileges)]) + privileges
            + bytes([len(applet_data)]) + applet_data)


def put_key(replace_version: int, key_data: bytes) -> Command:
    """PUT KEY (GPCS 11.8): P1 the version to replace (00 adds a key set), P2 81: key 1 and the
    following ones (ENC, MAC, DEK) in one command."""
    return Command(CLA_GP, INS_PUT_KEY, replace_version, 0x81, key_data, ALL, "PUT KEY")


def set_status(scope: int, state: int, aid: bytes) -> Command:
    """SET STATUS (GPCS 11.10): scope 80 the card (ISD), 40 an application."""
    return Command(CLA_GP, INS_SET_STATUS, scope, state, aid, None, "SET STATUS")


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
    """Tagged GET STATUS response: E3 templates (GPCS 11.4.3.2), lenient about vendor tags."""
    entries = []
    for item in ber.decode(data):
        if item.tag != 0xE3:
            continue
        fields = item.children()
        aid = ber.find(fields, 0x4F)
        if aid is None:
            continue
        life_cycle = ber.find(fields, 0x9F70) or b"\x00"
        modules = tuple(f.value for f in fields if f.tag == 0x84)
        entries.append(RegistryEntry(kind, aid, life_cycle[0], ber.find(fields, 0xC5) or b"",
                                     ber.find(fields, 0xC4), ber.find(fields, 0xCE), modules))
    return entries


def parse_legacy_status(kind: int, data: bytes) -> list[RegistryEntry]:
    """Legacy GET STATUS response (GPCS 11.4.3.1, GP 2.1.1 cards): per entry AID length, AID,
    life cycle, privileges byte, and for P1=10 the number of modules and each module's
    length and AID."""
    entries = []
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise tlv.TLVError(f"legacy GET STATUS entry truncated at offset {pos}")
        pos += n
        return data[pos - n:pos]

    while pos < len(data):
        aid = take(take(1)[0])
        life_cycle, privileges = take(2)
        modules: tuple[bytes, ...] = ()
        if kind == STATUS_LOAD_FILES_AND_MODULES:
            modules = tuple(take(take(1)[0]) for _ in range(take(1)[0]))
        entries.append(RegistryEntry(kind, aid, life_cycle, bytes([privileges]) if kind != STATUS_LOAD_FILES
                                     and kind != STATUS_LOAD_FILES_AND_MODULES else b"", None, None, modules))
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
    value = ber.unwrap(data, TAG_CPLC)
    return CPLC(value) if value and len(value) >= 42 else None


GP_OID = bytes.fromhex("2A864886FC6B")


@dataclass(frozen=True)
class ScpOption:
    """A secure channel protocol the card offers, with its i parameter (GPCS H.2, tag 64)."""
    scp: int
    i: int

    @property
    def s16(self) -> bool:
        return self.scp == 0x03 and bool(self.i & 0x01)  # Amendment D 5.1: i b1 = S16 mode


@dataclass(frozen=True)
class CardData:
    """Card recognition data (GET DATA 66, GPCS H.2)."""
    gp_version: str | None = None
    scp: tuple[ScpOption, ...] = ()

    def i_parameter(self, scp: int) -> int | None:
        return next((option.i for option in self.scp if option.scp == scp), None)

    def as_dict(self) -> dict:
        return {"gp_version": self.gp_version, "scp": [{"scp": o.scp, "i": o.i} for o in self.scp]}


def parse_card_data(data: bytes) -> CardData:
    """Card recognition data: the GP version and the secure channel protocols offered."""
    recognition = ber.find(ber.unwrap(data, 0x66), 0x73)
    gp_version = None
    options = []
    for item in ber.decode(recognition or b""):
        oid = ber.find(item.children(), 0x06) if item.constructed else None
        if not oid or not oid.startswith(GP_OID):
            continue
        arc = oid[len(GP_OID):]
        if item.tag == 0x60 and arc[:1] == b"\x02":
            gp_version = ".".join(str(b) for b in arc[1:])
        elif item.tag == 0x64 and arc[:1] == b"\x04" and len(arc) >= 3:
            options.append(ScpOption(arc[1], arc[2]))
    return CardData(gp_version, tuple(options))


KEY_TYPES = {0x80: "DES", 0x88: "AES", 0xA1: "RSA public", 0xA2: "RSA private"}


@dataclass(frozen=True)
class KeyInfo:
    """One key of the key information template (GET DATA E0, GPCS 11.3.3.1)."""
    id: int
    version: int
    type: int
    length: int

    @property
    def type_name(self) -> str:
        return KEY_TYPES.get(self.type, f"{self.type:02X}")

    def as_dict(self) -> dict:
        return {"id": self.id, "version": self.version, "type": self.type_name, "length": self.length}


def parse_key_information(data: bytes) -> list[KeyInfo]:
    keys = []
    for item in ber.decode(ber.unwrap(data, 0xE0)):
        if item.tag == 0xC0 and len(item.value) >= 4:
            v = item.value
            keys.append(KeyInfo(v[0], v[1], v[2], v[3]))
    return keys


@dataclass(frozen=True)
class SecurityDomainFci:
    """The FCI a security domain answers SELECT with (GPCS 11.9.3.1): its AID (84), its
    management data (73) in the proprietary template (A5), and the longest command data
    field it takes (9F65), when it says."""
    aid: bytes | None
    max_command_data: int | None
    is_security_domain: bool = False

    @classmethod
    def parse(cls, data: bytes) -> "SecurityDomainFci":
        try:
            fci = ber.find(data, 0x6F)
            if fci is None:
                return cls(None, None)
            proprietary = ber.find(fci, 0xA5) or b""
            limit = ber.find(proprietary, 0x9F65)
            return cls(ber.find(fci, 0x84), int.from_bytes(limit, "big") if limit else None,
                       ber.find(proprietary, 0x73) is not None)
        except tlv.TLVError:
            return cls(None, None)  # an unreadable FCI names nothing; the known AIDs are tried
