"""Base of the errors whose message tells the user what is wrong and how to fix it.
The CLI prints such an error without a traceback and exits with status 1 (2 is
for usage errors, which argparse reports). Stdlib only."""


class UserError(Exception):
    pass
