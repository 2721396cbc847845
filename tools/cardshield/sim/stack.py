"""Start and stop a private virtual card stack.

Recipe (pcscd 1.9.9 ignores PCSCLITE_CSOCK_NAME for its own socket and uses one fixed
/run/pcscd; vpcd listens on 0.0.0.0): inside `unshare --mount --net --pid`, bring up
loopback, bind-mount our directory over /run/pcscd, start `pcscd -f` with a reader.conf
holding only vpcd, and the virtual card host, which connects to vpcd on the namespace's
loopback. Clients outside reach pcscd through PCSCLITE_CSOCK_NAME=<dir>/run/pcscd.comm.
Nothing outside the namespace can reach vpcd's port; killing the namespace's process group
(its PID 1 is the card host) leaves no process behind.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cardshield import paths
from cardshield.build.virtualcard import build_virtualcard
from cardshield.console import info
from cardshield.errors import UserError
from cardshield.setup import maven
from cardshield.setup.java import jdk_bin
from cardshield.sim import ISD_PROFILES
from cardshield.sim.applets import VirtualApplet
from cardshield.sim.control import query_control, send_control
from cardshield.sim.profiles import DEFAULT_PROFILE, load_profile

READER_FRIENDLY_NAME = "CardShield Virtual Reader"
VPCD_PORT = 0x8C7B  # 35963, vpcd's first slot
# pcscd names a reader "<FRIENDLYNAME> <reader index> <slot index>"; the card attaches to slot 0.
READER_NAME = f"{READER_FRIENDLY_NAME} 00 00"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
# T=1 ATR (ISO 7816-3): TA1=18, TD1=81 (T=1), TD2=31, TA3=FE (IFSC 254), TB3=45; historical
# bytes 80 73 00 00 C0: card capabilities with command chaining and extended Lc/Le (7816-4
# 12.1.1.9); TCK D5.
ATR_HEX = "3BF51800008131FE4580730000C0D5"
# T=0 ATR (card profiles whose protocol is T=0): TS 3B, T0 = 02 (no interface bytes: T=0,
# default rates), historical bytes 14 50; no card capabilities, so no extended length.
ATR_T0_HEX = "3B021450"
SOCKET_PATH_MAX = 107  # sun_path


class SimError(UserError):
    """The virtual card stack cannot start or stop; the message names the missing piece."""


@dataclass
class StackInfo:
    directory: str
    pid: int
    pcsc_socket: str
    reader: str
    control_socket: str
    started_in_seconds: float = 0.0
    profile: str = DEFAULT_PROFILE
    # Who `pid` is: a PID alone may name anyone once the stack is gone (see owns_process).
    start_time: int | None = None
    boot_id: str | None = None

    def env(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": self.pcsc_socket, "CARDSHIELD_READER": self.reader}


@dataclass(frozen=True)
class CommandReport:
    """The host's account of the last command (control REPORT)."""

    tear_points: int
    torn: bool
    armed_but_not_reached: bool
    # the most commit buffer its transactions used, journal overhead included (bytes)
    journal_peak: int = 0
    torn_at: str = ""
    # in how many parts the command data reached the applet (more than 1: larger than the APDU buffer)
    incoming_parts: int = 0

    @classmethod
    def parse(cls, text: str) -> CommandReport:
        values = dict(word.split("=", 1) for word in text.split())
        return cls(int(values["points"]), values["torn"] == "yes", values["unreached"] == "yes",
                   int(values.get("journal", 0)), values.get("at", "").replace("_", " "),
                   int(values.get("incoming", 0)))


