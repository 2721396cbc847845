"""Both patent flows through the real relay path: the authentication server in its own
process over HTTP, the relay, the virtual card over PC/SC. The card is issued as a bank's
card is (tests/attested_card.py: secured personalization with an attestation key, its record
in the server's card registry) and the server runs its default settings: enrollment verifies
the card's attestation. Outcomes checked without trusting the server: the certificate chains
to the CA and names the attested card, the payment signature verifies over exactly the
fields the terminal showed."""
from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import NameOID

from cardshield.card.client import CardShield
from cardshield.card.transport import Transport
from cardshield.protocol.transaction import parse_sign_transaction_response, signed_transaction_data
from cardshield.server.settings import DEFAULT_KEY_ON_CARD_POLICY_OID
from cardshield.terminal.display import decode_sign_transaction, transaction_fields
from cardshield.terminal.flows import FlowFailed
from cardshield.terminal.localserver import LocalServer
from cardshield.terminal.server_client import ServerClient
from cardshield.terminal.session import run_flow
from cardshield.terminal.ui import ScriptedInterface

from attested_card import CardIssuer
from perso.instance import PIN

from .tampering import Tamper, insert_card_and_wait, open_with, remove_card_before_keygen

pytestmark = [pytest.mark.card, pytest.mark.virtual_only, pytest.mark.slow]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    return CardIssuer(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="module")
def server(issuer, tmp_path_factory):
    pytest.importorskip("cardshield.server.api", reason="the authentication server is not in this tree")
    # payments too only from attested cards: the strictest bank setting
    with LocalServer(tmp_path_factory.mktemp("server"), attestation_cas=issuer.trust_roots,
                     extra_env={"CARDSHIELD_PAYMENTS_REQUIRE_ATTESTED_CARD": "1"}) as running:
        yield running


def code_for(server, user: str) -> str:
    """The bank creates the user (once) and issues an activation code."""
    try:
        server.add_user(user)
    except Exception:  # created by an earlier test of the module
        pass
    return server.activation_code(user)


@pytest.fixture(scope="module")
def attested_card(issuer, server):
    """Issued with the server's request key and an attestation key; slot 1 needs the bank's
    signature (8E) on every payment request and the PIN for every signature. (virtual_only:
    --reader skips this module.)"""
    with issuer.issued_card(server) as card:
        yield card


@pytest.fixture(scope="module")
def card(attested_card):
    return attested_card.reader


@pytest.fixture(scope="module")
def client(server):
    return ServerClient(server.url, server.terminal_token)


@pytest.fixture(scope="module")
def enrolled(card, client, server):
    ui = ScriptedInterface([PIN])
    events = []
    runner = run_flow("enroll", "alice", server=client, ui=ui, reader=card, on_progress=events.append,
                      activation_code=code_for(server, "alice"))
    return runner, ui, events


def test_enrollment_stores_a_certificate_issued_by_the_ca_for_the_card_key(enrolled, card, server,
                                                                          attested_card):
    runner, ui, events = enrolled
    assert runner.report.state["state"] == "completed"
    # the server verified the card's attestation: the card is bound to alice, the
    # certificate names it and asserts "key generated on the card"
    registered = server.admin_request("GET", f"/v1/admin/cards/{attested_card.card_id_hex}")
    assert registered["bound_user"] == "alice"
    assert [event.step for event in events] == [str(n) for n in range(501, 513)]
    assert len(ui.requests) == 1 and ui.requests[0].pin_needed  # one PIN entry for the enrollment
    ca = x509.load_der_x509_certificate(server.get("/v1/ca/certificate"))
    with Transport(card) as transport:
        shield = CardShield(transport)
        shield.select()
        certificate = x509.load_der_x509_certificate(shield.read_certificate(1))
        certificate.verify_directly_issued_by(ca)
        assert certificate.public_key().public_numbers() == shield.read_public_key(1).public_numbers()
    assert certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == attested_card.card_id_hex
    policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [DEFAULT_KEY_ON_CARD_POLICY_OID]


