"""The command line as a user types it: `./cardshield TASK ARGS` reaches the argparse command
with ARGS as typed; exit status 0 success, 1 failure, 2 usage; bad input named without a
traceback; every argparse command is a task without tasks.py declaring it."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cardshield(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "cardshield"), *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.mark.parametrize("argv, usage", [
    (["server", "init", "--help"], "cardshield server init"),
    (["server", "migrate", "--help"], "cardshield server migrate"),
    (["bench", "card", "--help"], "cardshield bench"),
    (["perso", "compile", "card.yaml", "--card-id", "0102030405060708", "--help"], "cardshield perso compile"),
    (["sim", "--stop", "--help"], "cardshield sim"),
    (["install", "--help"], "cardshield gp install"),
])
def test_positional_arguments_and_sub_commands_reach_the_command(argv, usage):
    """The issue's failure: invoke answered "No idea what 'init' is!" for `server init`."""
    result = cardshield(*argv)
    assert result.returncode == 0, result.stderr
    assert usage in result.stdout


def test_task_list_holds_every_command_and_the_shortcuts():
    from cardshield.cli import build_parser
    from cardshield.taskrunner import SHORTCUTS, _commands

    listing = cardshield("--list").stdout
    for name in [*_commands(build_parser()), *SHORTCUTS]:
        assert f"  {name} " in listing, name


def test_a_new_argparse_command_becomes_a_task_without_touching_tasks_py(monkeypatch, capsys):
    """What another area gets by adding its module to cli.AREAS: a task of the same name."""
    from cardshield import cli, taskrunner

    original = cli.build_parser

    def with_new_command() -> argparse.ArgumentParser:
        parser = original()
        subparsers = next(a for a in parser._subparsers._group_actions if isinstance(a, argparse._SubParsersAction))
        new = subparsers.add_parser("example-area", help="a command added by another area")
        new.add_argument("action")
        new.set_defaults(func=lambda args: print(f"ran {args.action}") or 0)
        return parser

    monkeypatch.setattr(cli, "build_parser", with_new_command)
    monkeypatch.setattr(taskrunner, "build_parser", with_new_command)
    from invoke import Context

    task = taskrunner.namespace()["example-area"]
    task(Context(), argv=["issue"])
    assert "ran issue" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        task(Context(), argv=["issue", "--bogus"])
    assert usage.value.code == 2


@pytest.mark.parametrize("argv, message", [
    (["nope"], "no task 'nope'"),
    (["perso"], "the following arguments are required"),
    (["server", "run", "--port", "99999"], "not a TCP port"),
    (["server", "run", "--workers", "0"], "at least 1"),
    (["card", "send", "ZZ"], "'ZZ' is not hex"),
    (["card", "send", "00A4"], "at least CLA INS P1 P2"),
    (["sim", "stop", "--status"], "give one action"),
    (["fuzz", "--cases", "many"], "invalid int value"),
])
def test_usage_errors_exit_2_and_name_the_problem(argv, message):
    result = cardshield(*argv)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_failures_exit_1_with_the_fix_and_no_traceback(tmp_path):
    result = cardshield("build", "--jc-home", str(tmp_path))
    assert result.returncode == 1
    assert "is not a Java Card 3.x SDK" in result.stderr and "Traceback" not in result.stderr
    env = {"PATH": "/usr/bin:/bin", "CARDSHIELD_SERVER_DIR": str(tmp_path / "server")}
    missing = cardshield("server", "clients", env=env)
    assert missing.returncode == 1 and "server init" in missing.stderr and "Traceback" not in missing.stderr


def test_server_run_that_cannot_start_exits_1_not_3_or_0(tmp_path):
    """A taken port: uvicorn logged the reason and exited 3; the command now says it failed (1)."""
    env = {"PATH": "/usr/bin:/bin", "CARDSHIELD_SERVER_DIR": str(tmp_path / "server")}
    assert cardshield("server", "init", env=env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = cardshield("server", "run", "--port", str(taken.getsockname()[1]), env=env)
    assert result.returncode == 1, result.stderr
    assert "did not start" in result.stderr and "Traceback" not in result.stderr


def test_stock_invoke_runs_the_same_tasks():
    """`inv TASK` from .venv loads tasks.py too; arguments go through --argv there."""
    inv = Path(sys.executable).parent / "inv"
    result = subprocess.run([str(inv), "perso", "--argv", "compile", "--argv", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cardshield perso compile" in result.stdout


def test_arguments_after_a_double_dash_reach_the_command():
    """invoke keeps what follows `--` apart (as one joined string); the task must get it as typed,
    e.g. `./cardshield test -- -k EXPR` for pytest."""
    result = cardshield("demo", "--", "--browser")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "unrecognized arguments: -- --browser" in result.stderr
