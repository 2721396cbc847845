"""`cardshield attestation-ca`: exit codes 0 / 2, messages without tracebacks, key 0600."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

from cardshield.attestation.ca import AttestationCA
from cardshield.cli import main


def test_init_show_and_refusals(tmp_path, capsys):
    ca_dir = tmp_path / "ca"
    assert main(["attestation-ca", "init", "--dir", str(ca_dir), "--organization", "Example Bank"]) == 0
    assert "CN=Example Bank Card Attestation CA,O=Example Bank" in capsys.readouterr().out
    assert stat.S_IMODE(AttestationCA.key_path(ca_dir).stat().st_mode) == 0o600
    assert main(["attestation-ca", "init", "--dir", str(ca_dir)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["attestation-ca", "show", "--dir", str(ca_dir)]) == 0
    assert AttestationCA.load(ca_dir).fingerprint_sha256 in capsys.readouterr().out
    assert main(["attestation-ca", "show", "--dir", str(tmp_path / "none")]) == 1
    assert "attestation-ca init --dir" in capsys.readouterr().err


def test_import_refuses_a_key_others_can_read(tmp_path, attestation_ca, capsys):
    key = tmp_path / "key.pem"
    key.write_bytes(AttestationCA.key_path(attestation_ca.directory).read_bytes())
    os.chmod(key, 0o644)
    cert = AttestationCA.certificate_path(attestation_ca.directory)
    args = ["attestation-ca", "import", "--dir", str(tmp_path / "imported"), "--key", str(key),
            "--certificate", str(cert)]
    assert main(args) == 1
    assert "chmod 600" in capsys.readouterr().err
    assert not (tmp_path / "imported").exists()
    os.chmod(key, 0o600)
    assert main(args) == 0
    assert AttestationCA.load(tmp_path / "imported").certificate == attestation_ca.certificate


def test_python_dash_m_form_runs_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cardshield", "attestation-ca", "show", "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "is missing" in result.stderr
