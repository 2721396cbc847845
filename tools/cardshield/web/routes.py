"""HTTP routes of the pages: static HTML/JS/CSS, the page configuration (where the local
agent listens), the demo shop's order endpoint and the status listing."""
from __future__ import annotations

import os
import secrets
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from cardshield.server.errors import ApiError
from cardshield.server.limits import USER_ID_PATTERN
from cardshield.server.models import Certificate, Payment, User
from cardshield.server.payment import PaymentService
from cardshield.terminal.display import format_amount

from .catalog import CATALOG, CURRENCY, SHOP_NAME, order_total

AGENT_URL_ENV = "CARDSHIELD_AGENT_URL"
DEFAULT_AGENT_URL = "ws://127.0.0.1:8765/ws"
MERCHANT_TOKEN_ENV = "CARDSHIELD_WEB_MERCHANT_TOKEN"
PAGES = {"enroll": "enroll.html", "checkout": "checkout.html", "status": "status.html"}
ASSETS = {"site.css": "text/css", "agent.js": "text/javascript", "enroll.js": "text/javascript",
          "checkout.js": "text/javascript", "status.js": "text/javascript"}
# The pages may talk to their own server and to the agent on loopback, nothing else.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self' ws://127.0.0.1:* ws://localhost:*; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


def _static(name: str) -> bytes:
    return resources.files("cardshield.web").joinpath("static", name).read_bytes()


@router.get("/")
def home() -> Response:
    return RedirectResponse("/checkout")


@router.get("/enroll")
@router.get("/checkout")
@router.get("/status")
def page(request: Request) -> Response:
    name = PAGES[request.url.path.strip("/")]
    return Response(_static(name), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/web/static/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise ApiError("not_found", f"no asset {name}")
    return Response(_static(name), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get("/web/config")
def config() -> dict:
    return {"agent_url": os.environ.get(AGENT_URL_ENV, DEFAULT_AGENT_URL), "shop": SHOP_NAME,
            "currency": CURRENCY,
            "catalog": [{"id": item.item_id, "title": item.title, "price_minor": item.price_minor,
                         "price": format_amount(item.price_minor, CURRENCY)} for item in CATALOG.values()]}


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=64)
    quantities: dict[str, int] = Field(max_length=len(CATALOG))


def _merchant(request: Request) -> int:
    token = os.environ.get(MERCHANT_TOKEN_ENV, "")
    if not token:
        raise ApiError("forbidden", f"the shop is not configured: set {MERCHANT_TOKEN_ENV} to a merchant token "
                                    "(`cardshield server client web-shop --role merchant`)")
    return request.app.state.ctx.auth.authenticate(f"Bearer {token}", "merchant")


@router.post("/web/orders", status_code=201)
def create_order(body: OrderIn, request: Request) -> dict:
    """The shop's server prices the basket and asks the bank for a payment (figure 6's
    merchant side); the page then hands the payment id to the card agent."""
    if not USER_ID_PATTERN.fullmatch(body.user_id):
        raise ApiError("invalid_request", "the user id is 1-64 letters, digits and . _ @ -")
    try:
        amount = order_total(body.quantities)
    except ValueError as error:
        raise ApiError("invalid_request", str(error)) from None
    order_ref = "ORD-" + secrets.token_hex(4).upper()
    view = PaymentService(request.app.state.ctx).create(_merchant(request), body.user_id, amount, CURRENCY,
                                                       SHOP_NAME, order_ref, "transaction")
    return {"payment_id": view.payment_id, "order_ref": order_ref, "amount_minor": amount,
            "amount": format_amount(amount, CURRENCY), "payee": SHOP_NAME}


@router.get("/web/payments/{payment_id}")
def payment_state(payment_id: str, request: Request) -> dict:
    view = PaymentService(request.app.state.ctx).get(_merchant(request), "merchant", payment_id)
    return {"payment_id": view.payment_id, "state": view.state, "refusal_code": view.refusal_code,
            "amount": format_amount(view.amount_minor, view.currency), "payee": view.payee,
            "card_counter": view.card_counter}


@router.get("/web/status")
def status(user_id: str, request: Request) -> JSONResponse:
    """The user's certificates and payments, newest first."""
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise ApiError("invalid_request", "the user id is 1-64 letters, digits and . _ @ -")
    with request.app.state.ctx.db.transaction() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        if user is None:
            raise ApiError("unknown_user", f"no user {user_id}: enroll a card first")
        certificates = session.scalars(select(Certificate).where(Certificate.user_id == user.id)
                                       .order_by(Certificate.issued_at.desc()).limit(50)).all()
        payments = session.scalars(select(Payment).where(Payment.user_id == user.id)
                                   .order_by(Payment.created_at.desc()).limit(100)).all()
        body = {
            "user_id": user_id,
            "blocked": user.blocked_at is not None,
            "certificates": [{"serial": c.serial_hex, "slot": c.slot, "status": c.status,
                              "not_before": c.not_before.isoformat() + "Z", "not_after": c.not_after.isoformat() + "Z",
                              "issued_at": c.issued_at.isoformat() + "Z"} for c in certificates],
            "payments": [{"payment_id": p.id, "order_ref": p.order_ref, "payee": p.payee,
                          "amount": format_amount(p.amount_minor, p.currency), "state": p.state,
                          "refusal_code": p.refusal_code, "card_counter": p.card_counter,
                          "created_at": p.created_at.isoformat() + "Z",
                          "authorized_at": p.authorized_at.isoformat() + "Z" if p.authorized_at else None}
                         for p in payments],
        }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
