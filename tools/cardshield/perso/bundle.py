"""The offline bundle: everything a relay needs to deliver, nothing secret.

JSON, one object (docs/personalization.md, "Bundle"):
    format, card_id, key_version, issuer_master_key (a key store NAME), applet_aid,
    script, script_sha256, created,
    steps: [{index, action, kind, expect, ...}] where kind is
      secured        counter, apdu (84 ...): a wrapped PERSONALIZE / ISSUE
      generate_key   slot, pin_secret: the runner verifies the PIN it resolves itself
      certificate    slot, der: written with PUT DATA (public data)
      attestation_certificate
                     ca, counter, counter_last: the issuer certifies the attestation key an
                     earlier secured attestation_key step returned, then writes the
                     certificate in secured PERSONALIZE P1=06 parts numbered from the
                     reserved counters counter..counter_last (`perso run` with the key
                     store does it; a relay stops there and `perso certify` compiles the
                     parts into the next bundle)
    scp80 (optional): the secured steps as TS 102 225 command packets.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

FORMAT = "cardshield-perso-bundle/1"
KINDS = ("secured", "generate_key", "certificate", "attestation_certificate")


def step_counters(step: dict[str, Any]) -> list[int]:
    """The secure-channel counters a step uses (or reserves)."""
    if step["kind"] == "secured":
        return [step["counter"]]
    if step["kind"] == "attestation_certificate":
        return list(range(step["counter"], step["counter_last"] + 1))
    return []


class BundleError(UserError, ValueError):
    pass


@dataclass
class Bundle:
    card_id: bytes
    key_version: int
    master_key_name: str
    applet_aid: bytes
    script: str
    script_sha256: str
    created: str
    steps: list[dict[str, Any]]
    scp80: dict[str, Any] | None = None

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "card_id": self.card_id.hex().upper(),
            "key_version": self.key_version,
            "issuer_master_key": self.master_key_name,
            "applet_aid": self.applet_aid.hex().upper(),
            "script": self.script,
            "script_sha256": self.script_sha256,
            "created": self.created,
            "steps": self.steps,
        }
        if self.scp80 is not None:
            doc["scp80"] = self.scp80
        return json.dumps(doc, indent=2) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @property
    def secured_counters(self) -> list[int]:
        return [c for s in self.steps for c in step_counters(s)]


def from_json(text: str, origin: str = "bundle") -> Bundle:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{origin} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{origin} is not a {FORMAT} bundle")
    try:
        steps = doc["steps"]
        for step in steps:
            if step.get("kind") not in KINDS:
                raise BundleError(f"{origin}: step {step.get('index')} has unknown kind {step.get('kind')!r}")
        counters = [c for s in steps for c in step_counters(s)]
        if counters != sorted(set(counters)):
            raise BundleError(f"{origin}: secured step counters are not strictly increasing")
        return Bundle(
            card_id=bytes.fromhex(doc["card_id"]),
            key_version=int(doc["key_version"]),
            master_key_name=str(doc["issuer_master_key"]),
            applet_aid=bytes.fromhex(doc["applet_aid"]),
            script=doc["script"],
            script_sha256=doc["script_sha256"],
            created=doc["created"],
            steps=steps,
            scp80=doc.get("scp80"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{origin} is incomplete or malformed: {exc!r}") from None


def load(path: Path) -> Bundle:
    try:
        return from_json(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror}") from None
