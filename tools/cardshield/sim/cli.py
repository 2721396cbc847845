"""`cardshield sim start|stop|status|pristine`: a private virtual card for manual work.

start returns once the card is present and prints the environment a PC/SC client
needs; the stack keeps running in the background until `cardshield sim stop`.
"""

from __future__ import annotations

from pathlib import Path

from cardshield import paths
from cardshield.sim import ISD_PROFILES
from cardshield.sim.profiles import profile_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser("sim", help="start/stop the private virtual card (pcscd + vpcd + jcardsim)")
    parser.add_argument("action", choices=ACTIONS, nargs="?", help="start (default), stop, status or pristine")
    for action in ACTIONS[1:]:  # the flag forms: `sim --stop` is `sim stop`
        parser.add_argument(f"--{action}", dest="action_flag", action="store_const", const=action,
                            help=f"the same as `sim {action}`")
    parser.add_argument("--dir", type=Path, default=paths.SIM_STATE_DIR, help="state directory (default var/sim)")
    parser.add_argument("--profile", default=None, metavar="NAME", type=profile_argument,
                        help="card profile for start: lenient (default, fast), jcop4, sim "
                             "(tools/cardshield/sim/profiles; strict ones journal and tear inside commands)")
    parser.add_argument("--pcscd-debug", action="store_true", help="pcscd -d (no APDU contents) into pcscd.log")
    parser.add_argument("--isd", choices=ISD_PROFILES, default="plain",
                        help="behaviour of the card's GlobalPlatform security domain: plain (GP 2.3, SCP02+SCP03),"
                             " gp211 (GP 2.1.1 legacy card), s16 (SCP03 S16 only), dm (requires the load-file"
                             " hash), locked (CARD_LOCKED), small (64-byte commands); see docs/install.md")
    parser.set_defaults(func=_run, usage_error=parser.error)


ACTIONS = ("start", "stop", "status", "pristine")


def _run(args) -> int:
    if args.action and args.action_flag and args.action != args.action_flag:
        args.usage_error(f"give one action, not {args.action!r} and --{args.action_flag}")  # exits 2
    args.action = args.action or args.action_flag or "start"
    from cardshield.sim.applets import default_applets
    from cardshield.sim.control import send_control
    from cardshield.sim.profiles import DEFAULT_PROFILE, load_profile
    from cardshield.sim.stack import (SimError, VirtualCardStack, live_group_members, load_state, owns_process,
                                      stop_group)

    state = load_state(args.dir)
    if args.profile is not None and args.action != "start":
        raise SimError(f"--profile applies to start; the running card keeps its profile ({args.action} takes none)")
    if args.action == "start":
        profile = load_profile(args.profile or DEFAULT_PROFILE)
        stack = VirtualCardStack(args.dir, applets=default_applets(profile.applet_variant), pcscd_debug=args.pcscd_debug, detached=True,
                                 isd_profile=args.isd, profile=profile.name)
        info = stack.start()
        print(f"virtual card ready in {info.started_in_seconds} s, reader {info.reader!r}, ISD profile {args.isd}, "
              f"card profile {profile.name}: {profile.description}")
        print(f"export PCSCLITE_CSOCK_NAME={info.pcsc_socket}")
        print(f"export CARDSHIELD_READER='{info.reader}'")
        print(f"logs: {args.dir}/pcscd.log {args.dir}/virtualcard.log; stop with: ./cardshield sim --stop")
        return 0
    if state is None:
        print(f"no virtual card running from {args.dir}")
        return 0 if args.action == "stop" else 1
    if not owns_process(state):
        # The PID may belong to anyone now: report and forget the state, never signal it.
        (args.dir / "state.json").unlink()
        print(f"stale state in {args.dir}: pid {state.pid} is not the virtual card this directory started "
              "(it stopped, the machine rebooted, or the state predates start-time checks); state removed, "
              "nothing signalled")
        return 0 if args.action == "stop" else 1
    if args.action == "stop":
        stop_group(state.pid)
        (args.dir / "state.json").unlink(missing_ok=True)
        print("virtual card stopped; no process left")
        return 0
    if args.action == "status":
        alive = live_group_members(state.pid)
        print(f"{'running' if alive else 'DEAD'}: reader {state.reader!r}, PCSCLITE_CSOCK_NAME={state.pcsc_socket}, "
              f"profile {state.profile}")
        return 0 if alive else 1
    if args.action == "pristine":
        send_control(Path(state.control_socket), "PRISTINE")
        print("virtual card wiped and applets installed again")
        return 0
    raise SimError(f"unknown action {args.action}")
