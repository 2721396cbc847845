"""The CRL is produced by one job and served as stored: anonymous GETs cost no signature
and no write (before, every GET signed an RSA-3072 CRL in a write transaction, an easy
way to load the CA and queue every payment's commit behind it), and its cRLNumber only
ever increases (RFC 5280 5.2.3), also when several replicas publish at once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cryptography import x509
from sqlalchemy import event, update

from cardshield.server.context import ServerContext
from cardshield.server.clock import utcnow
from cardshield.server.models import Certificate
from cardshield.server.revocation import crl_renewal_due, publish_crl, renew_crl
from cardshield.server.testing.flows import Terminal, call


def _number(der: bytes) -> int:
    return x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_requests_neither_sign_nor_write(ctx, http, monkeypatch):
    first = http.get("/v1/ca/crl").content  # published once (at start-up or by this GET)
    signatures, writes = [], []
    monkeypatch.setattr(ctx.ca, "crl", lambda *a, **k: signatures.append(1))
    event.listen(ctx.db.engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: writes.append(sql)
                 if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")) else None)
    for _ in range(25):
        response = http.get("/v1/ca/crl")
        assert (response.status_code, response.content) == (200, first)
    assert signatures == [] and writes == []


def test_crl_numbers_increase_across_replicas(ctx, settings):
    replicas = [ctx] + [ServerContext.create(settings) for _ in range(2)]  # share only the database
    try:
        def publish(replica: ServerContext) -> int:
            with replica.db.transaction() as s:
                return publish_crl(replica, s).number

        with ThreadPoolExecutor(6) as pool:
            numbers = list(pool.map(publish, replicas * 4))
        assert sorted(numbers) == list(range(min(numbers), min(numbers) + 12))  # no number twice
        latest = renew_crl(replicas[0])
        assert _number(latest) == max(numbers)  # the stored CRL is the last published
    finally:
        for replica in replicas[1:]:
            replica.db.dispose()


def test_a_revocation_publishes_the_crl_in_its_transaction(ctx, http, tokens, make_card, bank):
    before = _number(http.get("/v1/ca/crl").content)
    done = Terminal(http, tokens["terminal"], make_card(), bank=bank).enroll("rita")
    call(http, "POST", "/v1/admin/revocations", tokens["admin"], {"user_id": "rita", "reason": "superseded"})
    der = http.get("/v1/ca/crl").content
    assert x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(
        int(done["certificate_serial"], 16)) is not None
    assert _number(der) > before


def test_a_certificate_revoked_elsewhere_reaches_the_crl_at_the_next_tick(ctx, http, tokens, make_card, bank):
    """A card revoked in the registry, a superseded or abandoned enrollment: revocations
    that do not publish themselves make the timer's read see a count the stored CRL does
    not list, and its job publishes."""
    done = Terminal(http, tokens["terminal"], make_card(), bank=bank).enroll("sara")
    renew_crl(ctx)
    assert not crl_renewal_due(ctx)
    with ctx.db.transaction() as s:  # as registry.revoke_card does, without publishing
        s.execute(update(Certificate).where(Certificate.serial_hex == done["certificate_serial"])
                  .values(status="revoked", revoked_at=utcnow(), revocation_reason="cessation_of_operation"))
    assert crl_renewal_due(ctx)  # what every replica's timer reads once a minute
    der = renew_crl(ctx)  # and then does
    assert x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(
        int(done["certificate_serial"], 16)) is not None
    assert not crl_renewal_due(ctx)
