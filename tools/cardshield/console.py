"""Progress and error output for the command-line tools (stdlib only)."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator


def info(message: str) -> None:
    print(f"[cardshield] {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"[cardshield] WARNING: {message}", file=sys.stderr, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Announce a long step before it starts and say how long it took."""
    info(f"{title} ...")
    started = time.monotonic()
    yield
    info(f"{title}: done in {time.monotonic() - started:.1f} s")
