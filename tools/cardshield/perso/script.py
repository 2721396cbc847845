"""The personalization script: a YAML file of named steps (docs/personalization.md).

    format: cardshield-perso/1
    issuer_master_key: ISSUER_MK      # key store name of the issuer master key
    key_version: 1                    # version of the card's personalization key set
    steps:
      - set_pin: CARD_PIN             # key store name, never the value
      - set_puk: CARD_PUK
      - slot_config: {slot: 1, algorithm: RSA-2048, pin_per_signature: true,
                      server_signed_transactions: true}
      - server_key: {file: bank-request-key.pem, type: ec-p256}   # or rsa-2048 (PATH alone:
                                      # rsa-2048); the bank's key that signs 8E
      - attestation_key:              # generated on the card; its public key comes back
                                      # under the receipt MAC (docs/attestation.md)
      - attestation_certificate: {ca: attestation-ca}   # certified and written to EF C1 0A
      - issue:
        expect: "9000"                # optional on every step: SW or list of SWs
      - generate_key: {slot: 1}       # ISSUED state only, with the PIN (docs/apdu.md)
      - certificate: {slot: 1, file: card-cert.der}

Parsing only checks form; secrets are resolved by the compiler.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..protocol.bank_key import BankKeyType
from .keystore import KeyStoreError, check_name

BANK_KEY_TYPES = tuple(t.value for t in BankKeyType)

FORMAT = "cardshield-perso/1"
SLOTS = (1, 2)
ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "EC-P256")
#: steps the card accepts only once ISSUED, with the PIN verified (docs/apdu.md)
AFTER_ISSUE = ("generate_key", "certificate")


class ScriptError(UserError, ValueError):
    """The script is malformed; the message names the step and the fix."""


@dataclass(frozen=True)
class Step:
    index: int  # 1-based position in the script
    action: str
    args: dict[str, Any]
    expect: tuple[int, ...] = (0x9000,)

    @property
    def label(self) -> str:
        return f"step {self.index} ({self.action})"


@dataclass(frozen=True)
class Script:
    path: Path | None
    master_key_name: str
    key_version: int
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def resolve(self, relative: str) -> Path:
        """Files named in a script are relative to the script's folder."""
        p = Path(relative)
        return p if p.is_absolute() or self.path is None else self.path.parent / p


