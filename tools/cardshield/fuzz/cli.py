"""`cardshield fuzz --cases N --seed S [--case I] [--profile NAME]`: an APDU fuzz campaign on a
private virtual card (the campaign wipes and rebuilds the card, so never on a real one) of
card profile NAME (tools/cardshield/sim/profiles; default lenient, the fastest)."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from cardshield import paths
from cardshield.sim.profiles import DEFAULT_PROFILE, profile_argument

DEFAULT_CASES = 20000


def register(subparsers) -> None:
    parser = subparsers.add_parser("fuzz", help="seeded APDU fuzz campaign on a private virtual card")
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help=f"number of cases (default {DEFAULT_CASES})")
    parser.add_argument("--seed", type=int, default=None, help="campaign seed (default: random, printed)")
    parser.add_argument("--case", type=int, default=None, help="run only this case index (reproduce a failure)")
    parser.add_argument("--sign-every", type=int, default=250, help="payment check every N cases (default 250)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, metavar="NAME", type=profile_argument,
                        help="card profile: lenient (default), jcop4, sim (docs/virtual-card.md)")
    parser.set_defaults(func=_run)


def run_campaign(cases: int, seed: int, only: int | None = None, sign_every: int = 250, progress=None,
                 profile: str = DEFAULT_PROFILE):
    """Start a private virtual card stack, run the campaign, stop the stack; the Report."""
    from cardshield.card.transport import Transport
    from cardshield.sim.applets import default_applets
    from cardshield.sim.profiles import load_profile
    from cardshield.sim.stack import VirtualCardStack

    from .runner import Campaign

    paths.VAR_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fuzz-", dir=paths.VAR_DIR) as directory:
        with VirtualCardStack(Path(directory), applets=default_applets(load_profile(profile).applet_variant),
                               profile=profile) as stack:
            with Transport(stack.info.reader) as transport:
                campaign = Campaign(transport, stack.pristine, seed, progress=progress, sign_every=sign_every)
                return campaign.run(cases, only)


def _run(args) -> int:
    from .runner import print_progress

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzz: seed {seed}, {args.cases} cases, card profile {args.profile}"
          + (f", only case {args.case}" if args.case is not None else ""))
    report = run_campaign(args.cases, seed, args.case, args.sign_every, print_progress, args.profile)
    print(report.summary())
    for failure in report.failures:
        print(failure.describe(seed, args.cases,
                               None if args.profile == DEFAULT_PROFILE else args.profile))
    return 1 if report.failures else 0
