"""Where personalization secrets come from; scripts only ever name them.

A key store answers two questions, and never logs a value:
  secret(name)      -> str         a PIN, a PUK (digits as text)
  master_cmac(name) -> MasterCmac  AES-CMAC under an issuer master key (keys.py)

Sources, chosen with --key-store SPEC:
  env             (default) environment variable CARDSHIELD_SECRET_<NAME>
  file:PATH       lines "NAME = value"; the file must be a regular file owned by the
                  current user and unreadable by group and others (chmod 600)
  hook:MOD:FUNC   FUNC() imported from module MOD returns any object with the two
                  methods above: the place for a PKCS#11 / HSM binding, where
                  master_cmac runs C_Sign with CKM_AES_CMAC inside the HSM and the
                  master key never leaves it.
Master keys are 32 hex digits (AES-128).
"""
from __future__ import annotations

import importlib
import os
import re
import stat
from pathlib import Path
from typing import Mapping, Protocol

from ..errors import UserError
from .keys import MasterCmac, software_master

ENV_PREFIX = "CARDSHIELD_SECRET_"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class KeyStoreError(UserError):
    """A secret cannot be obtained; the message names it and says how to fix it."""


class KeyStore(Protocol):
    def secret(self, name: str) -> str: ...

    def master_cmac(self, name: str) -> MasterCmac: ...


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeyStoreError(
            f"secret name {name!r} is not valid: use letters, digits and _ (start with a letter)"
        )
    return name


def _master_from_text(name: str, value: str, where: str) -> MasterCmac:
    text = value.strip().replace(" ", "")
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", text):
        raise KeyStoreError(f"master key {name} in {where} must be 32 hex digits (AES-128)")
    return software_master(bytes.fromhex(text))


class MappingKeyStore:
    """Secrets held in a mapping (the env and file stores are built on it)."""

    def __init__(self, values: Mapping[str, str], where: str, how_to_fix: str):
        self._values = dict(values)
        self._where = where
        self._how_to_fix = how_to_fix

    def _get(self, name: str) -> str:
        check_name(name)
        if name not in self._values:
            raise KeyStoreError(
                f"secret {name} not found in {self._where}: {self._how_to_fix.format(name=name)}"
            )
        return self._values[name]

    def secret(self, name: str) -> str:
        return self._get(name)

    def master_cmac(self, name: str) -> MasterCmac:
        return _master_from_text(name, self._get(name), self._where)

    def __repr__(self) -> str:
        return f"<key store {self._where}>"


def env_store(environ: Mapping[str, str] | None = None) -> MappingKeyStore:
    environ = os.environ if environ is None else environ
    values = {k[len(ENV_PREFIX) :]: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    return MappingKeyStore(values, "the environment", f"set {ENV_PREFIX}{{name}}")


def check_private_file(path: Path) -> None:
    """Refuse a secrets file that others could read or replace."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise KeyStoreError(f"key store file {path} does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyStoreError(f"key store {path} must be a regular file (not a link or device)")
    if info.st_uid != os.geteuid():
        raise KeyStoreError(f"key store {path} is not owned by the current user")
    if info.st_mode & 0o077:
        raise KeyStoreError(
            f"key store {path} is accessible to group/others "
            f"(mode {stat.S_IMODE(info.st_mode):03o}): run chmod 600 {path}"
        )


def file_store(path: Path) -> MappingKeyStore:
    check_private_file(path)
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise KeyStoreError(f"{path}:{number}: expected NAME = value")
        values[check_name(name.strip())] = value.strip()
    return MappingKeyStore(values, f"key store file {path}", "add a line {name} = value")


def hook_store(spec: str) -> KeyStore:
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise KeyStoreError("hook key store is hook:MODULE:FUNCTION")
    try:
        factory = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise KeyStoreError(f"key store hook {spec} cannot be loaded: {exc}") from None
    store = factory()
    for method in ("secret", "master_cmac"):
        if not callable(getattr(store, method, None)):
            raise KeyStoreError(f"key store hook {spec} returned an object without {method}()")
    return store


def open_key_store(spec: str | None) -> KeyStore:
    """`env` (default), `file:PATH` or `hook:MODULE:FUNCTION`."""
    if not spec or spec == "env":
        return env_store()
    kind, _, rest = spec.partition(":")
    if kind == "file" and rest:
        return file_store(Path(rest))
    if kind == "hook" and rest:
        return hook_store(rest)
    raise KeyStoreError(f"unknown key store {spec!r}: use env, file:PATH or hook:MODULE:FUNCTION")