def _status_words(value: Any, where: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = str(item).strip().replace(" ", "")
        if len(text) != 4:
            raise ScriptError(f"{where}: expect {item!r} is not a 4-hex-digit status word (quote it: \"6A88\")")
        try:
            out.append(int(text, 16))
        except ValueError:
            raise ScriptError(f"{where}: expect {item!r} is not hexadecimal") from None
    return tuple(out)


def _slot(args: dict, where: str) -> int:
    slot = args.get("slot")
    if slot not in SLOTS:
        raise ScriptError(f"{where}: slot must be one of {SLOTS}, got {slot!r}")
    return slot


def _only_keys(args: dict, allowed: set[str], where: str) -> None:
    unknown = set(args) - allowed
    if unknown:
        raise ScriptError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _secret_name(value: Any, where: str) -> str:
    try:
        return check_name(value)
    except KeyStoreError as exc:
        raise ScriptError(f"{where}: {exc} (give the key store NAME of the secret, never its value)") from None


def _parse_action(action: str, value: Any, where: str) -> dict[str, Any]:
    if action in ("set_pin", "set_puk"):
        return {"secret": _secret_name(value, where)}
    if action == "slot_config":
        if not isinstance(value, dict):
            raise ScriptError(f"{where}: slot_config takes a mapping")
        _only_keys(value, {"slot", "algorithm", "pin_per_signature", "server_signed_transactions"}, where)
        algorithm = value.get("algorithm", "RSA-2048")
        if algorithm not in ALGORITHMS:
            raise ScriptError(f"{where}: algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
        flags = {}
        for flag in ("pin_per_signature", "server_signed_transactions"):
            flags[flag] = value.get(flag, False)
            if not isinstance(flags[flag], bool):
                raise ScriptError(f"{where}: {flag} must be true or false")
        return {"slot": _slot(value, where), "algorithm": algorithm, **flags}
    if action == "server_key":
        # PATH alone is the RSA-2048 key of scripts written before EC bank keys existed
        if isinstance(value, str):
            return {"file": value, "type": BankKeyType.RSA_2048}
        if not isinstance(value, dict) or not isinstance(value.get("file"), str):
            raise ScriptError(f"{where}: server_key takes {{file: PATH, type: {' | '.join(BANK_KEY_TYPES)}}}, "
                              "the bank's request-signing public key (PEM or DER, or a certificate)")
        _only_keys(value, {"file", "type"}, where)
        key_type = value.get("type", BankKeyType.RSA_2048.value)
        if key_type not in BANK_KEY_TYPES:
            raise ScriptError(f"{where}: server_key type must be one of {', '.join(BANK_KEY_TYPES)}, got {key_type!r}")
        return {"file": value["file"], "type": BankKeyType(key_type)}
    if action == "generate_key":
        if not isinstance(value, dict):
            raise ScriptError(f"{where}: generate_key takes {{slot: N}}")
        _only_keys(value, {"slot", "pin"}, where)
        args = {"slot": _slot(value, where)}
        if "pin" in value:
            args["pin"] = _secret_name(value["pin"], where)
        return args
    if action == "certificate":
        if not isinstance(value, dict) or not isinstance(value.get("file"), str):
            raise ScriptError(f"{where}: certificate takes {{slot: N, file: PATH}}")
        _only_keys(value, {"slot", "file", "pin"}, where)
        args = {"slot": _slot(value, where), "file": value["file"]}
        if "pin" in value:
            args["pin"] = _secret_name(value["pin"], where)
        return args
    if action in ("issue", "attestation_key"):
        if value not in (None, {}):
            raise ScriptError(f"{where}: {action} takes no arguments")
        return {}
    if action == "attestation_certificate":
        if not isinstance(value, dict) or not isinstance(value.get("ca"), str):
            raise ScriptError(f"{where}: attestation_certificate takes {{ca: DIR}}, the directory of the "
                              "attestation CA (cardshield attestation-ca init --dir DIR)")
        _only_keys(value, {"ca"}, where)
        return {"ca": value["ca"]}
    raise ScriptError(
        f"{where}: unknown step {action!r}; steps are set_pin, set_puk, slot_config, server_key, "
        "attestation_key, attestation_certificate, generate_key, certificate, issue"
    )


def _parse_step(index: int, item: Any) -> Step:
    where = f"step {index}"
    if not isinstance(item, dict):
        raise ScriptError(f"{where}: each step is a mapping like '- set_pin: CARD_PIN'")
    expect = _status_words(item["expect"], where) if "expect" in item else (0x9000,)
    actions = [k for k in item if k != "expect"]
    if len(actions) != 1:
        raise ScriptError(f"{where}: exactly one action per step, found {actions}")
    action = actions[0]
    return Step(index, action, _parse_action(action, item[action], f"{where} ({action})"), expect)


def parse(text: str, path: Path | None = None) -> Script:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScriptError(f"not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ScriptError("a script is a YAML mapping with format, issuer_master_key, key_version, steps")
    _only_keys(doc, {"format", "issuer_master_key", "key_version", "steps"}, "script")
    if doc.get("format") != FORMAT:
        raise ScriptError(f"format must be {FORMAT!r}, got {doc.get('format')!r}")
    version = doc.get("key_version")
    if not isinstance(version, int) or not 1 <= version <= 255:
        raise ScriptError("key_version must be an integer 1..255 (the version installed in tag C0)")
    master = _secret_name(doc.get("issuer_master_key"), "issuer_master_key")
    items = doc.get("steps")
    if not isinstance(items, list) or not items:
        raise ScriptError("steps must be a non-empty list")
    steps = tuple(_parse_step(i, item) for i, item in enumerate(items, start=1))
    _check_order(steps)
    return Script(path, master, version, steps)


def _check_order(steps: tuple[Step, ...]) -> None:
    """ISSUE is one-way: once, after every personalization step (never half-locked);
    only the PIN-protected ISSUED-state steps may follow it."""
    for once in ("issue", "attestation_key", "attestation_certificate"):
        repeated = [s for s in steps if s.action == once]
        if len(repeated) > 1:
            raise ScriptError(f"{repeated[1].label}: {once} appears more than once")
    issues = [s for s in steps if s.action == "issue"]
    key_steps = [s.index for s in steps if s.action == "attestation_key"]
    for step in steps:
        if step.action == "attestation_certificate" and not (key_steps and key_steps[0] < step.index):
            raise ScriptError(f"{step.label}: needs an attestation_key step before it: it certifies the "
                              "public key that step brings back from the card")
    if issues:
        late = [s for s in steps if s.index > issues[0].index and s.action not in AFTER_ISSUE]
        if late:
            raise ScriptError(f"{late[0].label}: personalization steps must come before issue, which locks the card")
        early = [s for s in steps if s.index < issues[0].index and s.action in AFTER_ISSUE]
        if early:
            raise ScriptError(f"{early[0].label}: the card accepts {early[0].action} only once issued: move it after issue")
    for step in steps:
        if step.action in AFTER_ISSUE and "pin" not in step.args:
            if not any(s.action == "set_pin" for s in steps):
                raise ScriptError(
                    f"{step.label}: needs the PIN; add set_pin to the script "
                    "or name the PIN with {slot: N, ..., pin: NAME}"
                )


def issuance_script(*steps: dict[str, Any], after_issue: tuple[dict[str, Any], ...] = (),
                    issue_expect: str | None = None, master_key_name: str = "ISSUER_MK",
                    key_version: int = 1, pin_name: str = "CARD_PIN", puk_name: str = "CARD_PUK") -> str:
    """The YAML text of the usual issuance script: set_pin, set_puk, `steps` in order,
    issue, then the ISSUED-state `after_issue` steps; e.g.
    issuance_script({"slot_config": {"slot": 1, "algorithm": "RSA-2048"}})."""
    issue: dict[str, Any] = {"issue": None, **({"expect": issue_expect} if issue_expect else {})}
    lines = [f"format: {FORMAT}", f"issuer_master_key: {master_key_name}", f"key_version: {key_version}", "steps:"]
    for step in ({"set_pin": pin_name}, {"set_puk": puk_name}, *steps, issue, *after_issue):
        lines += [("  - " if i == 0 else "    ") + _yaml_entry(key, value) for i, (key, value) in enumerate(step.items())]
    return "\n".join(lines) + "\n"


def _yaml_entry(key: str, value: Any) -> str:
    """`key: value` on one line, the value in YAML flow style (docs/personalization.md's look)."""
    if value is None:
        return f"{key}:"
    flow = yaml.safe_dump(value, default_flow_style=True, width=1 << 16, sort_keys=False)
    return f"{key}: {flow.removesuffix(chr(10) + '...' + chr(10)).strip()}"


def load(path: Path) -> Script:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read script {path}: {exc.strerror}") from None
    return parse(text, path)
