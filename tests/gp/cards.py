"""Helpers of the GlobalPlatform card tests."""
from __future__ import annotations

from cardshield.gp.keys import resolve_keys
from cardshield.gp.manager import CardManager


def manager_with_test_key(transport, key_version=0, level="mac", warnings=None, **options) -> CardManager:
    """A manager with the 40..4F test key (every virtual ISD profile starts with it)."""
    keys = resolve_keys(test_card=True, key_version=key_version, environ={})
    sink = warnings.append if warnings is not None else (lambda message: None)
    return CardManager(transport, keys, security_level=level, warn=sink, **options)
