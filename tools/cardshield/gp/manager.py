"""Card management over PC/SC: authenticate to the ISD, list, inspect, install, delete.

One CardManager drives one card through the toolchain's Transport. Every refusal becomes
a GPError that names the operation, the status word and what to do.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from cardshield.card.apdu import CommandAPDU
from cardshield.protocol.command import Command

from . import commands as gp
from .cap import CapFile
from .errors import (AlreadyInstalled, AuthenticationFailed, CardLocked, GPError, GPKeyError, LoadFileError,
                     check_sw)
from .keys import StaticKeys
from .scp02 import SCP02Session
from .scp03 import SCP03Session
from .secure_channel import C_DECRYPTION, C_MAC, InitUpdateResponse, SecureChannel, build_apdu

SECURITY_LEVELS = {"mac": C_MAC, "enc": C_MAC | C_DECRYPTION}
# CPLC IC fabricator "CS" + IC type "VC": the CardShield virtual card's ISD (tools/virtualcard)
VIRTUAL_CARD_CPLC = bytes.fromhex("43535643")

AUTH_WARNING = (
    "authenticating to the card's security domain. If the keys are wrong the card counts a failed "
    "attempt and, after a few (often 3 to 10, card-specific), locks card management FOR GOOD. "
    "Never retry keys that failed.")


@dataclass
class InstallResult:
    package_aid: bytes
    instance_aid: bytes
    load_file_bytes: int
    load_blocks: int
    apdus: int
    seconds: float
    development_load_file: bool
    replaced: bool

    def as_dict(self) -> dict:
        return {"package": self.package_aid.hex().upper(), "instance": self.instance_aid.hex().upper(),
                "load_file_bytes": self.load_file_bytes, "load_blocks": self.load_blocks, "apdus": self.apdus,
                "seconds": round(self.seconds, 3), "development_load_file": self.development_load_file,
                "replaced": self.replaced}


@dataclass
class CardInfo:
    isd_aid: bytes
    virtual_card: bool
    cplc: dict | None = None
    card_data: dict = field(default_factory=dict)
    key_information: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"isd": self.isd_aid.hex().upper(), "virtual_card": self.virtual_card, "cplc": self.cplc,
                "card_data": self.card_data, "key_information": self.key_information}


class CardManager:
    def __init__(self, transport, keys: StaticKeys | None = None, *, security_level: str = "mac",
                 warn: Callable[[str], None] = lambda message: None,
                 progress: Callable[[str], None] = lambda message: None):
        if security_level not in SECURITY_LEVELS:
            raise GPError(f"security level must be one of {', '.join(SECURITY_LEVELS)}")
        self.transport = transport
        self.keys = keys
        self.level = SECURITY_LEVELS[security_level]
        self.warn = warn
        self.progress = progress
        self.session: SecureChannel | None = None
        self.isd_aid: bytes | None = None
        self.apdus = 0
        self._card_data: dict | None = None
        self._virtual: bool | None = None

    # ------------------------------------------------------------------ exchange

    def send(self, command: Command, *, sensitive: bool = False) -> tuple[bytes, int]:
        """One command, C-MACed (and encrypted) once a session is open; returns (data, SW)."""
        if self.session is not None:
            raw = self.session.wrap(command.cla, command.ins, command.p1, command.p2, command.data, command.ne)
        else:
            raw = build_apdu(command.cla, command.ins, command.p1, command.p2, command.data, command.ne)
        apdu = CommandAPDU.decode(raw)
        if sensitive:
            apdu = CommandAPDU(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, apdu.ne, sensitive=True)
        response = self.transport.transmit(apdu)
        self.apdus += 1
        data = response.data
        if self.session is not None:
            try:
                data = self.session.unwrap(data, response.sw)
            except ValueError as error:
                raise GPError(f"{command.name}: {error}; the session is no longer trustworthy") from None
        return data, response.sw

    def expect(self, command: Command, hints: dict[int, str] | None = None, *, sensitive: bool = False) -> bytes:
        data, sw = self.send(command, sensitive=sensitive)
        check_sw(sw, command.name, hints)
        return data

    # ------------------------------------------------------------------ ISD, identity

    def select_isd(self) -> bytes:
        """SELECT the Issuer Security Domain: GP 2.2+ AID, then the OP/GP 2.1 one."""
        self.session = None
        tried = []
        for aid in gp.ISD_AIDS:
            _, sw = self.send(gp.select(aid))
            if sw == 0x9000:
                self.isd_aid = aid
                return aid
            tried.append(f"{aid.hex().upper()} -> {sw:04X}")
        raise GPError(
            "no GlobalPlatform Issuer Security Domain answers on this interface (SELECT " + ", ".join(tried)
            + "). On many USIMs the ISD is reachable only over the air (SCP80 via the operator's OTA "
              "platform), not through a PC/SC reader; see docs/install.md.")

    def card_data(self) -> dict:
        if self._card_data is None:
            data, sw = self.send(gp.get_data(gp.TAG_CARD_DATA))
            self._card_data = gp.parse_card_data(data) if sw == 0x9000 else {"scp": []}
        return self._card_data

    def is_virtual_card(self) -> bool:
        """The CardShield virtual card identifies itself by its CPLC (see tools/virtualcard)."""
        if self._virtual is None:
            data, sw = self.send(gp.get_data(gp.TAG_CPLC))
            cplc = gp.parse_cplc(data) if sw == 0x9000 else None
            self._virtual = bool(cplc) and cplc.raw[:4] == VIRTUAL_CARD_CPLC
        return self._virtual

    def info(self) -> CardInfo:
        isd = self.select_isd()
        cplc_data, sw = self.send(gp.get_data(gp.TAG_CPLC))
        cplc = gp.parse_cplc(cplc_data) if sw == 0x9000 else None
        key_data, sw = self.send(gp.get_data(gp.TAG_KEY_INFORMATION))
        return CardInfo(isd, bool(cplc) and cplc.raw[:4] == VIRTUAL_CARD_CPLC,
                        cplc.as_dict() if cplc else None, self.card_data(),
                        gp.parse_key_information(key_data) if sw == 0x9000 else [])

    # ------------------------------------------------------------------ secure channel

    def _i_parameter(self, scp: int, default: int) -> int:
        for entry in self.card_data().get("scp", []):
            if entry["scp"] == scp:
                return entry["i"]
        return default

    def authenticate(self) -> None:
        """INITIALIZE UPDATE + EXTERNAL AUTHENTICATE (GPCS 7.4.2): SCP02 or SCP03, as the card answers."""
        if self.keys is None:
            raise GPKeyError("this operation needs the card's keys")
        if self.isd_aid is None:
            self.select_isd()
        i_scp02 = self._i_parameter(0x02, 0x55)
        self.warn(AUTH_WARNING)
        host_challenge = os.urandom(8)
        data, sw = self.send(gp.initialize_update(self.keys.version, host_challenge))
        if sw == 0x6983:
            raise CardLocked("the card refuses authentication (SW 6983): card management is locked after too "
                             "many failed authentications. It cannot be unlocked with GlobalPlatform commands.", sw)
        if sw == 0x6A88:
            raise GPKeyError(f"the card has no key set with version {self.keys.version:#04x} (SW 6A88); "
                             "run `cardshield gp info` to see its key sets and pass --key-version", sw)
        check_sw(sw, "INITIALIZE UPDATE")
        try:
            response = InitUpdateResponse.parse(data)
        except ValueError as error:
            raise GPError(f"INITIALIZE UPDATE: {error}") from None
        card_keys = self.keys.for_card(response.key_diversification_data, response.scp)
        if response.scp == 0x02:
            session: SecureChannel = SCP02Session(card_keys.enc, card_keys.mac, card_keys.dek, host_challenge,
                                                  response.sequence_counter, response.card_challenge, i_scp02)
        else:
            if len(card_keys.enc) not in (16, 24, 32):
                raise GPKeyError("SCP03 needs AES keys of 16, 24 or 32 bytes")
            session = SCP03Session(card_keys.enc, card_keys.mac, card_keys.dek, host_challenge,
                                   response.card_challenge)
        if not session.card_cryptogram_matches(response.card_cryptogram):
            raise AuthenticationFailed(
                f"the card's cryptogram does not match the keys from {self.keys.source} (key version "
                f"{response.key_version:#04x}, SCP{response.scp:02X}, diversification {self.keys.diversification}): "
                "these are not this card's keys. The card has counted this attempt; EXTERNAL AUTHENTICATE was "
                "not sent. Do not retry with the same keys; check the key source and diversification.")
        ext_auth = session.external_authenticate(self.level)
        response_apdu = self.transport.transmit(CommandAPDU.decode(ext_auth))
        self.apdus += 1
        if response_apdu.sw & 0xFFF0 == 0x63C0 or response_apdu.sw == 0x6300:
            retries = response_apdu.sw & 0x0F if response_apdu.sw & 0xFFF0 == 0x63C0 else None
            left = f"; {retries} attempts left before the card locks" if retries is not None else ""
            raise AuthenticationFailed(f"EXTERNAL AUTHENTICATE refused (SW {response_apdu.sw:04X}){left}",
                                       response_apdu.sw, retries)
        if response_apdu.sw == 0x6983:
            raise CardLocked("EXTERNAL AUTHENTICATE: card locked (SW 6983)", 0x6983)
        check_sw(response_apdu.sw, "EXTERNAL AUTHENTICATE")
        self.session = session

    # ------------------------------------------------------------------ registry

    def _status(self, kind: int) -> list[gp.RegistryEntry]:
        entries: list[gp.RegistryEntry] = []
        command = gp.get_status(kind)
        while True:
            data, sw = self.send(command)
            if sw == 0x6A88:  # referenced data not found: nothing of this kind
                return entries
            if sw not in (0x9000, gp.SW_MORE_DATA):
                check_sw(sw, "GET STATUS")
            entries += gp.parse_status(kind, data)
            if sw == 0x9000:
                return entries
            command = gp.get_status(kind, next_part=True)

    def registry(self) -> gp.Registry:
        if self.session is None:
            self.authenticate()
        isd = self._status(gp.STATUS_ISD)
        return gp.Registry(isd[0] if isd else None, self._status(gp.STATUS_APPLICATIONS),
                           self._status(gp.STATUS_LOAD_FILES_AND_MODULES))

    # ------------------------------------------------------------------ delete / install

    def delete(self, aid: bytes, related: bool) -> None:
        self.expect(gp.delete(aid, related), {
            0x6A88: "nothing with this AID is on the card",
            0x6985: "it is still in use (applications of this package exist, or it is the security domain);"
                    " delete with related objects"})

    def uninstall(self, package_aid: bytes, instance_aids: list[bytes]) -> list[str]:
        """Delete our instances and the package (with related objects). Returns what was deleted."""
        registry = self.registry()
        deleted = []
        for aid in instance_aids:
            app = registry.application(aid)
            if app is not None and app.load_file_aid not in (None, package_aid):
                self.delete(aid, related=False)
                deleted.append(aid.hex().upper())
        if registry.load_file(package_aid) is not None:
            self.delete(package_aid, related=True)
            deleted.append(package_aid.hex().upper())
        elif any(registry.application(aid) for aid in instance_aids):
            for aid in instance_aids:
                if registry.application(aid) is not None and aid.hex().upper() not in deleted:
                    self.delete(aid, related=False)
                    deleted.append(aid.hex().upper())
        return deleted

    def block_size(self) -> int:
        # short APDU: 255 data bytes minus the 8-byte MAC; with C-DECRYPTION the padding too
        return 239 if self.level & C_DECRYPTION else 247

    def install(self, cap: CapFile, *, applet_aid: bytes | None = None, instance_aid: bytes | None = None,
                applet_data: bytes = b"", force: bool = False) -> InstallResult:
        """INSTALL [for load], LOAD, INSTALL [for install and make selectable] (GPCS 9.3.5, 9.3.6)."""
        started = time.monotonic()
        applet_aid = applet_aid or (cap.applet_aids[0] if cap.applet_aids else None)
        if applet_aid is None or applet_aid not in cap.applet_aids:
            raise LoadFileError(f"{cap.source}: the CAP has no applet {applet_aid.hex().upper() if applet_aid else ''}"
                                f" (applets: {', '.join(a.hex().upper() for a in cap.applet_aids) or 'none'})")
        instance_aid = instance_aid or applet_aid
        if self.isd_aid is None or self.session is not None:
            self.select_isd()
        virtual = self.is_virtual_card()
        if cap.is_development_load_file and not virtual:
            raise LoadFileError(
                f"{cap.source} is a development load file: it has no bytecode and only the CardShield virtual "
                "card can load it. For this card build a real CAP with a Java Card SDK "
                "(JC_HOME=/path/to/sdk inv build) and install build/cardshield.cap; see docs/install.md.")
        self.authenticate()
        registry = self.registry()
        present = [e for e in (registry.load_file(cap.package_aid), registry.application(instance_aid)) if e]
        if present and not force:
            raise AlreadyInstalled(
                "already on the card: " + ", ".join(e.aid.hex().upper() for e in present)
                + ". Use --force to delete and reinstall (the applet's keys, certificates and PIN are lost).")
        if present:
            self.progress("deleting the installed applet (--force)")
            self.uninstall(cap.package_aid, [instance_aid])
        load_file = cap.load_file()
        version = f"Java Card {cap.javacard_version}" if cap.javacard_version else "unknown Java Card version"
        self.expect(gp.install_for_load(cap.package_aid, self.isd_aid), {
            0x6A84: "not enough memory on the card for the package",
            0x6985: "the card refuses the load (package already present, or card life cycle forbids loading)"})
        blocks = gp.load_blocks(load_file, self.block_size())
        self.progress(f"loading {len(load_file)} bytes in {len(blocks)} LOAD blocks")
        for number, block in enumerate(blocks, 1):
            hints = {0x6A84: f"not enough memory on the card for {len(load_file)} bytes of load file",
                     0x6A80: ("the virtual card links a package only to applet classes on its classpath and "
                              "refuses a malformed load file; build the applet (inv build) and check the CAP"
                              if virtual else f"the card rejected the load file; it may not support the CAP's "
                                              f"{version} or one of its imported packages"),
                     0x6985: f"the card refused to link the package; check it supports {version}"}
            self.expect(block, hints)
            if number % 10 == 0 or number == len(blocks):
                self.progress(f"LOAD {number}/{len(blocks)}")
        self.expect(gp.install_for_install(cap.package_aid, applet_aid, instance_aid, applet_data),
                    {0x6A80: "the applet's install() refused the install parameters (see docs/apdu.md)",
                     0x6A84: "not enough memory for the applet instance",
                     0x6985: "an application with this instance AID exists; use --force"},
                    sensitive=bool(applet_data))
        # apdus: every command this manager sent, from the first SELECT of the ISD
        return InstallResult(cap.package_aid, instance_aid, len(load_file), len(blocks), self.apdus,
                             time.monotonic() - started, cap.is_development_load_file, bool(present))
