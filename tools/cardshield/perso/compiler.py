"""Compile a personalization script for one card into an offline bundle.

Secrets are resolved here, from the key store, and leave this module only inside
AES-CBC cryptograms (secure_messaging.py). The bundle names secrets, never holds them.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from . import scp80
from .bundle import Bundle
from .keys import PersoKeySet, check_card_id, diversify
from .keystore import KeyStore
from .script import ALGORITHMS, Script, ScriptError, Step
from .secure_messaging import COUNTER_MAX, INS_ISSUE, INS_PERSONALIZE, wrap

# PERSONALIZE P1 values (docs/apdu.md).
P1_SET_PIN, P1_SET_PUK, P1_SLOT_CONFIG, P1_SERVER_KEY = 0x01, 0x02, 0x03, 0x04
POLICY_PIN_PER_SIGNATURE = 0x01
POLICY_SERVER_SIGNED = 0x02
DEFAULT_APPLET_AID = bytes.fromhex("F04341524453484C4401")  # applet/applet.properties
DEFAULT_TAR = bytes.fromhex("435301")


@dataclass(frozen=True)
class Options:
    card_id: bytes
    first_counter: int = 1
    applet_aid: bytes = DEFAULT_APPLET_AID
    scp80_tar: bytes | None = None  # set to also export SCP80 command packets


def _tlv(tag: bytes, value: bytes) -> bytes:
    """BER-TLV with definite length (ISO/IEC 8825-1), as used by the 7F49 template."""
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = b"\x81" + bytes([n])
    else:
        length = b"\x82" + n.to_bytes(2, "big")
    return tag + length + value


def _unsigned(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def server_key_template(path: Path, label: str) -> bytes:
    """7F49 {81 modulus, 82 public exponent} of the server's RSA request-signing key."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{label}: cannot read server key {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN CERTIFICATE" in raw:
            key = x509.load_pem_x509_certificate(raw).public_key()
        elif raw.lstrip().startswith(b"-----"):
            key = load_pem_public_key(raw)
        else:
            key = load_der_public_key(raw)
    except ValueError:
        raise ScriptError(f"{label}: {path} is not a PEM/DER public key or certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ScriptError(f"{label}: the server request-signing key must be RSA")
    numbers = key.public_numbers()
    return _tlv(b"\x7f\x49", _tlv(b"\x81", _unsigned(numbers.n)) + _tlv(b"\x82", _unsigned(numbers.e)))


def _pin_value(store: KeyStore, name: str, label: str, puk: bool) -> bytes:
    value = store.secret(name)
    ok = value.isdigit() and value.isascii() and (len(value) == 8 if puk else 4 <= len(value) <= 12)
    if not ok:
        what = "PUK must be exactly 8 digits" if puk else "PIN must be 4-12 digits"
        raise ScriptError(f"{label}: secret {name} is not usable: {what} (value not shown)")
    return value.encode("ascii")


def _certificate_der(path: Path, label: str) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{label}: cannot read certificate {path}: {exc.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(raw) if raw.lstrip().startswith(b"-----") else x509.load_der_x509_certificate(raw)
    except ValueError:
        raise ScriptError(f"{label}: {path} is not an X.509 certificate (PEM or DER)") from None
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def personalize_command(script: Script, step: Step, store: KeyStore) -> tuple[int, int, int, bytes]:
    """(INS, P1, P2, plain data) of a step carried by secure messaging."""
    a = step.args
    if step.action == "set_pin":
        return INS_PERSONALIZE, P1_SET_PIN, 0, _pin_value(store, a["secret"], step.label, puk=False)
    if step.action == "set_puk":
        return INS_PERSONALIZE, P1_SET_PUK, 0, _pin_value(store, a["secret"], step.label, puk=True)
    if step.action == "slot_config":
        policy = (POLICY_PIN_PER_SIGNATURE if a["pin_per_signature"] else 0) | (
            POLICY_SERVER_SIGNED if a["server_signed_transactions"] else 0
        )
        return INS_PERSONALIZE, P1_SLOT_CONFIG, a["slot"], bytes([ALGORITHMS[a["algorithm"]], policy])
    if step.action == "server_key":
        return INS_PERSONALIZE, P1_SERVER_KEY, 0, server_key_template(script.resolve(a["file"]), step.label)
    if step.action == "issue":
        return INS_ISSUE, 0, 0, b""
    raise AssertionError(step.action)


def plain_apdu(ins: int, p1: int, p2: int, data: bytes) -> bytes:
    """The unprotected C-APDU (class 80), short or extended length (ISO 7816-4 5.1)."""
    header = bytes([0x80, ins, p1, p2])
    if not data:
        return header
    if len(data) <= 255:
        return header + bytes([len(data)]) + data
    return header + b"\x00" + len(data).to_bytes(2, "big") + data


def _expect(step: Step) -> list[str]:
    return [f"{sw:04X}" for sw in step.expect]


def _pin_secret_for(script: Script, step: Step) -> str:
    if "pin" in step.args:
        return step.args["pin"]
    return [s for s in script.steps if s.action == "set_pin" and s.index < step.index][-1].args["secret"]


def compile_script(script: Script, store: KeyStore, options: Options, script_text: str) -> Bundle:
    card_id = check_card_id(options.card_id)
    keys = diversify(store.master_cmac(script.master_key_name), script.key_version, card_id)
    counter = options.first_counter
    steps: list[dict] = []
    exported: list[dict] = []
    for step in script.steps:
        entry = {"index": step.index, "action": step.action, "expect": _expect(step)}
        if step.action == "generate_key":
            entry.update(kind="generate_key", slot=step.args["slot"], pin_secret=_pin_secret_for(script, step))
        elif step.action == "certificate":
            der = _certificate_der(script.resolve(step.args["file"]), step.label)
            entry.update(kind="certificate", slot=step.args["slot"], der=der.hex().upper())
        else:
            if counter > COUNTER_MAX:
                raise ScriptError(f"{step.label}: the 5-byte counter is exhausted")
            ins, p1, p2, data = personalize_command(script, step, store)
            secured = wrap(keys, ins, p1, p2, counter, data)
            entry.update(kind="secured", counter=counter, apdu=secured.apdu().hex().upper())
            if options.scp80_tar is not None:
                exported.append(_scp80_entry(keys, options.scp80_tar, step, counter, ins, p1, p2, data))
            counter += 1
        steps.append(entry)
    scp80_doc = None
    if options.scp80_tar is not None:
        scp80_doc = {
            "tar": options.scp80_tar.hex().upper(),
            "spi": scp80.DEFAULT_SPI.hex().upper(),
            "kic": f"{scp80.key_identifier(keys.version):02X}",
            "kid": f"{scp80.key_identifier(keys.version):02X}",
            "packets": exported,
            "not_exported": [s.index for s in script.steps if s.action in ("generate_key", "certificate")],
        }
    return Bundle(
        card_id=card_id,
        key_version=script.key_version,
        applet_aid=options.applet_aid,
        script=script.path.name if script.path else "<text>",
        script_sha256=hashlib.sha256(script_text.encode("utf-8")).hexdigest(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        steps=steps,
        scp80=scp80_doc,
    )


def _scp80_entry(keys: PersoKeySet, tar: bytes, step: Step, counter: int, ins: int, p1: int, p2: int, data: bytes) -> dict:
    """The same command as a TS 102 225 packet whose secured data is the plain C-APDU
    (compact remote command format, TS 102 226 5.1.1)."""
    apdu = plain_apdu(ins, p1, p2, data)
    kid = scp80.key_identifier(keys.version)
    packet = scp80.encode_command(keys.enc, keys.mac, kid, kid, tar, counter, apdu)
    return {
        "index": step.index,
        "action": step.action,
        "counter": counter,
        "command_packet": packet.packet.hex().upper(),
        "sms_user_data": [s.hex().upper() for s in packet.sms_segments(reference=counter)],
    }
