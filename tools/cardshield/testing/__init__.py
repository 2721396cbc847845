"""`cardshield test`: run the test suite with pytest (same as `./cardshield test`).

Everything the tests need is started here, so the one command runs every test on a fresh
machine: without CARDSHIELD_TEST_POSTGRES_URL a private PostgreSQL cluster
(testing/postgres.py) serves the server tests and is removed afterwards. The virtual card
stack needs nothing here: the tests start private ones in their own namespaces.
"""

from __future__ import annotations

import os
import subprocess
import sys

from cardshield import paths
from cardshield.console import step, warn


def register(subparsers) -> None:
    parser = subparsers.add_parser("test", help="run all tests (virtual card unless --reader)")
    parser.add_argument("--reader", help="run the card tests against this exact reader name instead")
    parser.add_argument("pytest_args", nargs="*",
                        help="extra pytest arguments (after --); naming a part of tests/ runs that part only, "
                             "e.g. `-- tests/applet --card-profile sim`: the applet suite on the SIM-like card")
    parser.set_defaults(func=_run)


def run_tests(reader: str | None = None, extra: list[str] | None = None) -> int:
    from cardshield.testing import postgres

    selection = [] if names_tests(extra or []) else [str(paths.TESTS_DIR)]
    command = [sys.executable, "-m", "pytest", *selection, "-ra"]
    if reader:
        command += ["--reader", reader]
    command += extra or []
    env = dict(os.environ)
    cluster = None
    if not env.get(postgres.URL_ENV):
        try:
            with step("starting a private PostgreSQL for the server tests"):
                cluster = postgres.start()
        except postgres.PostgresError as exc:
            # tests/server/conftest.py then skips the PostgreSQL variants (fails them in CI)
            warn(f"{exc}; the PostgreSQL tests will not run (set {postgres.URL_ENV} to use a server)")
        else:
            env.update(cluster.exports())
    try:
        return subprocess.run(command, cwd=paths.ROOT, env=env).returncode
    finally:
        if cluster:
            postgres.stop(cluster.directory)


def names_tests(pytest_args: list[str]) -> bool:
    """Whether pytest's arguments name test files or directories (tests/applet, a file, or a
    file::test): then those run, not the whole of tests/ beside them."""
    tests = paths.TESTS_DIR.resolve()
    for arg in pytest_args:
        if arg.startswith("-"):
            continue
        path = (paths.ROOT / arg.split("::")[0]).resolve()
        if path.exists() and (path == tests or tests in path.parents):
            return True
    return False


def _run(args) -> int:
    return run_tests(args.reader, args.pytest_args)