def test_payment_is_authorized_and_the_signature_verifies_with_the_certificate(enrolled, card, client, server):
    payment = server.create_payment("alice", 2599, "EUR", "order-1001")
    ui = ScriptedInterface([PIN])
    events = []
    runner = run_flow("pay", payment["payment_id"], server=client, ui=ui, reader=card, on_progress=events.append)
    assert runner.report.state["state"] == "authorized"
    # one batch: 601 and 605 arrive together, 604 and 608 are checked together
    assert [event.step for event in events] == ["601", "605", "602", "603", "606", "607", "604", "608"]
    shown = ui.requests[-1].payment
    assert (shown.amount_text, shown.payee, shown.order_ref, shown.server_signed) == (
        "25.99 EUR", "Example Shop", "order-1001", True)
    # Independent check: the card's certificate is the one it referenced (603), it chains to
    # the CA, and the signature verifies over the shown fields.
    with Transport(card) as transport:
        shield = CardShield(transport)
        shield.select()
        der = shield.read_certificate(1)
    assert hashlib.sha256(der).digest() == runner.report.certificate_reference
    certificate = x509.load_der_x509_certificate(der)
    certificate.verify_directly_issued_by(x509.load_der_x509_certificate(server.get("/v1/ca/certificate")))
    signed = parse_sign_transaction_response(runner.report.signature_response)
    fields = transaction_fields(runner.report.signed_command_data)[0].tlvs()
    assert decode_sign_transaction(runner.report.signed_command_data).amount_minor == 2599
    certificate.public_key().verify(signed.signature, signed_transaction_data(fields, signed.counter),
                                    padding.PKCS1v15(), hashes.SHA256())
    assert signed.counter == runner.report.state["card_counter"]


def test_a_tampered_amount_is_refused(enrolled, card, client, server):
    payment = server.create_payment("alice", 1000, "EUR", "order-1002")
    with pytest.raises(FlowFailed) as failure:
        run_flow("pay", payment["payment_id"], server=client, ui=ScriptedInterface([PIN]), reader=card,
                 open_transport=open_with(Tamper))
    # The card checks the bank's signature (8E) over the fields and refuses to sign.
    assert failure.value.code == "card_refused_signature" and "6982" in str(failure.value)
    state = server.merchant_request("GET", f"/v1/payments/{payment['payment_id']}")
    assert state["state"] != "authorized" and state["authorized_at"] is None


def test_wrong_pin_then_cancel_signs_nothing(enrolled, card, client, server):
    payment = server.create_payment("alice", 1500, "EUR", "order-1003")
    ui = ScriptedInterface(["0000"], approve=lambda request: request.tries_left is None)
    with pytest.raises(FlowFailed) as failure:
        run_flow("pay", payment["payment_id"], server=client, ui=ui, reader=card)
    assert failure.value.code == "declined"
    assert [request.tries_left for request in ui.requests] == [None, 2]
    assert server.merchant_request("GET", f"/v1/payments/{payment['payment_id']}")["state"] == "sign_requested"
    with Transport(card) as transport:
        shield = CardShield(transport)
        shield.select()
        shield.verify_pin(PIN)  # restores the try counter for the next tests


def test_card_removed_during_keygen_gives_a_clear_message(card, client, attested_card, server):
    try:
        with pytest.raises(FlowFailed) as failure:
            run_flow("enroll", "bob", server=client, ui=ScriptedInterface([PIN]), reader=card,
                     open_transport=open_with(remove_card_before_keygen(attested_card.stack)),
                     activation_code=code_for(server, "bob"))
        assert failure.value.code == "card_removed"
        assert "removed during the operation" in str(failure.value)
    finally:
        insert_card_and_wait(attested_card.stack, card)


def test_no_server_gives_a_clear_message(card):
    from cardshield.terminal.localserver import free_loopback_port

    client = ServerClient(f"http://127.0.0.1:{free_loopback_port()}", "cst_x")
    with pytest.raises(FlowFailed) as failure:
        run_flow("enroll", "carol", server=client, ui=ScriptedInterface([PIN]), reader=card,
                 activation_code="0000-0000-0000-0000")
    assert failure.value.code == "server_unreachable" and "does not answer" in str(failure.value)


def test_a_reader_that_is_gone_is_named_with_the_readers_present(client):
    with pytest.raises(FlowFailed) as failure:
        run_flow("enroll", "dave", server=client, ui=ScriptedInterface([PIN]), reader="Unplugged Reader 00 00",
                 activation_code="0000-0000-0000-0000")
    assert failure.value.code == "no_card"
    assert "Unplugged Reader 00 00" in str(failure.value) and "CardShield Virtual Reader" in str(failure.value)


def test_a_wrong_activation_code_is_explained_and_enrolls_nothing(card, client, server):
    code_for(server, "erin")
    with pytest.raises(FlowFailed) as failure:
        run_flow("enroll", "erin", server=client, ui=ScriptedInterface([PIN]), reader=card,
                 activation_code="ZZZZ-ZZZZ-ZZZZ-ZZZ0")
    assert failure.value.code == "activation_code_invalid"
    assert "activation code" in str(failure.value) and "ZZZZ" not in str(failure.value)
