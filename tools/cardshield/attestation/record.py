"""Personalization records: what the issuer hands the server's card registry for each card.

A JSON file (docs/attestation.md, "Card records"):

    {"format": "cardshield-card-records/1",
     "records": [{"card_id": "0102030405060708",
                  "applet_version": [1, 0],
                  "personalized_at": "2026-12-04T16:50:00+00:00",
                  "script_sha256": "9f2c..." or null,
                  "attestation_certificate": "-----BEGIN CERTIFICATE-----\\n..."}]}

Nothing in it is secret. Loading refuses a malformed file as a whole, with a message naming
the record and the field, so that an import never registers half a file.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..errors import UserError
from ..perso.keys import check_card_id
from .verify import AttestationError, card_id_of

FORMAT = "cardshield-card-records/1"
FIELDS = {"card_id", "applet_version", "personalized_at", "script_sha256", "attestation_certificate"}


class RecordFileError(UserError, ValueError):
    """The records file is malformed; the message names the record, the field and the fix."""


@dataclass(frozen=True)
class CardRecord:
    card_id: bytes
    attestation_certificate_der: bytes
    applet_version: tuple[int, int]
    personalized_at: datetime
    script_sha256: str | None

    @property
    def card_id_hex(self) -> str:
        return self.card_id.hex().upper()

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.attestation_certificate_der)

    def to_json(self) -> dict[str, Any]:
        return {
            "card_id": self.card_id_hex,
            "applet_version": list(self.applet_version),
            "personalized_at": self.personalized_at.isoformat(timespec="seconds"),
            "script_sha256": self.script_sha256,
            "attestation_certificate": self.certificate.public_bytes(Encoding.PEM).decode("ascii"),
        }


def _field(entry: dict, name: str, where: str):
    if name not in entry:
        raise RecordFileError(f"{where}: field {name!r} is missing")
    return entry[name]


def _record(entry: Any, where: str) -> CardRecord:
    if not isinstance(entry, dict):
        raise RecordFileError(f"{where}: a record is a JSON object with fields {sorted(FIELDS)}")
    unknown = set(entry) - FIELDS
    if unknown:
        raise RecordFileError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(FIELDS)}")
    text = _field(entry, "card_id", where)
    try:
        card_id = check_card_id(bytes.fromhex(text))
    except (TypeError, ValueError):
        raise RecordFileError(f"{where}: card_id {text!r} is not 8-16 bytes of hex") from None
    where = f"{where} (card {card_id.hex().upper()})"
    version = _field(entry, "applet_version", where)
    if (not isinstance(version, list) or len(version) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in version)):
        raise RecordFileError(f"{where}: applet_version must be [major, minor], each 0..255")
    stamp = _field(entry, "personalized_at", where)
    try:
        personalized_at = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        personalized_at = None
    if personalized_at is None or personalized_at.tzinfo is None:
        raise RecordFileError(f"{where}: personalized_at must be an ISO 8601 time with its offset, "
                              "such as 2026-12-04T16:50:00+00:00")
    digest = _field(entry, "script_sha256", where)
    if digest is not None and (not isinstance(digest, str) or len(digest) != 64
                               or any(c not in "0123456789abcdef" for c in digest)):
        raise RecordFileError(f"{where}: script_sha256 must be 64 lower-case hex digits or null")
    pem = _field(entry, "attestation_certificate", where)
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (AttributeError, UnicodeError, ValueError):
        raise RecordFileError(f"{where}: attestation_certificate is not a PEM X.509 certificate") from None
    try:
        named = card_id_of(certificate)
    except AttestationError as exc:
        raise RecordFileError(f"{where}: {exc.message}") from None
    if named != card_id:
        raise RecordFileError(f"{where}: the attestation certificate names card {named.hex().upper()}")
    return CardRecord(card_id, certificate.public_bytes(Encoding.DER), (version[0], version[1]),
                      personalized_at, digest)


def parse_records(text: str, origin: str = "records") -> list[CardRecord]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordFileError(f"{origin} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecordFileError(f"{origin} is not a {FORMAT} file (its \"format\" field must say so)")
    if set(doc) != {"format", "records"} or not isinstance(doc["records"], list):
        raise RecordFileError(f"{origin}: the file holds exactly \"format\" and a \"records\" list")
    records = [_record(entry, f"{origin}: record {index}") for index, entry in enumerate(doc["records"], 1)]
    seen: set[bytes] = set()
    for record in records:
        if record.card_id in seen:
            raise RecordFileError(f"{origin}: card {record.card_id_hex} appears twice")
        seen.add(record.card_id)
    return records


def load_records(path: Path) -> list[CardRecord]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordFileError(f"cannot read card records {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RecordFileError(f"{path} is not UTF-8 JSON") from None
    return parse_records(text, str(path))


def dump_records(records: Iterable[CardRecord], path: Path) -> None:
    """Write the whole file atomically (a crash leaves the old file or the new one)."""
    records = list(records)
    if len({r.card_id for r in records}) != len(records):
        raise RecordFileError("two records for the same card")
    text = json.dumps({"format": FORMAT, "records": [r.to_json() for r in records]}, indent=2) + "\n"
    path = Path(path)
    parse_records(text, str(path))  # never write a file the registry would refuse
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def append_record(record: CardRecord, path: Path) -> None:
    """Add a card's record to a records file (created if absent). A card personalized again
    replaces its earlier record: its old attestation key no longer exists."""
    path = Path(path)
    existing = load_records(path) if path.exists() else []
    dump_records([r for r in existing if r.card_id != record.card_id] + [record], path)
