"""Card management keys: where they come from and how they are diversified.

Keys come, in this order, from explicit options, from the environment
(CARDSHIELD_GP_KEY or CARDSHIELD_GP_KEY_ENC/_MAC/_DEK), or from a key file
(CARDSHIELD_GP_KEY_FILE or --key-file) readable by its owner only. The
40..4F test key is used only for a card declared a test card.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from . import crypto
from .errors import GPKeyError

TEST_KEY = bytes(range(0x40, 0x50))  # GPCS default "40..4F" key of test cards

DIVERSIFICATIONS = ("none", "emv", "visa2", "kdf3")
ENV_PREFIX = "CARDSHIELD_GP_KEY"
_KEY_TYPES = {"enc": 1, "mac": 2, "dek": 3}  # diversification key type byte


@dataclass(frozen=True)
class StaticKeys:
    enc: bytes
    mac: bytes
    dek: bytes
    version: int = 0  # 0: let the card use its default key set
    diversification: str = "none"
    source: str = "explicit"  # for messages; never the key bytes

    def __repr__(self) -> str:  # keys never appear in logs or tracebacks
        return (f"StaticKeys(version={self.version:#04x}, diversification={self.diversification},"
                f" source={self.source}, kcv_enc={self.kcv('enc').hex().upper()})")

    __str__ = __repr__

    def kcv(self, which: str, scp: int | None = None) -> bytes:
        key = getattr(self, which)
        if scp == 0x03 or (scp is None and len(key) != 16):
            return crypto.kcv_aes(key)
        return crypto.kcv_des3(key)

    @property
    def is_test_key(self) -> bool:
        return self.enc == self.mac == self.dek == TEST_KEY and self.diversification == "none"

    def for_card(self, kdd: bytes, scp: int) -> "StaticKeys":
        """The card's own keys: diversified from these master keys with its KDD."""
        if self.diversification == "none":
            return self
        derive = {"emv": _emv, "visa2": _visa2, "kdf3": _kdf3}[self.diversification]
        if self.diversification in ("emv", "visa2") and scp != 0x02:
            raise GPKeyError(f"{self.diversification} diversification is for SCP02 (3DES) cards;"
                             f" this card uses SCP{scp:02X}: use --diversification kdf3 or none")
        if self.diversification == "kdf3" and scp != 0x03:
            raise GPKeyError("kdf3 diversification is for SCP03 (AES) cards; this card uses SCP02")
        return replace(self, diversification="none",
                       **{name: derive(getattr(self, name), kdd, kt) for name, kt in _KEY_TYPES.items()})


def _emv(master: bytes, kdd: bytes, key_type: int) -> bytes:
    # EMV CPS 1.1 / GP "EMV CPG 2.1" scheme: KDD bytes 4..9 (the card's serial part)
    part = kdd[4:10]
    return crypto.des3_ecb(master, part + bytes([0xF0, key_type]) + part + bytes([0x0F, key_type]))


def _visa2(master: bytes, kdd: bytes, key_type: int) -> bytes:
    # VISA2: KDD bytes 0..1 and 4..7 (IIN-derived and CSN parts)
    part = kdd[0:2] + kdd[4:8]
    return crypto.des3_ecb(master, part + bytes([0xF0, key_type]) + part + bytes([0x0F, key_type]))


def _kdf3(master: bytes, kdd: bytes, key_type: int) -> bytes:
    # SP 800-108 counter mode, AES-CMAC: counter || 00 00 00 || key type || 00 || KDD,
    # as GlobalPlatformPro's "kdf3" template defines it (PlaintextKeys.kdf_templates)
    out = b""
    counter = 1
    while len(out) < len(master):
        out += crypto.aes_cmac(master, bytes([counter, 0, 0, 0, key_type, 0]) + kdd)
        counter += 1
    return out[:len(master)]


def _hex_key(text: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip().replace(":", "").replace(" ", ""))
    except ValueError:
        raise GPKeyError(f"{what} is not hexadecimal") from None
    if len(key) not in (16, 24, 32):
        raise GPKeyError(f"{what} must be 16, 24 or 32 bytes (32, 48 or 64 hex digits), not {len(key)} bytes")
    return key


