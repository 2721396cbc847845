"""ASGI entry point: `uvicorn --factory cardshield.server.asgi:create_from_env`.
Each worker process builds its own context from the CARDSHIELD_* environment."""
from __future__ import annotations

from .api import create_app
from .context import ServerContext
from .settings import load_settings


def create_from_env():
    return create_app(ServerContext.create(load_settings()))
