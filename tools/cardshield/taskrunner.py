"""The invoke tasks, generated from the one argparse CLI (cardshield/cli.py), and the invoke
program that `./cardshield` runs.

Every top-level `cardshield COMMAND` is an invoke task of the same name, plus the short
names in SHORTCUTS. A task declares no options of its own: `./cardshield TASK ARGS...`
hands ARGS unparsed to argparse, so positional arguments, sub-commands and flags are
exactly those of `cardshield TASK --help`, and a new argparse command or option needs no
change in tasks.py. Stock invoke parses task arguments itself and knows only invoke-style
flags, so `inv TASK` (no arguments) works while arguments need `./cardshield` (which is
invoke, with the parse step below) or `inv TASK --argv A --argv B`.

Exit codes: 0 success, 1 failure, 2 usage (argparse's and invoke's parse errors).
"""

from __future__ import annotations

import argparse
import os
import sys

from invoke import Collection, Exit, Program, Task
from invoke.exceptions import ParseError

from cardshield.cli import build_parser, main

# Task name -> the cardshield command it runs (the tasks of the project's first design).
SHORTCUTS = {
    "readers": ("card", "readers"),
    "info": ("gp", "info"),
    "list": ("gp", "list"),
    "install": ("gp", "install"),
    "uninstall": ("gp", "uninstall"),
}
ARGV = "argv"  # the one invoke argument of every generated task: what follows the task name


def _make_task(name: str, command: tuple[str, ...], summary: str) -> Task:
    def run(c, argv=None):
        code = main([*command, *(argv or [])])
        if code:
            raise Exit(code=code)

    run.__doc__ = summary
    run.__name__ = name.replace("-", "_")
    return Task(run, name=name, iterable=[ARGV],
                help={ARGV: f"one argument of `cardshield {' '.join(command)}` (repeatable; "
                            "`./cardshield` passes them without this flag)"})


def _commands(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Top-level sub-command name -> its one-line help."""
    for action in parser._subparsers._group_actions:  # argparse keeps the sub-parsers action here only
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def namespace() -> Collection:
    """One task per cardshield command, and the SHORTCUTS."""
    commands = _commands(build_parser())
    collection = Collection()
    for name, summary in commands.items():
        collection.add_task(_make_task(name, (name,), summary))
    for name, command in SHORTCUTS.items():
        if command[0] in commands and name not in commands:
            collection.add_task(_make_task(name, command, f"the same as `{' '.join(command)}`"))
    return collection


class TaskProgram(Program):
    """invoke with one change: everything after the task name belongs to the task (argparse
    parses it), instead of invoke's per-task flags, which cannot express optional positionals
    or sub-commands. (invoke's Parser(ignore_unknown=True) is no way out: a token that names
    a task, as `install` in `perso install`, still starts that task.)"""

    def parse_tasks(self) -> None:
        tokens = list(self.core.unparsed)
        if not tokens:
            return super().parse_tasks()
        # invoke's core parse stops at the task name and keeps the rest (up to a `--`, whose
        # remainder it joins into one string): take the task's arguments from argv itself.
        raw = self.argv[1:]
        body = raw.index("--") if "--" in raw else len(raw)
        name_index = body - len(tokens)
        name, argv = tokens[0], raw[name_index + 1:]
        try:
            task = self.collection[name]
        except (KeyError, ValueError):
            what = f"unknown option {name!r}" if name.startswith("-") else f"no task {name!r}"
            raise Exit(f"{self.binary}: {what}; `{self.binary} --help` shows the options, `--list` the tasks",
                       code=2) from None
        takes_argv = any(arg.name == ARGV for arg in task.get_arguments())
        self.core.unparsed = [name] if takes_argv else tokens
        try:
            super().parse_tasks()
        except ParseError as error:
            raise Exit(f"{self.binary}: {error}", code=2) from None
        if takes_argv:
            argument = self.tasks[0].args[ARGV]
            for token in argv:
                argument.value = token  # list kind: appends


def run() -> None:
    """`./cardshield ARGS`: the invoke program over tasks.py in the current directory."""
    try:
        TaskProgram(name="CardShield", binary="./cardshield", binary_names=["cardshield"], version="0.1.0").run()
    except BrokenPipeError:  # the reader went away (`./cardshield --list | head`): not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    run()
    sys.exit(0)
