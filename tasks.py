"""Invoke tasks (`./cardshield TASK`): a thin list; each task is one call into cardshield.
Everything here can be done without invoke as `python -m cardshield ...`."""

from invoke import Exit, task

from cardshield.cli import main


def _cardshield(*argv: str) -> None:
    code = main([*argv])
    if code:
        raise Exit(code=code)


@task
def setup(c):
    """Install what is missing: Debian packages, .venv, Java jars."""
    _cardshield("setup")


@task(help={"jc_home": "Java Card SDK kit directory (default $JC_HOME); without one no CAP is made"})
def build(c, jc_home=None):
    """Compile the applet, check the Java Card subset, convert to CAP with an SDK."""
    _cardshield("build", *(["--jc-home", jc_home] if jc_home else []))


@task(help={"stop": "stop the running virtual card", "status": "is it running?",
            "isd": "security domain profile: plain, gp211, s16, dm, locked, small (docs/install.md)",
            "profile": "card profile: lenient (default), jcop4, sim (tools/cardshield/sim/profiles)"})
def sim(c, stop=False, status=False, isd=None, profile=None):
    """Start the private virtual card (pcscd + vpcd + jcardsim) in the background."""
    _cardshield("sim", "stop" if stop else "status" if status else "start", *(["--isd", isd] if isd else []),
                *(["--profile", profile] if profile else []))


@task
def readers(c):
    """List PC/SC readers."""
    _cardshield("card", "readers")


@task(help={"reader": "exact reader name: run card tests on a real card", "k": "pytest -k expression"})
def test(c, reader=None, k=None):
    """Run all tests (unit tests + the virtual card over PC/SC)."""
    _cardshield("test", *(["--reader", reader] if reader else []), *(["--", "-k", k] if k else []))


@task(help={"target": "compile: SCRIPT; run: BUNDLE or SCRIPT", "card_id": "card identity (hex)",
            "reader": "exact reader name or index", "key_store": "env, file:PATH or hook:MODULE:FUNCTION",
            "counter": "first counter (compile)", "scp80_tar": "also export SCP80 packets for this TAR",
            "output": "bundle file (compile)", "report": "JSON report file (run)",
            "applet_aid": "applet instance AID (default: applet.properties)"})
def perso(c, action, target, card_id=None, reader=None, key_store="env", counter=None, scp80_tar=None,
          output=None, report=None, applet_aid=None):
    """Personalization: `perso compile SCRIPT --card-id ...` or `perso run BUNDLE|SCRIPT --reader ...`."""
    options = {"--card-id": card_id, "--reader": reader, "--counter": counter, "--scp80-tar": scp80_tar,
               "--output": output, "--report": report, "--applet-aid": applet_aid}
    extra = [item for name, value in options.items() if value is not None for item in (name, str(value))]
    _cardshield("perso", action, target, "--key-store", key_store, *extra)


@task(help={"browser": "then serve the pages and the agent for a person (set CARDSHIELD_DEMO_PIN)"})
def demo(c, browser=False):
    """Build, start the virtual card, install, personalize, enroll and pay, verify the signature."""
    _cardshield("demo", *(["--browser"] if browser else []))


_GP_HELP = {"reader": "exact reader name or index", "test_card": "allow the 40..4F test key",
            "key_file": "chmod-600 key file (or CARDSHIELD_GP_KEY*)"}


def _gp(action, reader, test_card, key_file, *extra):
    _cardshield("gp", action, *(["--reader", reader] if reader else []), *(["--test-card"] if test_card else []),
                *(["--key-file", key_file] if key_file else []), *extra)


@task(help={**_GP_HELP, "force": "delete the installed applet first (its data is lost)", "cap": "CAP file"})
def install(c, reader=None, test_card=False, key_file=None, force=False, cap=None):
    """Install the applet with GlobalPlatform (build/cardshield.cap, else the virtual card's dev load file)."""
    _gp("install", reader, test_card, key_file, *(["--force"] if force else []), *(["--cap", cap] if cap else []))


@task(help=_GP_HELP)
def uninstall(c, reader=None, test_card=False, key_file=None):
    """Delete the applet and its package from the card (GlobalPlatform DELETE)."""
    _gp("uninstall", reader, test_card, key_file)


@task(name="list", help=_GP_HELP)
def list_(c, reader=None, test_card=False, key_file=None):
    """List the card's applications and packages (GlobalPlatform GET STATUS)."""
    _gp("list", reader, test_card, key_file)


@task(help={"reader": "exact reader name or index"})
def info(c, reader=None):
    """Card identity without keys: ISD, CPLC, GlobalPlatform version, SCPs, key sets."""
    _cardshield("gp", "info", *(["--reader", reader] if reader else []))


@task(help={"action": "init | migrate | run", "host": "run: bind address", "port": "run: port",
            "workers": "run: uvicorn worker processes"})
def server(c, action="run", host="127.0.0.1", port=8080, workers=1):
    """Authentication server: `server init` (CA + database), `server migrate`, `server run`."""
    extra = ["--host", host, "--port", str(port), "--workers", str(workers)] if action == "run" else []
    _cardshield("server", action, *extra)


@task(help={"cases": "number of cases (default 20000)", "seed": "campaign seed (default: random, printed)",
            "case": "run only this case index (reproduce a failure)",
            "profile": "card profile: lenient (default), jcop4, sim"})
def fuzz(c, cases=20000, seed=None, case=None, profile=None):
    """APDU fuzz campaign on a private virtual card: `fuzz --cases N --seed S [--case I] [--profile P]`."""
    _cardshield("fuzz", "--cases", str(cases), *(["--seed", str(seed)] if seed is not None else []),
                *(["--case", str(case)] if case is not None else []), *(["--profile", profile] if profile else []))


@task(help={"target": "card, server or all (default)"})
def bench(c, target="all"):
    """Benchmarks (not tests) into docs/benchmarks.md: `bench card`, `bench server`, `bench`."""
    if target not in ("all", "card", "server"):
        raise Exit(f"bench: unknown target {target!r}; use card, server or all", code=2)
    if target in ("all", "card"):
        _cardshield("bench", "card")
    if target in ("all", "server"):
        _cardshield("server", "bench")


@task(help={"action": "serve (default), enroll or pay", "subject": "user id (enroll) or payment id (pay)",
            "server": "authentication server URL", "reader": "exact reader name or index",
            "port": "agent port on 127.0.0.1 (serve)"})
def terminal(c, action="serve", subject=None, server=None, reader=None, port=None):
    """Relay agent: `terminal` serves the pages' agent; `terminal -a enroll -s USER`, `-a pay -s PAYMENT`."""
    options = {"--server": server, "--reader": reader, "--port": port if action == "serve" else None}
    extra = [item for name, value in options.items() if value is not None for item in (name, str(value))]
    _cardshield("terminal", action, *([subject] if subject else []), *extra)
