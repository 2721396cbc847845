"""Compile a personalization script for one card into an offline bundle.

Secrets are resolved here, from the key store, and leave this module only inside
AES-CBC cryptograms (secure_messaging.py). The bundle names secrets, never holds them.
Plain command bytes come from cardshield.protocol (docs/apdu.md).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key, load_pem_public_key

from ..protocol import commands
from ..protocol.command import Command
from ..protocol.constants import APPLET_AID, Algorithm, SlotPolicy
from ..protocol.bank_key import BankKeyType, BankPublicKey, encode_bank_public_key
from . import scp80
from .bundle import Bundle
from .keys import PersoKeySet, check_card_id, diversify
from .keystore import KeyStore
from .script import Script, ScriptError, Step
from .secure_messaging import COUNTER_MAX, apdu_bytes, wrap

#: counters reserved for the attestation certificate's secured parts: a certificate of the
#: card's maximum size (3072 bytes) in 192-byte parts is 16, twice that leaves room to
#: write it again from its first part after an interrupted delivery
ATTESTATION_CERTIFICATE_COUNTERS = 2 * 16
#: steps whose SCP80 export is not offered: they need PC/SC (PIN, response data)
NOT_EXPORTED = ("generate_key", "certificate", "attestation_key", "attestation_certificate")
DEFAULT_TAR = bytes.fromhex("435301")
_ALGORITHM_NAMES = {
    "RSA-2048": Algorithm.RSA_2048,
    "RSA-3072": Algorithm.RSA_3072,
    "RSA-4096": Algorithm.RSA_4096,
    "EC-P256": Algorithm.EC_P256,
}


@dataclass(frozen=True)
class Options:
    card_id: bytes
    first_counter: int = 1
    applet_aid: bytes = APPLET_AID
    scp80_tar: bytes | None = None  # set to also export SCP80 command packets


def _read(path: Path, label: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{label}: cannot read {what} {path}: {exc.strerror}") from None


def server_public_key(path: Path, label: str, key_type: BankKeyType = BankKeyType.RSA_2048) -> BankPublicKey:
    """The bank's request-signing key (8E) from a PEM/DER public key or certificate; it must
    be of the type the script names (RSA-2048 or EC P-256)."""
    raw = _read(path, label, "server key")
    try:
        if b"-----BEGIN CERTIFICATE" in raw:
            key = x509.load_pem_x509_certificate(raw).public_key()
        elif raw.lstrip().startswith(b"-----"):
            key = load_pem_public_key(raw)
        else:
            key = load_der_public_key(raw)
    except ValueError:
        raise ScriptError(f"{label}: {path} is not a PEM/DER public key or certificate") from None
    try:
        found = BankKeyType.of_key(key)
    except ValueError as exc:
        raise ScriptError(f"{label}: {path}: {exc}") from None
    if found is not key_type:
        raise ScriptError(f"{label}: {path} holds an {found.value} key but the step says type {key_type.value}; "
                          f"write `server_key: {{file: {path.name}, type: {found.value}}}` if that key is meant")
    return key


def certificate_der(path: Path, label: str) -> bytes:
    raw = _read(path, label, "certificate")
    try:
        pem = raw.lstrip().startswith(b"-----")
        cert = x509.load_pem_x509_certificate(raw) if pem else x509.load_der_x509_certificate(raw)
    except ValueError:
        raise ScriptError(f"{label}: {path} is not an X.509 certificate (PEM or DER)") from None
    return cert.public_bytes(Encoding.DER)


def _secret_command(build, store: KeyStore, name: str, label: str) -> Command:
    try:
        return build(store.secret(name))
    except ValueError as exc:  # the builder's message never contains the value
        raise ScriptError(f"{label}: secret {name} is not usable: {exc} (value not shown)") from None


def plain_command(script: Script, step: Step, store: KeyStore) -> Command:
    """The plain PERSONALIZE / ISSUE command of a step carried by secure messaging."""
    a = step.args
    if step.action == "set_pin":
        return _secret_command(commands.personalize_pin, store, a["secret"], step.label)
    if step.action == "set_puk":
        return _secret_command(commands.personalize_puk, store, a["secret"], step.label)
    if step.action == "slot_config":
        policy = SlotPolicy(0)
        if a["pin_per_signature"]:
            policy |= SlotPolicy.PIN_PER_SIGNATURE
        if a["server_signed_transactions"]:
            policy |= SlotPolicy.SERVER_SIGNED_REQUESTS
        return commands.personalize_slot(a["slot"], _ALGORITHM_NAMES[a["algorithm"]], policy)
    if step.action == "server_key":
        key = server_public_key(script.resolve(a["file"]), step.label, a["type"])
        return commands.personalize_server_key(encode_bank_public_key(key))
    if step.action == "attestation_key":
        return commands.personalize_attestation_key()
    if step.action == "issue":
        return commands.issue()
    raise AssertionError(step.action)


def _pin_secret_for(script: Script, step: Step) -> str:
    if "pin" in step.args:
        return step.args["pin"]
    return [s for s in script.steps if s.action == "set_pin"][-1].args["secret"]


def compile_script(script: Script, store: KeyStore, options: Options, script_text: str) -> Bundle:
    card_id = check_card_id(options.card_id)
    keys = diversify(store.master_cmac(script.master_key_name), script.key_version, card_id)
    counter = options.first_counter
    steps: list[dict] = []
    exported: list[dict] = []
    for step in script.steps:
        entry = {"index": step.index, "action": step.action, "expect": [f"{sw:04X}" for sw in step.expect]}
        if step.action == "generate_key":
            entry.update(kind="generate_key", slot=step.args["slot"], pin_secret=_pin_secret_for(script, step))
        elif step.action == "certificate":
            der = certificate_der(script.resolve(step.args["file"]), step.label)
            entry.update(kind="certificate", slot=step.args["slot"], der=der.hex().upper(),
                         pin_secret=_pin_secret_for(script, step))
        elif step.action == "attestation_certificate":
            last = counter + ATTESTATION_CERTIFICATE_COUNTERS - 1
            if last > COUNTER_MAX:
                raise ScriptError(f"{step.label}: the 5-byte counter is exhausted")
            entry.update(kind="attestation_certificate", ca=str(script.resolve(step.args["ca"]).resolve()),
                         counter=counter, counter_last=last)
            counter = last + 1
        else:
            if counter > COUNTER_MAX:
                raise ScriptError(f"{step.label}: the 5-byte counter is exhausted")
            plain = plain_command(script, step, store)
            entry.update(kind="secured", counter=counter, apdu=apdu_bytes(wrap(keys, plain, counter)).hex().upper())
            if options.scp80_tar is not None and step.action not in NOT_EXPORTED:
                exported.append(_scp80_entry(keys, options.scp80_tar, step, counter, plain))
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
            "not_exported": [s.index for s in script.steps if s.action in NOT_EXPORTED],
        }
    return Bundle(
        card_id=card_id,
        key_version=script.key_version,
        master_key_name=script.master_key_name,
        applet_aid=options.applet_aid,
        script=script.path.name if script.path else "<text>",
        script_sha256=hashlib.sha256(script_text.encode("utf-8")).hexdigest(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        steps=steps,
        scp80=scp80_doc,
    )


def _scp80_entry(keys: PersoKeySet, tar: bytes, step: Step, counter: int, plain: Command) -> dict:
    """The same command as a TS 102 225 packet whose secured data is the plain C-APDU
    (compact remote command format, TS 102 226 5.1.1)."""
    kid = scp80.key_identifier(keys.version)
    packet = scp80.encode_command(keys.enc, keys.mac, kid, kid, tar, counter, apdu_bytes(plain))
    return {
        "index": step.index,
        "action": step.action,
        "counter": counter,
        "command_packet": packet.packet.hex().upper(),
        "sms_user_data": [s.hex().upper() for s in packet.sms_segments(reference=counter)],
    }
