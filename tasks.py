"""Invoke tasks: one per `cardshield` command, generated from the argparse CLI
(tools/cardshield/cli.py) by cardshield.taskrunner, so a new command or option needs no
change here. `./cardshield TASK ARGS...` hands ARGS to the command as typed;
`./cardshield TASK --help` shows them; `./cardshield --list` lists the tasks."""

from cardshield.taskrunner import namespace

ns = namespace()