@dataclass
class VirtualCardStack:
    directory: Path
    applets: list[VirtualApplet] = field(default_factory=list)
    # the GlobalPlatform Issuer Security Domain (tools/virtualcard/.../gp) answers before the applets
    frontend_class: str | None = "org.cardshield.virtualcard.gp.GlobalPlatformFrontEnd"
    # the ISD's behaviour (tools/virtualcard/.../gp/IsdProfile.java): plain, gp211, s16, dm, locked, small
    isd_profile: str = "plain"
    # further gp.* host properties, e.g. gp.isd.dap.publickey (hex SubjectPublicKeyInfo DER)
    isd_properties: dict[str, str] = field(default_factory=dict)
    extra_classpath: list[Path] = field(default_factory=list)
    pcscd_debug: bool = False
    # pcscd -a logs every APDU, PINs included: only for debugging with test PINs.
    pcscd_apdu_log: bool = False
    start_timeout: float = 30.0
    # card profile (tools/cardshield/sim/profiles): limits, and for strict ones tear points
    profile: str = DEFAULT_PROFILE
    # False: the stack dies with the process that started it (tests, demo), even on SIGKILL.
    # True: it outlives it (`cardshield sim start`) until `cardshield sim stop`.
    detached: bool = False
    info: StackInfo | None = None
    _process: subprocess.Popen | None = None

    # -- paths ---------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.directory / "run"

    @property
    def pcsc_socket(self) -> Path:
        return self.run_dir / "pcscd.comm"

    @property
    def control_socket(self) -> Path:
        return self.directory / "control.sock"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def pcscd_log(self) -> Path:
        return self.directory / "pcscd.log"

    @property
    def card_log(self) -> Path:
        return self.directory / "virtualcard.log"

    # -- start ---------------------------------------------------------------------------
    def start(self) -> StackInfo:
        started = time.monotonic()
        load_profile(self.profile)  # an unknown profile fails before anything starts
        self._check_prerequisites()
        build_virtualcard()
        if self.state_file.exists():
            previous = load_state(self.directory)
            if previous and owns_process(previous) and live_group_members(previous.pid):
                raise SimError(
                    f"a virtual card stack already runs from {self.directory} (pid {previous.pid}); "
                    "stop it first (`./cardshield sim --stop`)"
                )
            self.state_file.unlink(missing_ok=True)  # stale: its processes are gone (or were never ours)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        (self.directory / "readers").mkdir(exist_ok=True)
        (self.directory / "readers" / "vpcd").write_text(
            f'FRIENDLYNAME "{READER_FRIENDLY_NAME}"\n'
            f"DEVICENAME /dev/null:0x{VPCD_PORT:04X}\n"
            f"LIBPATH {VPCD_DRIVER}\n"
            f"CHANNELID 0x{VPCD_PORT:04X}\n"
        )
        (self.directory / "card.properties").write_text(self._card_properties())
        for stale in (self.pcsc_socket, self.control_socket):
            stale.unlink(missing_ok=True)
        self._launch()
        try:
            self._wait_for(self.pcsc_socket.exists, "pcscd to create its socket", self.pcscd_log)
            self._wait_for(self.control_socket.exists, "the virtual card host to start", self.card_log)
            _process_link.push(self.pcsc_socket)
            self._wait_for(self._card_present, f"the card to appear in {READER_NAME!r}", self.card_log)
        except BaseException:
            self.stop()
            raise
        self.info = StackInfo(
            directory=str(self.directory),
            pid=self._process.pid,
            pcsc_socket=str(self.pcsc_socket),
            reader=READER_NAME,
            control_socket=str(self.control_socket),
            started_in_seconds=round(time.monotonic() - started, 2),
            profile=self.profile,
            start_time=process_start_time(self._process.pid),
            boot_id=_boot_id(),
        )
        self.state_file.write_text(json.dumps(asdict(self.info), indent=2))
        return self.info

    def _check_prerequisites(self) -> None:
        if self.isd_profile not in ISD_PROFILES:
            raise SimError(f"unknown ISD profile {self.isd_profile!r}; choose one of {', '.join(ISD_PROFILES)}")
        missing = []
        for tool in ("unshare", "ip", "mount"):
            if not _which(tool):
                missing.append(f"{tool} (apt-get install util-linux iproute2 mount)")
        if not _which("pcscd"):
            missing.append("pcscd (apt-get install pcscd)")
        if not VPCD_DRIVER.exists():
            missing.append(f"{VPCD_DRIVER} (apt-get install vsmartcard-vpcd)")
        for artifact in (maven.JCARDSIM, maven.ASM):
            if not artifact.path.exists():
                missing.append(f"{artifact.path} (run ./cardshield to set up)")
        if missing:
            raise SimError("the virtual card needs: " + "; ".join(missing))
        jdk_bin("java")  # raises SetupError naming the fix
        for path in (self.pcsc_socket, self.control_socket):
            if len(str(path)) > SOCKET_PATH_MAX:
                raise SimError(f"{path} is longer than a Unix socket path may be; use a shorter directory")

    def _card_properties(self) -> str:
        lines = [
            "# generated by cardshield.sim.stack",
            "vpcd.host=127.0.0.1",
            f"vpcd.port={VPCD_PORT}",
            f"atr={ATR_T0_HEX if load_profile(self.profile).protocol == 'T=0' else ATR_HEX}",
            f"control.socket={self.control_socket}",
            *load_profile(self.profile).card_properties(),
        ]
        if self.frontend_class:
            lines.append(f"frontend.class={self.frontend_class}")
            lines.append(f"gp.isd.profile={self.isd_profile}")
            lines += [f"{key}={value}" for key, value in sorted(self.isd_properties.items())]
        installed = [applet for applet in self.applets if applet.instance_aid]
        for i, applet in enumerate(self.applets):
            lines += [
                f"loadfile.{i}.package={applet.package_aid.hex().upper()}",
                f"loadfile.{i}.module={applet.module_aid.hex().upper()}",
                f"loadfile.{i}.class={applet.applet_class}",
            ]
        # an applet without instance AID is a load file only: its instance comes from GlobalPlatform INSTALL
        for i, applet in enumerate(installed):
            lines += [
                f"install.{i}.package={applet.package_aid.hex().upper()}",
                f"install.{i}.module={applet.module_aid.hex().upper()}",
                f"install.{i}.instance={applet.instance_aid.hex().upper()}",
                f"install.{i}.privileges={applet.privileges.hex().upper()}",
                f"install.{i}.parameters={applet.parameters.hex().upper()}",
            ]
        return "\n".join(lines) + "\n"

    def _classpath(self) -> str:
        # the host's classes first: they shadow jcardsim's unseeded key-generation RNG
        # (tools/virtualcard/src/com/licel/jcardsim/crypto/SecureRandomNullProvider.java)
        entries = [paths.VIRTUALCARD_CLASSES, maven.JCARDSIM.path, maven.ASM.path, *self.extra_classpath]
        entries += [applet.classes_dir for applet in self.applets]
        return ":".join(dict.fromkeys(str(entry) for entry in entries))

    def _launch(self) -> None:
        pcscd_flags = "-d" if self.pcscd_debug else ""
        if self.pcscd_apdu_log:
            pcscd_flags += " -a"
        script = (
            'set -e; ip link set lo up; mkdir -p /run/pcscd; mount --bind "$0/run" /run/pcscd; '
            f'{_which("pcscd")} -f {pcscd_flags} -c "$0/readers" >>"$0/pcscd.log" 2>&1 & '
            'exec "$@"'
        )
        command = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--propagation", "private"]
        if os.geteuid() != 0:
            command.append("--map-root-user")  # a user namespace grants the mount/net rights
        command += ["sh", "-c", script, str(self.directory)]
        command += [jdk_bin("java"), "-XX:+UseSerialGC", "-cp", self._classpath(),
                    "org.cardshield.virtualcard.VirtualCardHost", str(self.directory / "card.properties")]
        with open(self.card_log, "ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=None if self.detached else _die_with_parent,
            )

    def _wait_for(self, condition, what: str, log: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not condition():
            if self._process.poll() is not None:
                raise SimError(f"the virtual card stack exited (code {self._process.returncode}) while waiting "
                               f"for {what}\n{_tail(self.card_log)}{_tail(self.pcscd_log)}")
            if time.monotonic() > deadline:
                raise SimError(f"timed out after {self.start_timeout:.0f} s waiting for {what}\n{_tail(log)}")
            time.sleep(0.05)

    def _card_present(self) -> bool:
        from smartcard import scard

        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            return False
        try:
            hresult, card, _protocol = scard.SCardConnect(
                context, READER_NAME, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            )
            if hresult != scard.SCARD_S_SUCCESS:
                return False
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
            return True
        finally:
            scard.SCardReleaseContext(context)

    # -- control -------------------------------------------------------------------------
    def pristine(self) -> None:
        """Wipe every applet instance and install the configured ones again (virtual card only)."""
        send_control(self.control_socket, "PRISTINE")

    def remove_card(self) -> None:
        send_control(self.control_socket, "REMOVE")

    def insert_card(self) -> None:
        send_control(self.control_socket, "INSERT")

    def set_applet_bytes(self, instance_aid: bytes, field_path: str, value: bytes) -> None:
        """Test facility with no counterpart on a real card: overwrite a byte array of an
        applet instance's persistent state (field names from the instance, e.g.
        "state.counter"), same length, to reach states too far away by APDU."""
        send_control(self.control_socket, f"SET-BYTES {instance_aid.hex()} {field_path} {value.hex()}")

    def tear_at(self, point: int) -> None:
        """Strict profiles only: the power goes at tear point `point` (from 1) of the next
        command; the card answers nothing to it and leaves the reader until insert_card()."""
        send_control(self.control_socket, f"TEAR-AT {point}")

    def last_command(self) -> CommandReport:
        """The tear points of the last command and whether it was torn (strict profiles)."""
        return CommandReport.parse(query_control(self.control_socket, "REPORT"))

    def fault_private_key(self, instance_aid: bytes, field_path: str) -> None:
        """Test facility (KeyProbe.java): flip one bit of the private key at field_path (e.g.
        "state.slot1.keyPair.private"): dP of an RSA CRT key, S of an EC key, as a fault in
        the card would."""
        send_control(self.control_socket, f"FAULT-KEY {instance_aid.hex()} {field_path}")

    def inspect_applet(self, instance_aid: bytes, field_path: str) -> str:
        """Test facility (KeyProbe.java): "initialized=yes|no" for a key object,
        "length=N zero=yes|no" for a byte array (with "nonzero=FIRST-LAST" when not all
        zero), the value of anything else. The path APDU_BUFFER reads the APDU buffer as
        the last command left it."""
        return query_control(self.control_socket, f"INSPECT {instance_aid.hex()} {field_path}")

    # -- stop ----------------------------------------------------------------------------
    def stop(self) -> None:
        pid = self._process.pid if self._process else (self.info.pid if self.info else None)
        if pid is None:
            return
        try:
            stop_group(pid, self._process)
        finally:
            _process_link.pop(self.pcsc_socket)
        self._process = None
        self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> VirtualCardStack:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class _ProcessSocketLink:
    """pcsc-lite reads PCSCLITE_CSOCK_NAME once per process (at the first context) but connects
    anew for every context. So this process's PC/SC clients use one fixed path, a symlink
    re-pointed at the socket of the most recently started stack that still runs: stacks can
    follow (or nest in) each other in one process, e.g. a test starting its own card."""

    def __init__(self) -> None:
        self.active: list[Path] = []
        self.link: Path | None = None

    def push(self, socket: Path) -> None:
        if self.link is None:
            _remove_links_of_dead_processes()
            directory = Path(tempfile.gettempdir()) / f"{LINK_PREFIX}{os.getpid()}"
            directory.mkdir(mode=0o700, exist_ok=True)
            self.link = directory / "pcscd.comm"
            atexit.register(shutil.rmtree, directory, True)
            if os.environ.get("PCSCLITE_CSOCK_NAME") not in (None, str(self.link)):
                info(f"PCSCLITE_CSOCK_NAME={os.environ['PCSCLITE_CSOCK_NAME']} is replaced by this process's "
                     "virtual card")
            os.environ["PCSCLITE_CSOCK_NAME"] = str(self.link)
        self.active.append(socket)
        self._point_at(socket)

    def pop(self, socket: Path) -> None:
        if socket in self.active:
            self.active.remove(socket)
        if self.active:
            self._point_at(self.active[-1])

    def _point_at(self, socket: Path) -> None:
        temporary = self.link.with_name(f".{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(socket)
        temporary.replace(self.link)  # atomic: a client never sees a missing socket path


_process_link = _ProcessSocketLink()
LINK_PREFIX = "cardshield-pcsc-"


def _remove_links_of_dead_processes() -> None:
    """atexit does not run after SIGKILL: sweep the link directories whose process is gone."""
    for directory in Path(tempfile.gettempdir()).glob(LINK_PREFIX + "*"):
        pid = directory.name[len(LINK_PREFIX):]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(directory, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL `unshare` when its parent dies (prctl PR_SET_PDEATHSIG);
    unshare --kill-child then takes the namespace's processes with it."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_group(pgid: int, process: subprocess.Popen | None = None, grace: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after `grace`, then verify."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while live_group_members(pgid) and time.monotonic() < deadline:
            if process is not None:
                process.poll()
            time.sleep(0.05)
        if not live_group_members(pgid):
            break
    if process is not None:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    survivors = live_group_members(pgid)
    if survivors:
        raise SimError(f"processes {survivors} of the virtual card stack survived SIGKILL")


def live_group_members(pgid: int) -> list[int]:
    """PIDs in process group `pgid` that are not zombies (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def load_state(directory: Path) -> StackInfo | None:
    """The state `sim start` left, or None; a file that is not one is refused with its path."""
    state = directory / "state.json"
    if not state.exists():
        return None
    try:
        fields = json.loads(state.read_text())
        known = {name: fields[name] for name in StackInfo.__dataclass_fields__ if name in fields}
        return StackInfo(**known)
    except (ValueError, TypeError, KeyError) as error:
        raise SimError(f"{state} is not a virtual card state file ({error}); remove it") from None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (proc(5)): start time in clock ticks after boot. With the PID
    and the boot id it names one process for good, which a PID alone does not (PIDs are reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def owns_process(state: StackInfo) -> bool:
    """Is state.pid still the process `sim start` launched (same boot, same start time)? A state
    written without the identity (older versions) cannot be checked and counts as stale."""
    if state.start_time is None or state.boot_id is None or state.boot_id != _boot_id():
        return False
    return process_start_time(state.pid) == state.start_time


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last lines of {path} ---\n" + "\n".join(text) + "\n" if text else ""
