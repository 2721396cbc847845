"""`cardshield test`: run the test suite with pytest (same as `./cardshield test`)."""

from __future__ import annotations

import subprocess
import sys

from cardshield import paths


def register(subparsers) -> None:
    parser = subparsers.add_parser("test", help="run all tests (virtual card unless --reader)")
    parser.add_argument("--reader", help="run the card tests against this exact reader name instead")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    parser.set_defaults(func=_run)


def run_tests(reader: str | None = None, extra: list[str] | None = None) -> int:
    command = [sys.executable, "-m", "pytest", str(paths.TESTS_DIR), "-ra"]
    if reader:
        command += ["--reader", reader]
    command += extra or []
    return subprocess.run(command, cwd=paths.ROOT).returncode


def _run(args) -> int:
    return run_tests(args.reader, args.pytest_args)
