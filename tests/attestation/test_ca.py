"""The attestation CA: created, imported and loaded safely; its certificates and the cards'
pass `openssl verify` and pkilint's RFC 5280 linters."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cardshield.attestation.ca import OID_APPLET_VERSION, AttestationCA
from cardshield.attestation.verify import card_id_of
from cardshield.pki import CaSetupError, pem_private

from .conftest import CARD_ID


def test_create_writes_an_owner_only_key_and_a_ca_certificate(attestation_ca):
    key_file = AttestationCA.key_path(attestation_ca.directory)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(attestation_ca.directory.stat().st_mode) == 0o700
    loaded = AttestationCA.load(attestation_ca.directory)
    assert loaded.certificate == attestation_ca.certificate
    assert loaded.key.key_size == 3072
    assert loaded.organization == "Example Bank"
    assert attestation_ca.certificate.subject.rfc4514_string() == "CN=Example Bank Card Attestation CA,O=Example Bank"


def test_create_never_overwrites(attestation_ca):
    before = AttestationCA.key_path(attestation_ca.directory).read_bytes()
    with pytest.raises(CaSetupError, match="already exists"):
        AttestationCA.create(attestation_ca.directory, "Other")
    assert AttestationCA.key_path(attestation_ca.directory).read_bytes() == before


def test_load_refuses_a_key_readable_by_others(attestation_ca, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(attestation_ca.directory, copy)
    os.chmod(AttestationCA.key_path(copy), 0o644)
    with pytest.raises(CaSetupError, match="chmod 600"):
        AttestationCA.load(copy)


def test_load_of_an_empty_directory_says_how_to_create_one(tmp_path):
    with pytest.raises(CaSetupError, match="attestation-ca init --dir"):
        AttestationCA.load(tmp_path)


def test_import_round_trip_and_refusals(attestation_ca, tmp_path, rsa2048):
    key_pem = pem_private(attestation_ca.key)
    cert_pem = attestation_ca.certificate.public_bytes(Encoding.PEM)
    imported = AttestationCA.import_(tmp_path / "imported", key_pem, cert_pem)
    assert stat.S_IMODE(AttestationCA.key_path(imported.directory).stat().st_mode) == 0o600
    assert AttestationCA.load(tmp_path / "imported").certificate == attestation_ca.certificate
    with pytest.raises(CaSetupError, match="does not match"):
        AttestationCA.import_(tmp_path / "mismatch", pem_private(rsa2048[0]), cert_pem)
    with pytest.raises(CaSetupError, match="not a PEM private key"):
        AttestationCA.import_(tmp_path / "garbage", b"not a key", cert_pem)
    assert not (tmp_path / "mismatch").exists() and not (tmp_path / "garbage").exists()


def test_card_certificate_profile(attestation_ca, card, card_certificate):
    cert = card_certificate
    assert card_id_of(cert) == CARD_ID
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CardShield card 0102030405060708"
    assert cert.issuer == attestation_ca.certificate.subject
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.extensions.get_extension_for_oid(OID_APPLET_VERSION).value.value == bytes.fromhex("3006020101020100")
    assert cert.public_key().public_numbers() == card.attestation_key.public_key().public_numbers()
    assert cert.not_valid_after_utc <= attestation_ca.certificate.not_valid_after_utc


def test_certify_card_refuses_bad_input(attestation_ca, card):
    with pytest.raises(ValueError, match="card id"):
        attestation_ca.certify_card(b"\x01" * 4, card.attestation_key.public_key(), (1, 0))
    with pytest.raises(ValueError, match="applet version"):
        attestation_ca.certify_card(CARD_ID, card.attestation_key.public_key(), (1, 300))


# -- external checkers --------------------------------------------------------------------

def _write(cert: x509.Certificate, path: Path, encoding=Encoding.PEM) -> Path:
    path.write_bytes(cert.public_bytes(encoding))
    return path


def test_card_certificate_verifies_with_openssl(attestation_ca, card_certificate, tmp_path):
    openssl = shutil.which("openssl") or pytest.skip("openssl not installed")
    ca = _write(attestation_ca.certificate, tmp_path / "ca.pem")
    leaf = _write(card_certificate, tmp_path / "card.pem")
    result = subprocess.run([openssl, "verify", "-x509_strict", "-CAfile", str(ca), str(leaf)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stdout + result.stderr


def test_openssl_refuses_a_card_certificate_from_a_lookalike_ca(attestation_ca, card, tmp_path):
    """The check above can fail: same CA name, other key."""
    openssl = shutil.which("openssl") or pytest.skip("openssl not installed")
    lookalike = AttestationCA.create(tmp_path / "lookalike", attestation_ca.organization)
    forged = lookalike.certify_card(CARD_ID, card.attestation_key.public_key(), (1, 0))
    ca = _write(attestation_ca.certificate, tmp_path / "ca.pem")
    result = subprocess.run([openssl, "verify", "-CAfile", str(ca), str(_write(forged, tmp_path / "f.pem"))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def _pkilint(path: Path) -> list[str]:
    from tests.robustness.test_certificate_quality import _lint
    return _lint("lint_pkix_cert", path)


def test_certificates_pass_pkilint_rfc5280(attestation_ca, card_certificate, tmp_path):
    if not (Path(sys.executable).parent / "lint_pkix_cert").exists():
        pytest.skip("pkilint is not installed in this environment")
    findings = {
        "attestation CA": _pkilint(_write(attestation_ca.certificate, tmp_path / "ca.der", Encoding.DER)),
        "card": _pkilint(_write(card_certificate, tmp_path / "card.der", Encoding.DER)),
    }
    assert not any(findings.values()), findings
