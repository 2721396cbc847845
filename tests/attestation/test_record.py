"""Card records: what personalization hands the server's registry survives a round trip,
and a malformed or tampered file is refused whole, with the record and field named."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cardshield.attestation.record import (FORMAT, CardRecord, RecordFileError, append_record, dump_records,
                                           load_records)

from .conftest import CARD_ID

WHEN = datetime(2026, 12, 4, 16, 50, tzinfo=timezone.utc)


@pytest.fixture
def record(card_certificate):
    return CardRecord(CARD_ID, card_certificate.public_bytes(Encoding.DER), (1, 0), WHEN, "ab" * 32)


def test_round_trip(record, tmp_path):
    path = tmp_path / "cards.json"
    dump_records([record], path)
    assert load_records(path) == [record]
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT == "cardshield-card-records/1"
    assert doc["records"][0]["card_id"] == "0102030405060708"
    assert doc["records"][0]["attestation_certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_append_adds_and_replaces_a_repersonalized_card(record, attestation_ca, rsa2048, tmp_path):
    path = tmp_path / "cards.json"
    append_record(record, path)
    other_id = bytes.fromhex("1112131415161718")
    other = CardRecord(other_id, attestation_ca.certify_card(other_id, rsa2048[1].public_key(), (1, 0))
                       .public_bytes(Encoding.DER), (1, 0), WHEN, None)
    append_record(other, path)
    again = CardRecord(CARD_ID, attestation_ca.certify_card(CARD_ID, rsa2048[2].public_key(), (1, 1))
                       .public_bytes(Encoding.DER), (1, 1), WHEN, None)
    append_record(again, path)
    assert load_records(path) == [other, again]


def _edited(record, tmp_path, edit) -> str:
    path = tmp_path / "cards.json"
    dump_records([record], path)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(RecordFileError) as info:
        load_records(path)
    return str(info.value)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="cardshield-card-records/2"), "is not a cardshield-card-records/1 file"),
    (lambda d: d["records"][0].pop("card_id"), "field 'card_id' is missing"),
    (lambda d: d["records"][0].update(card_id="0102"), "is not 8-16 bytes of hex"),
    (lambda d: d["records"][0].update(card_id="0A0B0C0D0E0F1011"), "names card 0102030405060708"),
    (lambda d: d["records"][0].update(applet_version="1.0"), "applet_version must be [major, minor]"),
    (lambda d: d["records"][0].update(personalized_at="2026-12-04 16:50"), "with its offset"),
    (lambda d: d["records"][0].update(script_sha256="xyz"), "script_sha256 must be"),
    (lambda d: d["records"][0].update(attestation_certificate="-----BEGIN CERTIFICATE-----\nAAAA\n"),
     "is not a PEM X.509 certificate"),
    (lambda d: d["records"][0].update(extra=1), "unknown field(s) ['extra']"),
    (lambda d: d["records"].append(dict(d["records"][0])), "appears twice"),
])
def test_malformed_files_are_refused_with_the_field_named(record, tmp_path, edit, message):
    assert message in _edited(record, tmp_path, edit)


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "cards.json"
    path.write_text("{")
    with pytest.raises(RecordFileError, match="is not JSON"):
        load_records(path)
    with pytest.raises(RecordFileError, match="cannot read card records"):
        load_records(tmp_path / "absent.json")
