"""Client management: an admin registers terminals and merchants (the token is shown
once, only its hash is kept), lists them without secrets, and disables a lost one, whose
token then stops working; every change is audited; only admins may do any of it."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from cardshield.server.models import ApiClient, AuditEvent
from cardshield.server.testing.flows import Bank, FlowError, call
from cardshield.server.tokens import token_digest



def test_register_use_list_and_disable_a_terminal(ctx, http, tokens):
    admin = tokens["admin"]
    code = Bank(http, admin).activation_code("zoe")
    start = {"user_id": "zoe", "activation_code": code}
    created = call(http, "POST", "/v1/admin/clients", admin, {"name": "phone-7", "role": "terminal"})
    assert (created["name"], created["role"], created["disabled_at"]) == ("phone-7", "terminal", None)
    token = created["token"]
    # the new token works for its role at once, and only for its role
    assert call(http, "POST", "/v1/enrollments", token, start)["state"] == "keygen_sent"
    with pytest.raises(FlowError) as refused:
        call(http, "POST", "/v1/payments", token, {"user_id": "zoe", "amount_minor": 1,
                                                   "currency": "EUR", "order_ref": "y"})
    assert refused.value.code == "forbidden"
    # listed without any secret; stored as a hash only
    listed = call(http, "GET", "/v1/admin/clients", admin)["clients"]
    assert {"name": "phone-7", "role": "terminal"}.items() <= next(
        c for c in listed if c["name"] == "phone-7").items()
    assert token not in http.get("/v1/admin/clients", headers={"Authorization": f"Bearer {admin}"}).text
    with ctx.db.transaction() as s:
        assert s.scalar(select(ApiClient.token_sha256).where(ApiClient.name == "phone-7")) == token_digest(token)
    # disabled: refused from now on (this test's server caches no token), and idempotent
    disabled = call(http, "POST", "/v1/admin/clients/phone-7/disable", admin)
    assert disabled["disabled_at"] is not None
    assert call(http, "POST", "/v1/admin/clients/phone-7/disable", admin)["disabled_at"] == disabled["disabled_at"]
    with pytest.raises(FlowError) as gone:
        call(http, "POST", "/v1/enrollments", token, start)
    assert (gone.value.status, gone.value.code) == (401, "unauthorized")
    with ctx.db.transaction() as s:
        audited = s.execute(select(AuditEvent.action, AuditEvent.client_id, AuditEvent.detail)
                            .where(AuditEvent.detail.like("phone-7 %"))).all()
        admin_id = s.scalar(select(ApiClient.id).where(ApiClient.token_sha256 == token_digest(admin)))
    assert sorted((action, by) for action, by, _ in audited) == [("client.create", admin_id),
                                                                 ("client.disable", admin_id)]
    assert all(token not in detail for _, _, detail in audited)


@pytest.mark.parametrize("role", ["terminal", "merchant"])
def test_only_admins_manage_clients(http, tokens, role):
    for method, path, body in (("POST", "/v1/admin/clients", {"name": "x1", "role": "admin"}),
                               ("GET", "/v1/admin/clients", None),
                               ("POST", f"/v1/admin/clients/{role}-x/disable", None)):
        with pytest.raises(FlowError) as refused:
            call(http, method, path, tokens[role], body)
        assert (refused.value.status, refused.value.code) == (403, "forbidden")


@pytest.mark.parametrize("body, status, code", [
    ({"name": "shop-1", "role": "merchant"}, 409, "conflict"),  # taken by the first call
    ({"name": "../x", "role": "merchant"}, 400, "invalid_request"),
    ({"name": "x" * 65, "role": "merchant"}, 400, "invalid_request"),
    ({"name": "ok", "role": "root"}, 400, "invalid_request"),
    ({"name": "ok", "role": "merchant", "token": "mine"}, 400, "invalid_request"),
])
def test_bad_registrations_are_refused_and_write_nothing(ctx, http, tokens, body, status, code):
    call(http, "POST", "/v1/admin/clients", tokens["admin"], {"name": "shop-1", "role": "merchant"})
    with ctx.db.transaction() as s:
        before = len(s.scalars(select(ApiClient.id)).all())
    with pytest.raises(FlowError) as refused:
        call(http, "POST", "/v1/admin/clients", tokens["admin"], body)
    assert (refused.value.status, refused.value.code) == (status, code)
    with ctx.db.transaction() as s:
        assert len(s.scalars(select(ApiClient.id)).all()) == before


def test_disabling_an_unknown_client_is_404(http, tokens):
    with pytest.raises(FlowError) as refused:
        call(http, "POST", "/v1/admin/clients/nobody/disable", tokens["admin"])
    assert (refused.value.status, refused.value.code) == (404, "not_found")
