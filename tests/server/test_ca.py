"""CA: root and end-entity profile (RFC 5280), key file permissions, import, CRL."""
from __future__ import annotations

import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardshield.server.ca import (EKU_TRANSACTION_SIGNING, CaSetupError, CertificateAuthority,
                                  init_ca)
from cardshield.server.errors import ApiError
from cardshield.server.settings import DEFAULT_KEY_ON_CARD_POLICY_OID, DEFAULT_UNATTESTED_POLICY_OID, Settings


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    settings = Settings(state_dir=tmp_path_factory.mktemp("ca"))
    init_ca(settings)
    return CertificateAuthority.load(settings)


@pytest.fixture(scope="module")
def card_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_root_is_a_ca(authority):
    root = authority.cert
    assert root.version == x509.Version.v3
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    root.verify_directly_issued_by(root)


@pytest.mark.parametrize("slot", [1, 2])
def test_end_entity_profile(authority, card_key, slot):
    issued = authority.issue(card_key.public_key(), user_external_id="alice",
                             card_label="iccid-8901", slot=slot, card_id="A000000001020304",
                             attested=True)
    cert = x509.load_der_x509_certificate(issued.der)
    cert.verify_directly_issued_by(authority.cert)
    assert cert.version == x509.Version.v3
    assert 64 <= cert.serial_number.bit_length() <= 127  # positive, < 20 octets
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "A000000001020304"
    assert cert.public_key().public_numbers() == card_key.public_key().public_numbers()
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert ku.value.content_commitment == (slot == 1)
    assert ku.value.key_encipherment == (slot == 2)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == ([EKU_TRANSACTION_SIGNING] if slot == 1 else [ExtendedKeyUsageOID.CLIENT_AUTH])
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(card_key.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [DEFAULT_KEY_ON_CARD_POLICY_OID]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days <= authority.settings.certificate_validity_days + 1


def test_unattested_key_never_gets_the_key_on_card_policy(authority, card_key):
    cert = x509.load_der_x509_certificate(authority.issue(
        card_key.public_key(), user_external_id="alice", card_label="iccid-8901", slot=1).der)
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [DEFAULT_UNATTESTED_POLICY_OID]
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "iccid-8901"


def test_serials_are_distinct(authority, card_key):
    serials = {authority.issue(card_key.public_key(), user_external_id="u", card_label="c",
                               slot=1).serial for _ in range(20)}
    assert len(serials) == 20


def test_validate_refuses_foreign_and_garbage(authority, card_key, tmp_path):
    other = Settings(state_dir=tmp_path)
    init_ca(other)
    foreign = CertificateAuthority.load(other).issue(
        card_key.public_key(), user_external_id="alice", card_label="c", slot=1)
    with pytest.raises(ApiError) as err:
        authority.validate(foreign.der)
    assert err.value.code == "certificate_untrusted"
    with pytest.raises(ApiError) as err:
        authority.validate(b"\x30\x03\x02\x01\x01")
    assert err.value.code == "certificate_unreadable"
    own = authority.issue(card_key.public_key(), user_external_id="alice", card_label="c", slot=1)
    assert authority.validate(own.der).serial_number == own.serial


def test_loose_key_permissions_refused(tmp_path):
    settings = Settings(state_dir=tmp_path)
    init_ca(settings)
    assert oct(settings.ca_key_path.stat().st_mode & 0o777) == "0o600"
    os.chmod(settings.ca_key_path, 0o644)
    with pytest.raises(CaSetupError, match="chmod 600"):
        CertificateAuthority.load(settings)


def test_import_existing_ca(tmp_path, authority):
    source = Settings(state_dir=tmp_path / "old")
    init_ca(source)
    target = Settings(state_dir=tmp_path / "new")
    init_ca(target, import_key=source.ca_key_path, import_cert=source.ca_cert_path)
    imported = CertificateAuthority.load(target)
    assert imported.cert == CertificateAuthority.load(source).cert
    # a key that does not match the certificate is refused
    mismatch = Settings(state_dir=tmp_path / "bad")
    bad_key = tmp_path / "bad.key.pem"
    shutil.copy(settings_key := authority.settings.ca_key_path, bad_key)
    os.chmod(bad_key, 0o600)
    with pytest.raises(CaSetupError, match="does not match"):
        init_ca(mismatch, import_key=bad_key, import_cert=source.ca_cert_path)
    assert settings_key.exists()


def test_crl_lists_revoked_serials(authority):
    from datetime import datetime
    der = authority.crl([("1234abcd" * 2, datetime(2026, 1, 2, 3, 4, 5), "key_compromise")],
                        number=7, this_update=datetime(2026, 1, 3), next_update=datetime(2026, 1, 4))
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(authority.cert.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    entry = crl.get_revoked_certificate_by_serial_number(int("1234abcd" * 2, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise


@pytest.mark.parametrize("algorithm", [None, 0x01, 0x11])
def test_request_signature_verifies_with_public_half_of_the_cards_type(authority, algorithm):
    from cardshield.protocol.bank_key import BankKeyType, verify_request
    from cardshield.server.bank_signature import card_bank_key_type, sign_for_card

    sig = sign_for_card(authority, algorithm, b"\x81\x01\x05")
    key_type = card_bank_key_type(algorithm)
    assert key_type is (BankKeyType.EC_P256 if algorithm == 0x11 else BankKeyType.RSA_2048)
    assert len(sig) == (256 if key_type is BankKeyType.RSA_2048 else 64)
    assert verify_request(authority.request_keys[key_type].public_key(), b"\x81\x01\x05", sig)
    other = BankKeyType.RSA_2048 if key_type is BankKeyType.EC_P256 else BankKeyType.EC_P256
    assert not verify_request(authority.request_keys[other].public_key(), b"\x81\x01\x05", sig)


def test_cli_init_and_key_permission_check(tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, CARDSHIELD_SERVER_DIR=str(tmp_path), CARDSHIELD_DATABASE_URL="")
    env.pop("DATABASE_URL", None)
    run = lambda *args: subprocess.run([sys.executable, "-m", "cardshield", "server", *args],
                                       env=env, capture_output=True, text=True, timeout=120)
    done = run("init")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ca" / "ca.key.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cardshield.db").exists()
    token = run("client", "shop", "--role", "merchant")
    assert token.returncode == 0 and token.stdout.startswith("cst_")
    taken = run("client", "shop", "--role", "terminal")
    assert taken.returncode == 1 and "exists already" in taken.stderr
    disabled = run("disable-client", "shop")
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    listed = run("clients")
    assert listed.returncode == 0 and "shop" in listed.stdout and "disabled" in listed.stdout
    assert token.stdout.strip() not in listed.stdout
    unknown = run("disable-client", "nobody")
    assert unknown.returncode == 1 and "no client 'nobody'" in unknown.stderr
    os.chmod(tmp_path / "ca" / "ca.key.pem", 0o640)
    refused = run("client", "shop2", "--role", "merchant")
    assert refused.returncode == 1 and "chmod 600" in refused.stderr


def test_a_ca_directory_without_the_ec_request_key_is_completed_by_init(tmp_path):
    """A CA directory from before EC bank keys: the server names the missing file and how
    to add it; `init` then adds the EC key only, overwriting nothing."""
    settings = Settings(state_dir=tmp_path)
    init_ca(settings)
    before = {p: p.read_bytes() for p in (settings.ca_key_path, settings.request_key_path)}
    settings.request_key_ec_path.unlink()
    with pytest.raises(CaSetupError, match="request-signing-ec.key.pem is missing; run `cardshield server init`"):
        CertificateAuthority.load(settings)
    assert init_ca(settings) == [settings.request_key_ec_path]
    assert {p: p.read_bytes() for p in before} == before
    assert settings.request_key_ec_path.stat().st_mode & 0o777 == 0o600
    loaded = CertificateAuthority.load(settings)
    from cardshield.protocol.bank_key import BankKeyType
    assert set(loaded.request_keys) == set(BankKeyType)


def test_a_request_key_file_of_the_wrong_type_is_refused(tmp_path):
    settings = Settings(state_dir=tmp_path)
    init_ca(settings)
    settings.request_key_ec_path.write_bytes(settings.request_key_path.read_bytes())
    with pytest.raises(CaSetupError, match="holds an rsa-2048 key, expected ec-p256"):
        CertificateAuthority.load(settings)


def test_public_url_names_the_crl_and_the_ca_certificate(tmp_path, card_key, authority):
    settings = Settings(state_dir=tmp_path, public_url="https://ca.bank.example/")
    init_ca(settings)
    cert = x509.load_der_x509_certificate(CertificateAuthority.load(settings).issue(
        card_key.public_key(), user_external_id="alice", card_label="c", slot=1).der)
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert not cdp.critical
    assert [name.value for point in cdp.value for name in point.full_name] == [
        "https://ca.bank.example/v1/ca/crl"]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
         "https://ca.bank.example/v1/ca/certificate")]
    # without a public URL (the default) neither extension is written
    plain = x509.load_der_x509_certificate(authority.issue(
        card_key.public_key(), user_external_id="alice", card_label="c", slot=1).der)
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.CRLDistributionPoints)


@pytest.mark.parametrize("url", ["ldap://ca.example", "ca.bank.example", "https://", "https://x/?q=1"])
def test_public_url_must_be_an_http_base_url(tmp_path, url):
    settings = Settings(state_dir=tmp_path, public_url=url)
    init_ca(settings)
    with pytest.raises(CaSetupError, match="CARDSHIELD_PUBLIC_URL"):
        CertificateAuthority.load(settings)
