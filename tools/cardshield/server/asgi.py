"""ASGI entry point: `uvicorn --factory cardshield.server.asgi:create_from_env`.
Each worker process builds its own context from the CARDSHIELD_* environment."""
from __future__ import annotations

import sys

from .api import create_app
from .context import ServerContext
from .settings import load_settings

# The event loop hands every write to another thread (SQLite: the group-commit writer;
# PostgreSQL: a pool thread) and each database call releases the GIL, so the two threads
# trade it many times per request. With CPython's default switch interval (5 ms) a thread
# taking the GIL back waits up to that long behind the other's CPU work (a convoy): the
# writer, which SQLite serializes across processes, then idles. 0.5 ms keeps the hand-overs
# short (measured on 2 cores: enrollment throughput about doubled, docs/benchmarks.md).
GIL_SWITCH_INTERVAL_S = 0.0005


def create_from_env():
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return create_app(ServerContext.create(load_settings()))
