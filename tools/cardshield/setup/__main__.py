"""`python -m cardshield.setup`: what ./cardshield runs before every task."""

import sys

from cardshield.setup import SetupError, ensure_all

try:
    ensure_all()
except SetupError as error:
    print(f"[cardshield] setup failed: {error}", file=sys.stderr)
    raise SystemExit(1)
