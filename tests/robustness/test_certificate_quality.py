"""Every certificate the CA issues in these flows, its root and its CRL pass pkilint's
RFC 5280 linters with no error, and every issued certificate verifies with
`openssl verify` against the CA."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from cardshield.server.models import Certificate
from cardshield.server.testing.flows import Bank, Terminal, call
from cardshield.server.testing.issuer import load_test_issuer, registered_softcard

BLOCKING = {"FATAL", "ERROR"}


def _lint(tool: str, der_file: Path, *options: str) -> list[str]:
    """pkilint's findings at ERROR or above, as 'severity code' strings."""
    executable = Path(sys.executable).parent / tool
    result = subprocess.run([str(executable), "lint", *options, "-s", "ERROR", "-f", "JSON", "--document-format", "DER",
                             str(der_file)], capture_output=True, text=True, timeout=120)
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise AssertionError(f"{tool} failed on {der_file.name}: {result.stderr or result.stdout}")
    findings = []
    for entry in json.loads(result.stdout).get("results", []):
        for item in entry.get("finding_descriptions", []):
            if item.get("severity") in BLOCKING:
                findings.append(f"{item['severity']} {item['code']} at {entry.get('node_path')}")
    return findings


@pytest.fixture(scope="module")
def issued(server_ctx, server_http, server_tokens, tmp_path_factory):
    """Enroll several users on both slots and revoke one certificate; the CA's output."""
    terminal = server_tokens["terminal"]
    bank = Bank(server_http, server_tokens["admin"])
    issuer = load_test_issuer(server_ctx.settings.state_dir)
    for index in range(3):
        card = registered_softcard(server_ctx, issuer, rsa.generate_private_key(65537, 2048))
        for slot in (1, 2):
            done = Terminal(server_http, terminal, card, bank=bank).enroll(
                f"lint-user-{index}", slot=slot, card_label=f"lint-card-{index}")
            assert done["state"] == "completed"
    with server_ctx.db.transaction() as session:
        rows = session.execute(select(Certificate.serial_hex, Certificate.der)).all()
    call(server_http, "POST", "/v1/admin/revocations", server_tokens["admin"],
         {"serial": rows[0].serial_hex, "reason": "key_compromise"})
    out = tmp_path_factory.mktemp("lint")
    files = []
    for serial, der in rows:
        path = out / f"{serial}.der"
        path.write_bytes(der)
        files.append(path)
    ca = out / "ca.der"
    ca.write_bytes(server_ctx.ca.cert.public_bytes(Encoding.DER))
    (out / "ca.pem").write_bytes(server_ctx.ca.cert.public_bytes(Encoding.PEM))
    crl = out / "crl.der"
    crl.write_bytes(server_http.get("/v1/ca/crl").content)
    return {"certificates": files, "ca": ca, "ca_pem": out / "ca.pem", "crl": crl}


def test_issued_certificates_pass_pkilint_rfc5280(issued):
    assert len(issued["certificates"]) == 6
    with_locations = [x509.load_der_x509_certificate(path.read_bytes()) for path in issued["certificates"]]
    assert all(cert.extensions.get_extension_for_class(x509.CRLDistributionPoints) for cert in with_locations)
    problems = {path.name: _lint("lint_pkix_cert", path) for path in issued["certificates"] + [issued["ca"]]}
    assert not any(problems.values()), problems


def test_crl_passes_pkilint(issued):
    assert _lint("lint_crl", issued["crl"], "-t", "CRL", "-p", "PKIX") == []


def _openssl(*args: str) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    return subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)


def test_issued_certificates_verify_with_openssl(issued):
    for path in issued["certificates"]:
        result = _openssl("verify", "-x509_strict", "-CAfile", str(issued["ca_pem"]), str(_pem(path)))
        assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stdout + result.stderr


def test_revoked_certificate_fails_openssl_crl_check(issued):
    crl_pem = issued["crl"].with_suffix(".pem")
    converted = _openssl("crl", "-inform", "DER", "-in", str(issued["crl"]), "-out", str(crl_pem))
    assert converted.returncode == 0, converted.stderr
    outcomes = []
    for path in issued["certificates"]:
        result = _openssl("verify", "-crl_check", "-CAfile", str(issued["ca_pem"]), "-CRLfile", str(crl_pem),
                          str(_pem(path)))
        outcomes.append("certificate revoked" in result.stdout + result.stderr)
    assert outcomes.count(True) == 1  # exactly the one revoked above; the others verify


def _pem(der_file: Path) -> Path:
    from cryptography import x509

    pem = der_file.with_suffix(".pem")
    pem.write_bytes(x509.load_der_x509_certificate(der_file.read_bytes()).public_bytes(Encoding.PEM))
    return pem


def test_the_lint_check_fails_on_a_certificate_without_authority_key_identifier(tmp_path):
    """The check above can fail: a certificate missing AKI (RFC 5280 4.2.1.1) is an ERROR."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no AKI")])
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some CA")])).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()).public_bytes(Encoding.DER))
    path = tmp_path / "bad.der"
    path.write_bytes(der)
    assert any("authority_key_identifier" in finding for finding in _lint("lint_pkix_cert", path))
