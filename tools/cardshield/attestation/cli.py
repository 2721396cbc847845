"""`cardshield attestation-ca ...`: the issuer's card attestation CA (docs/attestation.md).

    cardshield attestation-ca init --dir DIR [--organization NAME]
    cardshield attestation-ca import --dir DIR --key KEY.pem --certificate CERT.pem
    cardshield attestation-ca show --dir DIR
    cardshield attestation-ca check-card --dir DIR --reader NAME [--out CERT.pem] [--attest SLOT]

The key file is written owner-only (0600) in a 0700 directory; nothing is ever overwritten.
The certificate (DIR/attestation-ca.pem) is public: servers trust it with
`cardshield server trust-attestation-ca`.
"""
from __future__ import annotations

import sys
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

    check = sub.add_parser("check-card", help="read a card's attestation certificate (EF C1 0A), check it chains "
                           "to this CA and names the card; with --attest, verify an ATTEST statement too")
    check.add_argument("--dir", type=Path, required=True)
    check.add_argument("--reader", help="exact PC/SC reader name or index")
    check.add_argument("--applet-aid", help="instance AID of the applet (default: applet/applet.properties)")
    check.add_argument("--out", type=Path, help="write the card's attestation certificate here (PEM)")
    check.add_argument("--attest", type=int, choices=(1, 2), metavar="SLOT",
                       help="also ask the card (ISSUED, key in SLOT) for a statement over a fresh challenge")
    check.set_defaults(func=_check_card)


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


def _check_card(args) -> int:
    """The issuer's quality check of a personalized card, with the server's own verifier."""
    import os
    from datetime import datetime, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..card.client import CardShield
    from ..card.transport import Transport
    from ..perso.cli import _aid
    from ..perso.runner import read_card_state
    from ..protocol import commands
    from ..protocol.attestation import attest_command
    from .verify import AttestationError, card_id_of, check_chain, verify_attestation

    ca = AttestationCA.load(args.dir)
    aid = _aid(args)
    now = datetime.now(timezone.utc)
    with Transport.open(args.reader) as link:
        card_id = read_card_state(link, aid).card_id
        card = CardShield(link, aid=aid)
        der = card.read_attestation_certificate()
        if der is None:
            print("the card has no attestation certificate (EF C1 0A)", file=sys.stderr)
            return 1
        certificate = x509.load_der_x509_certificate(der)
        if args.out:
            args.out.write_bytes(certificate.public_bytes(Encoding.PEM))
            print(f"{args.out}: the card's attestation certificate")
        try:
            check_chain(certificate, [ca.certificate], now)
            named = card_id_of(certificate)
            if named != card_id:
                raise AttestationError("attestation_card_mismatch",
                                       f"the certificate names card {named.hex().upper()}, the card is "
                                       f"{(card_id or b'').hex().upper() or 'unnamed'}")
            print(f"card {named.hex().upper()}: attestation certificate issued by {ca.certificate.subject.rfc4514_string()}, "
                  f"valid until {certificate.not_valid_after_utc:%Y-%m-%d}")
            if args.attest is not None:
                card.select()
                key = card.transmit(commands.read_public_key(args.attest))
                challenge = os.urandom(32)
                answer = card.transmit(attest_command(args.attest, challenge))
                if key.sw != 0x9000 or answer.sw != 0x9000:
                    print(f"READ PUBLIC KEY {key.sw:04X}, ATTEST {answer.sw:04X}: the card must be ISSUED with a "
                          f"key in slot {args.attest}", file=sys.stderr)
                    return 1
                verified = verify_attestation(answer.data, card_certificate=certificate, trust_roots=[ca.certificate],
                                              challenge=challenge, public_key_do=key.data, slot=args.attest, now=now)
                statement = verified.statement
                print(f"statement verified: slot {statement.slot}, algorithm {statement.algorithm:02X}, policy "
                      f"{statement.policy:02X}, applet {statement.applet_version[0]}.{statement.applet_version[1]}, "
                      f"signature counter {statement.counter}")
        except AttestationError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
    return 0
