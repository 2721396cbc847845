"""The applet's identity, read from applet/applet.properties (the one place for it).

The same file is read by build.xml (Ant `<property file>`) and handed to the virtual
card, so an AID changed there changes everywhere. Validation follows the rules the
Java Card converter and GlobalPlatform enforce, so a misconfiguration is reported
here, naming the key and how to fix it, instead of as a failed INSTALL later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cardshield import paths
from cardshield.errors import UserError


class ConfigError(UserError, ValueError):
    """applet.properties is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class AppletConfig:
    package_name: str
    package_aid: bytes
    package_version: str
    applet_class: str
    applet_aid: bytes
    instance_aid: bytes
    javacard_target: str
    source: Path

    @property
    def applet_class_simple_name(self) -> str:
        return self.applet_class.rsplit(".", 1)[-1]


def read_properties(path: Path) -> dict[str, str]:
    """Parse the subset of java.util.Properties syntax the project uses: key=value lines,
    '#' or '!' comments, blank lines. Continuation lines are refused (Ant and Java would
    read them differently from a naive reader)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; it must define the package and applet AIDs") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\"):
            raise ConfigError(f"{path}:{number}: line continuations are not supported; put the value on one line")
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected key=value, got {raw!r}")
        values[key.strip()] = value.strip()
    return values


_HEX = re.compile(r"^[0-9A-Fa-f]*$")
_JAVA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_aid(value: str, key: str, path: Path) -> bytes:
    """An AID is 5-16 bytes: a 5-byte RID and up to 11 bytes of PIX (ISO 7816-4 8.2.1.2).
    Spaces and colons between hex digits are accepted for readability."""
    compact = value.replace(" ", "").replace(":", "")
    if not compact or not _HEX.match(compact) or len(compact) % 2:
        raise ConfigError(f"{path}: {key}={value!r} is not an even number of hex digits")
    aid = bytes.fromhex(compact)
    if not 5 <= len(aid) <= 16:
        raise ConfigError(f"{path}: {key} is {len(aid)} bytes; an AID is 5 to 16 bytes (5-byte RID + PIX)")
    return aid


def _require(values: dict[str, str], key: str, path: Path) -> str:
    if not values.get(key):
        raise ConfigError(f"{path}: missing {key}=...")
    return values[key]


def load_applet_config(path: Path | None = None) -> AppletConfig:
    path = path or paths.APPLET_PROPERTIES
    values = read_properties(path)
    package_name = _require(values, "package.name", path)
    applet_class = _require(values, "applet.class", path)
    for key, name in (("package.name", package_name), ("applet.class", applet_class)):
        if not _JAVA_NAME.match(name):
            raise ConfigError(f"{path}: {key}={name!r} is not a Java name")
    if applet_class.rsplit(".", 1)[0] != package_name:
        raise ConfigError(
            f"{path}: applet.class {applet_class} is not in package.name {package_name}; "
            "a CAP file holds exactly one package"
        )
    package_aid = parse_aid(_require(values, "package.aid", path), "package.aid", path)
    applet_aid = parse_aid(_require(values, "applet.aid", path), "applet.aid", path)
    instance_aid = parse_aid(values.get("instance.aid") or values["applet.aid"], "instance.aid", path)
    # The converter requires the applet AID to share the package's RID (JCVM spec 6.5).
    if applet_aid[:5] != package_aid[:5]:
        raise ConfigError(
            f"{path}: applet.aid RID {applet_aid[:5].hex().upper()} differs from package.aid RID "
            f"{package_aid[:5].hex().upper()}; the converter refuses that"
        )
    if applet_aid == package_aid:
        raise ConfigError(f"{path}: applet.aid must differ from package.aid")
    version = values.get("package.version", "1.0")
    if not re.match(r"^\d{1,3}\.\d{1,3}$", version):
        raise ConfigError(f"{path}: package.version={version!r}; expected major.minor, e.g. 1.0")
    target = values.get("javacard.version", "3.0.4")
    if target not in ("2.2.2", "3.0.1", "3.0.4", "3.0.5"):
        raise ConfigError(f"{path}: javacard.version={target!r}; expected one of 2.2.2, 3.0.1, 3.0.4, 3.0.5")
    return AppletConfig(
        package_name=package_name,
        package_aid=package_aid,
        package_version=version,
        applet_class=applet_class,
        applet_aid=applet_aid,
        instance_aid=instance_aid,
        javacard_target=target,
        source=path,
    )
