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


@task
def build(c):
    """Compile the applet and the virtual card host."""
    _cardshield("build")


@task(help={"stop": "stop the running virtual card", "status": "is it running?"})
def sim(c, stop=False, status=False):
    """Start the private virtual card (pcscd + vpcd + jcardsim) in the background."""
    _cardshield("sim", "stop" if stop else "status" if status else "start")


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


@task
def demo(c):
    """Build, start the virtual card and run the main flow as far as it reaches."""
    _cardshield("demo")