def read_key_file(path: Path) -> dict[str, str]:
    """KEY=hex or ENC=/MAC=/DEK=hex lines, optional VERSION= and DIVERSIFICATION=; # comments."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise GPKeyError(f"key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GPKeyError(f"key file {path} is readable by other users (mode {stat.S_IMODE(mode):03o});"
                         f" restrict it with: chmod 600 {path}")
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        name = name.strip().lower()
        if not sep or name not in ("key", "enc", "mac", "dek", "version", "diversification"):
            raise GPKeyError(f"{path}:{number}: expected KEY=, ENC=, MAC=, DEK=, VERSION= or DIVERSIFICATION=")
        values[name] = value.strip()
    return values


def _from_values(values: dict[str, str], source: str) -> StaticKeys | None:
    if not any(values.get(k) for k in ("key", "enc", "mac", "dek")):
        return None
    if values.get("key"):
        if any(values.get(k) for k in ("enc", "mac", "dek")):
            raise GPKeyError(f"{source}: give either one key or ENC/MAC/DEK, not both")
        enc = mac = dek = _hex_key(values["key"], f"{source}: key")
    else:
        missing = [k.upper() for k in ("enc", "mac", "dek") if not values.get(k)]
        if missing:
            raise GPKeyError(f"{source}: {', '.join(missing)} key missing (give all three, or one KEY)")
        enc, mac, dek = (_hex_key(values[k], f"{source}: {k.upper()} key") for k in ("enc", "mac", "dek"))
    version = int(values.get("version") or "0", 0)
    if not 0 <= version <= 0x7F:
        raise GPKeyError(f"{source}: key version must be 0..127 (0x00..0x7F), not {version}")
    div = (values.get("diversification") or "none").lower()
    if div not in DIVERSIFICATIONS:
        raise GPKeyError(f"{source}: diversification must be one of {', '.join(DIVERSIFICATIONS)}")
    return StaticKeys(enc, mac, dek, version, div, source)


def load_key_file(path: Path, version: int | None = None) -> StaticKeys:
    """A key set from a chmod-600 key file (the format of read_key_file), e.g. the new keys of PUT KEY."""
    keys = _from_values(read_key_file(path), f"key file {path}")
    if keys is None:
        raise GPKeyError(f"key file {path} holds no key: give KEY= or ENC=, MAC= and DEK=")
    return replace(keys, version=version) if version is not None else keys


def resolve_keys(*, key: str | None = None, key_enc: str | None = None, key_mac: str | None = None,
                 key_dek: str | None = None, key_file: str | None = None, key_version: int | None = None,
                 diversification: str | None = None, test_card: bool = False,
                 environ: dict[str, str] | None = None) -> StaticKeys:
    """Pick the card keys: options, then environment, then key file, then (test cards only) 40..4F."""
    env = os.environ if environ is None else environ
    candidates = [
        ({"key": key, "enc": key_enc, "mac": key_mac, "dek": key_dek}, "command-line options"),
        ({"key": env.get(ENV_PREFIX), "enc": env.get(ENV_PREFIX + "_ENC"), "mac": env.get(ENV_PREFIX + "_MAC"),
          "dek": env.get(ENV_PREFIX + "_DEK"), "version": env.get(ENV_PREFIX + "_VERSION"),
          "diversification": env.get(ENV_PREFIX + "_DIVERSIFICATION")}, f"environment ({ENV_PREFIX}*)"),
    ]
    file_name = key_file or env.get(ENV_PREFIX + "_FILE")
    if file_name:
        candidates.append((read_key_file(Path(file_name)), f"key file {file_name}"))
    for values, source in candidates:
        keys = _from_values(values, source)
        if keys is not None:
            break
    else:
        if not test_card:
            raise GPKeyError(
                "no card keys given. Pass --key/--key-enc/--key-mac/--key-dek, set CARDSHIELD_GP_KEY"
                " (or _ENC/_MAC/_DEK), or point --key-file/CARDSHIELD_GP_KEY_FILE at a chmod-600 key file."
                " The 40..4F test key is used only with --test-card.")
        keys = StaticKeys(TEST_KEY, TEST_KEY, TEST_KEY, source="test key (declared test card)")
    if key_version is not None:
        keys = replace(keys, version=key_version)
    if diversification is not None:
        if diversification not in DIVERSIFICATIONS:
            raise GPKeyError(f"diversification must be one of {', '.join(DIVERSIFICATIONS)}")
        keys = replace(keys, diversification=diversification)
    if keys.is_test_key and not test_card:
        raise GPKeyError("the 40..4F test key was given for a card not declared a test card;"
                         " add --test-card if this really is a test card")
    return keys
