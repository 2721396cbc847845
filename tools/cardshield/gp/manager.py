"""Card management over PC/SC: find and authenticate to the security domain, list, inspect,
load and install any CAP, delete, replace keys, lock and unlock.

One CardManager drives one card through the toolchain's Transport, inside one PC/SC
transaction from its first command to close(): no other client can slip a command into
the secure channel. Every refusal becomes a GPError that names the operation, the status
word and what to do. What particular cards allow beyond GlobalPlatform lives in
cardprofiles.py, not here.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from cardshield.card.apdu import CommandAPDU
from cardshield.protocol.command import Command
from cardshield.protocol.tlv import TLVError

from . import commands as gp
from .cap import CapFile
from .cardprofiles import CardProfile, recognise
from .errors import (AlreadyInstalled, AuthenticationFailed, CardLocked, GPError, GPKeyError, LoadFileError,
                     check_sw)
from .keys import StaticKeys
from .scp02 import SCP02Session
from .scp03 import SCP03Session
from .secure_channel import C_DECRYPTION, C_MAC, InitUpdateResponse, SecureChannel, build_apdu

SECURITY_LEVELS = {"mac": C_MAC, "enc": C_MAC | C_DECRYPTION}
SHORT_DATA_MAX = 255  # short APDU command data (ISO 7816-3 12.1)
MAX_STATUS_PAGES = 256  # GET STATUS [next] rounds before a card is taken to loop
JAVA_CARD_INSTALL_MAX = 127  # bytes Applet.install() may receive (JCRE 3.0.4 11.1.4)

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
    block_size: int = 0
    load_file_hash: bool = False
    dap: bool = False

    def as_dict(self) -> dict:
        return {"package": self.package_aid.hex().upper(), "instance": self.instance_aid.hex().upper(),
                "load_file_bytes": self.load_file_bytes, "load_blocks": self.load_blocks, "apdus": self.apdus,
                "seconds": round(self.seconds, 3), "development_load_file": self.development_load_file,
                "replaced": self.replaced, "block_size": self.block_size, "load_file_hash": self.load_file_hash,
                "dap": self.dap}


@dataclass
class CardInfo:
    isd_aid: bytes
    profile: CardProfile
    locked: bool
    max_command_data: int | None
    cplc: gp.CPLC | None = None
    card_data: gp.CardData = field(default_factory=gp.CardData)
    key_information: list[gp.KeyInfo] = field(default_factory=list)

    @property
    def virtual_card(self) -> bool:
        return self.profile.loads_development_files

    def as_dict(self) -> dict:
        return {"isd": self.isd_aid.hex().upper(), "profile": self.profile.name, "locked": self.locked,
                "max_command_data": self.max_command_data, "virtual_card": self.virtual_card,
                "cplc": self.cplc.as_dict() if self.cplc else None, "card_data": self.card_data.as_dict(),
                "key_information": [k.as_dict() for k in self.key_information]}


@dataclass(frozen=True)
class PutKeyResult:
    version: int
    replaced: int | None  # the version replaced, None when added
    key_check_values: tuple[bytes, bytes, bytes]

    def as_dict(self) -> dict:
        return {"version": self.version, "replaced": self.replaced,
                "kcv": [k.hex().upper() for k in self.key_check_values]}


class CardManager:
    def __init__(self, transport, keys: StaticKeys | None = None, *, security_level: str = "mac",
                 sd_aid: bytes | None = None, block_size: int | None = None,
                 warn: Callable[[str], None] = lambda message: None,
                 progress: Callable[[str], None] = lambda message: None):
        if security_level not in SECURITY_LEVELS:
            raise GPError(f"security level must be one of {', '.join(SECURITY_LEVELS)}")
        if block_size is not None and not 1 <= block_size <= SHORT_DATA_MAX:
            raise GPError(f"block size must be 1..{SHORT_DATA_MAX} bytes, not {block_size}")
        self.transport = transport
        self.keys = keys
        self.level = SECURITY_LEVELS[security_level]
        self.sd_aid = sd_aid
        self.requested_block_size = block_size
        self.warn = warn
        self.progress = progress
        self.session: SecureChannel | None = None
        self.isd_aid: bytes | None = None
        self.locked = False
        self.max_command_data: int | None = None
        self.apdus = 0
        self._card_data: gp.CardData | None = None
        self._cplc: tuple[gp.CPLC | None] | None = None
        self._status_tagged: bool | None = None  # learned: tagged (GP 2.2+) or legacy GET STATUS
        self._owns_transaction = False

    # ------------------------------------------------------------------ exclusive access

    def __enter__(self) -> "CardManager":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _exclusive(self) -> None:
        """Hold a PC/SC transaction from the first command on (GPPro does the same): another
        client's SELECT between our commands would end the secure channel mid-LOAD."""
        if self._owns_transaction or getattr(self.transport, "in_transaction", True):
            return  # already held here or by the caller; or a transport without PC/SC
        self.transport.begin_transaction()
        self._owns_transaction = True

    def close(self) -> None:
        """End the session and release the card to other PC/SC clients."""
        self.session = None
        if self._owns_transaction:
            self._owns_transaction = False
            self.transport.end_transaction()

    # ------------------------------------------------------------------ exchange

    def send(self, command: Command, *, sensitive: bool = False, secret: bool = False) -> tuple[bytes, int]:
        """One command, C-MACed (and encrypted) once a session is open; returns (data, SW).
        `sensitive`: its data is masked in traces. `secret`: its data carries keys in clear
        (e.g. install parameters), so it also goes only under C-DECRYPTION."""
        sensitive = sensitive or secret
        if secret and (self.session is None or not self.session.security_level & C_DECRYPTION):
            raise GPError(f"{command.name} carries secrets (keys) and is sent only under C-DECRYPTION; "
                          "use --security-level enc")
        self._exclusive()
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

    def expect(self, command: Command, hints: dict[int, str] | None = None, *, sensitive: bool = False,
               secret: bool = False) -> bytes:
        data, sw = self.send(command, sensitive=sensitive, secret=secret)
        check_sw(sw, command.name, hints)
        return data

    # ------------------------------------------------------------------ ISD, identity

    def select_isd(self) -> bytes:
        """SELECT the Issuer Security Domain (GPCS 11.9): the AID given (--sd), else the
        default-selected application when its FCI is a security domain's (tag 84, with
        9F65), else the GP 2.2+ and the OP/GP 2.1 default AIDs. 6283 means selected, with the
        card CARD_LOCKED (GPCS 11.9.3.2)."""
        self.session = None
        if self.sd_aid is not None:
            candidates = [self.sd_aid]
        else:
            candidates = [b"", *gp.ISD_AIDS]
        tried = []
        for aid in candidates:
            data, sw = self.send(gp.select(aid))
            if sw not in (0x9000, 0x6283):
                tried.append(f"{aid.hex().upper() or '(default selection)'} -> {sw:04X}")
                continue
            fci = gp.SecurityDomainFci.parse(data)
            if not aid and (fci.aid is None or not fci.is_security_domain):
                tried.append(f"(default selection) -> {fci.aid.hex().upper() if fci.aid else 'no AID'},"
                             " not a security domain")
                continue
            self.isd_aid = fci.aid if not aid else aid
            self.max_command_data = fci.max_command_data
            self.locked = sw == 0x6283
            if self.locked:
                self.warn("the card is CARD_LOCKED (SELECT of the security domain answered 6283): applications "
                          "cannot be selected until the issuer unlocks it (`cardshield gp unlock-card`)")
            return self.isd_aid
        if self.sd_aid is not None:
            raise GPError(f"the security domain {self.sd_aid.hex().upper()} given with --sd does not answer "
                          f"SELECT ({', '.join(tried)}); check the AID (`cardshield gp info` without --sd)")
        raise GPError(
            "no GlobalPlatform Issuer Security Domain answers on this interface (SELECT " + ", ".join(tried)
            + "). If you know its AID pass --sd AID. On many USIMs the ISD is reachable only over the air "
              "(SCP80 via the operator's OTA platform), not through a PC/SC reader; see docs/install.md.")

    def card_data(self) -> gp.CardData:
        if self._card_data is None:
            data, sw = self.send(gp.get_data(gp.TAG_CARD_DATA))
            try:
                self._card_data = gp.parse_card_data(data) if sw == 0x9000 else gp.CardData()
            except TLVError:
                self._card_data = gp.CardData()  # unreadable recognition data: protocols from INITIALIZE UPDATE
        return self._card_data

    def cplc(self) -> gp.CPLC | None:
        if self._cplc is None:
            data, sw = self.send(gp.get_data(gp.TAG_CPLC))
            try:
                self._cplc = (gp.parse_cplc(data) if sw == 0x9000 else None,)
            except TLVError:
                self._cplc = (None,)
        return self._cplc[0]

    def card_profile(self) -> CardProfile:
        """What this card is known to allow beyond GlobalPlatform (cardprofiles.py), from its CPLC."""
        if self.isd_aid is None:
            self.select_isd()
        return recognise(self.cplc())

    def info(self) -> CardInfo:
        isd = self.select_isd()
        key_data, sw = self.send(gp.get_data(gp.TAG_KEY_INFORMATION))
        try:
            key_information = gp.parse_key_information(key_data) if sw == 0x9000 else []
        except TLVError:
            key_information = []
        return CardInfo(isd, recognise(self.cplc()), self.locked, self.max_command_data, self.cplc(),
                        self.card_data(), key_information)

    # ------------------------------------------------------------------ secure channel

    def _host_challenge_length(self) -> int:
        """16 bytes when the card offers SCP03 only in S16 mode (GET DATA 66), else 8."""
        offered = self.card_data().scp
        if offered and all(option.s16 for option in offered):
            return 16
        return 8

    def _initialize_update(self) -> tuple[bytes, bytes, int]:
        host_challenge = os.urandom(self._host_challenge_length())
        data, sw = self.send(gp.initialize_update(self.keys.version, host_challenge))
        if sw == 0x6700:
            # S8 vs S16 (Amendment D 7.1.1): the challenge length the card did not expect is refused
            # before any key is used, so nothing was counted; the other length is the card's mode
            host_challenge = os.urandom(24 - len(host_challenge))
            data, sw = self.send(gp.initialize_update(self.keys.version, host_challenge))
        return host_challenge, data, sw

    def authenticate(self) -> None:
        """INITIALIZE UPDATE + EXTERNAL AUTHENTICATE (GPCS 7.4.2): SCP02, SCP03 S8 or S16, as
        the INITIALIZE UPDATE response says."""
        if self.keys is None:
            raise GPKeyError("this operation needs the card's keys")
        if self.isd_aid is None:
            self.select_isd()
        i_scp02 = self.card_data().i_parameter(0x02) or 0x55
        self.warn(AUTH_WARNING)
        host_challenge, data, sw = self._initialize_update()
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
        if self.keys.version and response.key_version != self.keys.version:
            # Some cards answer with their only key set whatever P1 asks (GPPro reports this too);
            # EXTERNAL AUTHENTICATE is not sent with keys meant for another key set
            raise GPKeyError(
                f"key version mismatch: --key-version asked for key set {self.keys.version:#04x}, the card "
                f"answered INITIALIZE UPDATE with key set {response.key_version:#04x}. Pass --key-version "
                f"{response.key_version:#04x} with that key set's keys (or 0 for the card's default).")
        card_keys = self.keys.for_card(response.key_diversification_data, response.scp)
        if response.scp == 0x02:
            if len(card_keys.enc) != 16:
                raise GPKeyError("SCP02 needs double-length 3DES keys of 16 bytes")
            session: SecureChannel = SCP02Session(card_keys.enc, card_keys.mac, card_keys.dek, host_challenge,
                                                  response.sequence_counter, response.card_challenge, i_scp02)
        else:
            if len(card_keys.enc) not in (16, 24, 32):
                raise GPKeyError("SCP03 needs AES keys of 16, 24 or 32 bytes")
            s16 = bool(response.i_param & 0x01)
            if len(host_challenge) != (16 if s16 else 8):
                raise GPError(f"INITIALIZE UPDATE: the card answered in SCP03 {'S16' if s16 else 'S8'} mode to a "
                              f"{len(host_challenge)}-byte host challenge")
            session = SCP03Session(card_keys.enc, card_keys.mac, card_keys.dek, host_challenge,
                                   response.card_challenge, s16=s16)
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

    def _require_session(self) -> None:
        if self.session is None:
            self.authenticate()

    # ------------------------------------------------------------------ registry

    def _status_pages(self, p1: int, tagged: bool) -> list[gp.RegistryEntry] | None:
        """One GET STATUS with its [next] rounds; None when the card refuses P1/P2 (6A86)."""
        parse = gp.parse_status if tagged else gp.parse_legacy_status
        entries: list[gp.RegistryEntry] = []
        command = gp.get_status(p1, tagged=tagged)
        for page in range(MAX_STATUS_PAGES):
            data, sw = self.send(command)
            if page == 0 and sw == 0x6A86:
                return None
            if sw == 0x6A88:  # referenced data not found: nothing (more) of this kind
                return entries
            if sw not in (0x9000, gp.SW_MORE_DATA):
                check_sw(sw, command.name)
            try:
                entries += parse(p1, data)
            except TLVError as error:
                raise GPError(f"{command.name}: the card's answer cannot be read ({error}); run with --trace "
                              "and report the card model") from None
            if sw == 0x9000:
                return entries
            if not data:
                # 6310 with no data: some firmware never ends the list; what came is all there is
                self.warn(f"{command.name}: the card answered 'more data' (6310) without data; the list ends here")
                return entries
            command = gp.get_status(p1, next_part=True, tagged=tagged)
        self.warn(f"GET STATUS {p1:02X}: stopped after {MAX_STATUS_PAGES} rounds of 'more data' (6310)")
        return entries

    def _status(self, kind: int) -> list[gp.RegistryEntry]:
        """GET STATUS with the fallbacks real cards need: tagged then legacy format, and P1 10
        (load files with their modules) then 20 (load files only), each on 6A86."""
        p1s = [kind, gp.STATUS_LOAD_FILES] if kind == gp.STATUS_LOAD_FILES_AND_MODULES else [kind]
        formats = [self._status_tagged] if self._status_tagged is not None else [True, False]
        for p1 in p1s:
            for tagged in formats:
                entries = self._status_pages(p1, tagged)
                if entries is not None:
                    self._status_tagged = tagged
                    return entries
        if kind == gp.STATUS_ISD:
            return []  # the card does not list its own security domain: nothing to show
        raise GPError(f"GET STATUS P1 {kind:02X} is refused (6A86) in the tagged and the legacy format; this card "
                      "does not list its content through GET STATUS")

    def registry(self) -> gp.Registry:
        self._require_session()
        isd = self._status(gp.STATUS_ISD)
        return gp.Registry(isd[0] if isd else None, self._status(gp.STATUS_APPLICATIONS),
                           self._status(gp.STATUS_LOAD_FILES_AND_MODULES))

    # ------------------------------------------------------------------ delete / install

    def delete(self, aid: bytes, related: bool) -> None:
        self._require_session()
        self.expect(gp.delete(aid, related), {
            0x6A88: "nothing with this AID is on the card",
            0x6985: "it is still in use (applications of this package exist, or it is the security domain);"
                    " delete the package with its applications (--related)"})

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
        """LOAD block data bytes: --block-size, else what the card's 9F65 (or a short APDU)
        leaves after the C-MAC and, with C-DECRYPTION, the padding to whole cipher blocks."""
        if self.requested_block_size is not None:
            return self.requested_block_size
        room = min(self.max_command_data or SHORT_DATA_MAX, SHORT_DATA_MAX)
        mac = self.session.mac_length if self.session is not None else 8
        room -= mac
        if self.level & C_DECRYPTION:
            cipher_block = 16 if isinstance(self.session, SCP03Session) else 8
            room = room // cipher_block * cipher_block - 1  # pad80 always adds at least one byte
        if room < 1:
            raise GPError(f"the card's maximum command data ({self.max_command_data} bytes, 9F65) leaves no room "
                          "for LOAD data; pass --block-size")
        return room

    def _check_install(self, cap: CapFile, applet_aid: bytes, instance_aid: bytes, privileges: bytes,
                       applet_data: bytes, secret_parameters: bool) -> None:
        """Everything the card would refuse about INSTALL [for install], checked before LOAD:
        a refusal after LOAD would leave a package behind."""
        if applet_aid not in cap.applet_aids:
            raise LoadFileError(f"{cap.source}: the CAP has no applet {applet_aid.hex().upper()} (applets: "
                                f"{', '.join(a.hex().upper() for a in cap.applet_aids) or 'none'}); pass --applet")
        self._check_instance(instance_aid, privileges, applet_data, secret_parameters)

    def _check_instance(self, instance_aid: bytes, privileges: bytes, applet_data: bytes,
                        secret_parameters: bool) -> None:
        if not 5 <= len(instance_aid) <= 16:
            raise GPError(f"instance AID {instance_aid.hex().upper()} is {len(instance_aid)} bytes; an AID has "
                          "5 to 16 (ISO 7816-5)")
        if len(privileges) not in (1, 3):
            raise GPError(f"privileges are 1 or 3 bytes (GPCS 11.1.2), not {len(privileges)}")
        install_data = gp.java_card_install_data(instance_aid, privileges, applet_data)
        if len(install_data) > JAVA_CARD_INSTALL_MAX:
            raise GPError(f"install parameters too long: Applet.install() would get {len(install_data)} bytes, at "
                          f"most {JAVA_CARD_INSTALL_MAX} (the card refuses more with SW 6A80); shorten --params "
                          f"to at most {JAVA_CARD_INSTALL_MAX - len(install_data) + len(applet_data)} bytes")
        if secret_parameters and not self.level & C_DECRYPTION:
            raise GPError("the install parameters carry secrets (keys) and are sent only under C-DECRYPTION; "
                          "use --security-level enc")

    def install_instance(self, package_aid: bytes, applet_aid: bytes, instance_aid: bytes, *,
                         applet_data: bytes = b"", privileges: bytes = b"\x00",
                         secret_parameters: bool = False) -> None:
        """INSTALL [for install and make selectable] alone (GPCS 9.3.6): one more instance of a
        package already on the card, e.g. with other install parameters (authenticates first if
        no secure channel is open)."""
        self._check_instance(instance_aid, privileges, applet_data, secret_parameters)
        self._require_session()
        self._install_for_install(package_aid, applet_aid, instance_aid, applet_data, privileges, secret_parameters)

    def _install_for_install(self, package_aid: bytes, applet_aid: bytes, instance_aid: bytes, applet_data: bytes,
                             privileges: bytes, secret_parameters: bool) -> None:
        self.expect(gp.install_for_install(package_aid, applet_aid, instance_aid, applet_data, privileges),
                    {0x6A80: "the applet's install() refused the install parameters (see docs/apdu.md)",
                     0x6A84: "not enough memory for the applet instance",
                     0x6985: "an application with this instance AID exists; use --force"},
                    sensitive=bool(applet_data), secret=secret_parameters)

    def install(self, cap: CapFile, *, applet_aid: bytes | None = None, instance_aid: bytes | None = None,
                applet_data: bytes = b"", privileges: bytes = b"\x00", force: bool = False,
                secret_parameters: bool = False, load_file_hash: bool = False,
                dap_signer: Callable[[bytes], bytes] | None = None) -> InstallResult:
        """INSTALL [for load], LOAD, INSTALL [for install and make selectable] (GPCS 9.3.5, 9.3.6).

        The Load File Data Block Hash (SHA-256) goes in INSTALL [for load] when asked, with a
        DAP, or when the security domain refuses the load without it (6A80: Delegated
        Management and DAP verification need it). `dap_signer` signs that hash for a DAP block.
        A refused INSTALL [for install] deletes the package again: nothing is left half-done.
        """
        started = time.monotonic()
        applet_aid = applet_aid or (cap.applet_aids[0] if cap.applet_aids else None)
        if applet_aid is None:
            raise LoadFileError(f"{cap.source}: the CAP has no applet to install")
        instance_aid = instance_aid or applet_aid
        self._check_install(cap, applet_aid, instance_aid, privileges, applet_data, secret_parameters)
        if self.isd_aid is None or self.session is not None:
            self.select_isd()
        profile = self.card_profile()
        if cap.is_development_load_file and not profile.loads_development_files:
            raise LoadFileError(
                f"{cap.source} is a development load file: it has no bytecode and only the CardShield virtual "
                "card can load it. For this card build a real CAP with a Java Card SDK "
                "(./cardshield build --jc-home /path/to/sdk) and install build/cardshield.cap; see docs/install.md.")
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
        data_block_hash = hashlib.sha256(cap.load_file_data()).digest()  # GPCS C.2: over the C4 value
        send_hash = load_file_hash or dap_signer is not None
        if dap_signer is not None:
            load_file = gp.dap_block(self.isd_aid, dap_signer(data_block_hash)) + load_file
        version = f"Java Card {cap.javacard_version}" if cap.javacard_version else "unknown Java Card version"
        load_hints = {0x6A84: "not enough memory on the card for the package",
                      0x6985: "the card refuses the load (package already present, or card life cycle forbids "
                              "loading)"}
        _, sw = self.send(gp.install_for_load(cap.package_aid, self.isd_aid, data_block_hash if send_hash else b""))
        if sw == 0x6A80 and not send_hash:
            self.progress("the security domain wants the Load File Data Block Hash (SHA-256); sending it")
            send_hash = True
            _, sw = self.send(gp.install_for_load(cap.package_aid, self.isd_aid, data_block_hash))
        check_sw(sw, "INSTALL [for load]", load_hints)
        block_size = self.block_size()
        blocks = gp.load_blocks(load_file, block_size)
        self.progress(f"loading {len(load_file)} bytes in {len(blocks)} LOAD blocks of {block_size} bytes")
        for number, block in enumerate(blocks, 1):
            hints = {0x6A84: f"not enough memory on the card for {len(load_file)} bytes of load file",
                     0x6A80: profile.load_refused_hint.format(version=version),
                     0x6700: "the card takes shorter commands than this block; pass a smaller --block-size",
                     0x6982: "the DAP signature does not verify with the security domain's DAP key"
                     if dap_signer else "security status not satisfied",
                     0x6985: f"the card refused to link the package; check it supports {version}"}
            self.expect(block, hints)
            if number % 10 == 0 or number == len(blocks):
                self.progress(f"LOAD {number}/{len(blocks)}")
        try:
            self._install_for_install(cap.package_aid, applet_aid, instance_aid, applet_data, privileges,
                                      secret_parameters)
        except GPError as refused:
            self._remove_package_after_refusal(cap.package_aid, refused)
            raise
        # apdus: every command this manager sent, from the first SELECT of the ISD
        return InstallResult(cap.package_aid, instance_aid, len(load_file), len(blocks), self.apdus,
                             time.monotonic() - started, cap.is_development_load_file, bool(present), block_size,
                             send_hash, dap_signer is not None)

    def _remove_package_after_refusal(self, package_aid: bytes, refused: GPError) -> None:
        try:
            self.expect(gp.delete(package_aid, related=True))
        except GPError as error:
            refused.args = (f"{refused.args[0]}. Removing the package loaded for it failed too ({error}); delete "
                            f"it with `cardshield gp delete {package_aid.hex().upper()}`",)
            return
        refused.args = (f"{refused.args[0]}. The package loaded for it was deleted again: the card is as before.",)

    # ------------------------------------------------------------------ keys, life cycle

    def put_keys(self, enc: bytes, mac: bytes, dek: bytes, new_version: int,
                 replace_version: int | None = None) -> PutKeyResult:
        """PUT KEY (GPCS 11.8): a new key set (replace_version None) or a replacement for
        key set `replace_version`, in the format of the open session's protocol (SCP02:
        3DES keys under the session DEK; SCP03: AES keys under the DEK), each with its key
        check value; the card's answer must repeat the version and the three KCVs."""
        if not 0x01 <= new_version <= 0x7F:
            raise GPKeyError(f"key version must be 0x01..0x7F, not {new_version:#04x}")
        if replace_version is not None and not 0x01 <= replace_version <= 0x7F:
            raise GPKeyError(f"the key set to replace must be 0x01..0x7F, not {replace_version:#04x}")
        self._require_session()
        try:
            components = [self.session.key_component(key) for key in (enc, mac, dek)]
        except ValueError as error:
            raise GPKeyError(f"PUT KEY: {error}") from None
        data = self.expect(gp.put_key(replace_version or 0, bytes([new_version]) + b"".join(components)),
                           {0x6A88: f"the card has no key set {replace_version or 0:#04x} to replace",
                            0x6A80: "the card refused the key data (a key set with this version exists, or a key "
                                    "check value did not match)",
                            0x6A84: "no room on the card for another key set; replace one instead"},
                           sensitive=True)  # the keys travel encrypted under the DEK (GPCS 11.8.2.3)
        expected = [component[-3:] for component in components]
        if data[:1] != bytes([new_version]) or [data[1 + 3 * n:4 + 3 * n] for n in range(3)] != expected:
            raise GPError(f"PUT KEY: the card answered {data.hex().upper()}, not key set {new_version:#04x} with the "
                          "key check values of the keys sent; do not rely on the new keys before checking them "
                          "with `cardshield gp info` and a test authentication")
        return PutKeyResult(new_version, replace_version, tuple(expected))

    def set_application_locked(self, aid: bytes, locked: bool) -> None:
        """SET STATUS (GPCS 11.10) of an application: LOCKED (not selectable) or back."""
        self._require_session()
        self.expect(gp.set_status(gp.STATUS_APPLICATIONS, gp.APPLICATION_LOCKED if locked else 0x00, aid),
                    {0x6A88: "no application with this AID", 0x6A86: "it is not in a state that allows this"})

    def set_card_locked(self, locked: bool) -> None:
        """SET STATUS of the card: CARD_LOCKED (only the ISD selectable) or back to SECURED."""
        self._require_session()
        self.expect(gp.set_status(gp.STATUS_ISD, gp.CARD_LOCKED if locked else gp.CARD_SECURED, self.isd_aid),
                    {0x6A86: "the card is not in a state that allows this transition"})
