"""`cardshield attestation-ca ...`: the issuer's card attestation CA (docs/attestation.md).

    cardshield attestation-ca init --dir DIR [--organization NAME]
    cardshield attestation-ca import --dir DIR --key KEY.pem --certificate CERT.pem
    cardshield attestation-ca show --dir DIR

The key file is written owner-only (0600) in a 0700 directory; nothing is ever overwritten.
The certificate (DIR/attestation-ca.pem) is public: servers trust it with
`cardshield server trust-attestation-ca`.
"""
from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from ..pki import CaSetupError, check_private_file
from .ca import AttestationCA

DEFAULT_ORGANIZATION = "CardShield Demo Issuer"


def register(subparsers) -> None:
    parser = subparsers.add_parser("attestation-ca", help="the issuer's card attestation CA (docs/attestation.md)")
    sub = parser.add_subparsers(dest="attestation_command", required=True, metavar="ACTION")

    init = sub.add_parser("init", help="create a new attestation CA (RSA-3072 key, self-signed certificate)")
    init.add_argument("--dir", type=Path, required=True, help="directory for the CA (created 0700)")
    init.add_argument("--organization", default=DEFAULT_ORGANIZATION,
                      help=f"issuer name in the CA and card certificates (default: {DEFAULT_ORGANIZATION})")
    init.set_defaults(func=_init)

    imp = sub.add_parser("import", help="install an existing attestation CA key and certificate")
    imp.add_argument("--dir", type=Path, required=True, help="directory for the CA (created 0700)")
    imp.add_argument("--key", type=Path, required=True, help="the CA's private key, unencrypted PEM, mode 0600")
    imp.add_argument("--certificate", type=Path, required=True, help="the CA certificate, PEM")
    imp.set_defaults(func=_import)

    show = sub.add_parser("show", help="print the CA certificate's subject, validity and fingerprint")
    show.add_argument("--dir", type=Path, required=True)
    show.set_defaults(func=_show)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CaSetupError(f"cannot read {what} {path}: {exc.strerror}") from None


def _describe(ca: AttestationCA) -> None:
    cert = ca.certificate
    key = cert.public_key()
    bits = f"RSA-{key.key_size}" if isinstance(key, rsa.RSAPublicKey) else type(key).__name__
    print(f"directory:   {ca.directory}")
    print(f"subject:     {cert.subject.rfc4514_string()}")
    print(f"key:         {bits}")
    print(f"valid:       {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}")
    print(f"SHA-256:     {ca.fingerprint_sha256}")
    print(f"certificate: {AttestationCA.certificate_path(ca.directory)}")


def _init(args) -> int:
    ca = AttestationCA.create(args.dir, args.organization)
    _describe(ca)
    print(f"key:         {AttestationCA.key_path(ca.directory)} (owner only; keep it off the server)")
    return 0


def _import(args) -> int:
    try:
        check_private_file(args.key)
    except FileNotFoundError:
        raise CaSetupError(f"cannot read the CA key {args.key}: no such file") from None
    ca = AttestationCA.import_(args.dir, _read(args.key, "the CA key"), _read(args.certificate, "the CA certificate"))
    _describe(ca)
    return 0


def _show(args) -> int:
    _describe(AttestationCA.load(args.dir))
    return 0
