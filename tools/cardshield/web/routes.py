"""HTTP routes of the pages: static HTML/JS/CSS, the page configuration (where the local
agent listens), the demo shop's order endpoint and the status of what this browser did."""
from __future__ import annotations

import os
import re
import secrets
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from cardshield.server.errors import ApiError
from cardshield.server.limits import USER_ID_PATTERN
from cardshield.server.models import Certificate, Payment, User
from cardshield.server.payment import PaymentService, state_as_read
from cardshield.terminal.display import format_amount

from .catalog import CATALOG, CURRENCY, SHOP_NAME, order_total

AGENT_URL_ENV = "CARDSHIELD_AGENT_URL"
DEFAULT_AGENT_URL = "ws://127.0.0.1:8765/ws"
MERCHANT_TOKEN_ENV = "CARDSHIELD_WEB_MERCHANT_TOKEN"
PAGES = {"enroll": "enroll.html", "checkout": "checkout.html", "status": "status.html"}
ASSETS = {"site.css": "text/css", "agent.js": "text/javascript", "enroll.js": "text/javascript",
          "checkout.js": "text/javascript", "status.js": "text/javascript",
          "remembered.js": "text/javascript"}
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


def _merchant_authorization() -> str:
    token = os.environ.get(MERCHANT_TOKEN_ENV, "")
    if not token:
        raise ApiError("forbidden", f"the shop is not configured: set {MERCHANT_TOKEN_ENV} to a merchant token "
                                    f"(`cardshield server client web-shop --role merchant --display-name '{SHOP_NAME}'`)")
    return f"Bearer {token}"


def _merchant(request: Request) -> int:
    """For the `def` routes (FastAPI's threadpool): the token check may read the database."""
    return request.app.state.ctx.auth.authenticate(_merchant_authorization(), "merchant")


async def _merchant_on_loop(request: Request) -> int:
    """For the `async` routes: from the token cache, or a read (never the writer)."""
    ctx, authorization = request.app.state.ctx, _merchant_authorization()
    identity = await ctx.auth.identify_with(authorization, ctx.payment_store.client_by_token)
    return ctx.auth.check_role(identity, ("merchant",))


@router.post("/web/orders", status_code=201)
async def create_order(body: OrderIn, request: Request) -> dict:
    """The shop's server prices the basket and asks the bank for a payment (figure 6's
    merchant side); the page then hands the payment id to the card agent. The payment is
    created like the API's (the payment service: on SQLite the writer thread's group commit)."""
    if not USER_ID_PATTERN.fullmatch(body.user_id):
        raise ApiError("invalid_request", "the user id is 1-64 letters, digits and . _ @ -")
    try:
        amount = order_total(body.quantities)
    except ValueError as error:
        raise ApiError("invalid_request", str(error)) from None
    order_ref = "ORD-" + secrets.token_hex(4).upper()
    ctx = request.app.state.ctx
    view = await PaymentService(ctx).create(await _merchant_on_loop(request), body.user_id, amount,
                                            CURRENCY, order_ref)
    # the payee is the merchant client's registered display name
    return {"payment_id": view.payment_id, "order_ref": order_ref, "amount_minor": amount,
            "amount": format_amount(amount, CURRENCY), "payee": view.payee}


@router.get("/web/payments/{payment_id}")
async def payment_state(payment_id: str, request: Request) -> dict:
    view = await PaymentService(request.app.state.ctx).get(await _merchant_on_loop(request),
                                                           "merchant", payment_id)
    return {"payment_id": view.payment_id, "state": view.state, "refusal_code": view.refusal_code,
            "amount": format_amount(view.amount_minor, view.currency), "payee": view.payee,
            "card_counter": view.card_counter}


# What the status page may ask about: identifiers only the card holder's own browser holds.
# A payment id is 128 random bits (PaymentService.create), a serial 127 (ca.generate_serial),
# so holding one is the capability to see it; nothing is ever listed by user id, which anyone
# could type. Serials: lowercase hex as issued, at most 20 octets (RFC 5280 4.1.2.2).
STATUS_QUERY = {"payment": re.compile(r"[0-9a-f]{32}"), "serial": re.compile(r"[0-9a-f]{1,40}")}
STATUS_MAX_EACH = 50  # what the page keeps in localStorage (remembered.js)


def _status_query(request: Request) -> dict[str, list[str]]:
    wanted: dict[str, list[str]] = {name: [] for name in STATUS_QUERY}
    for name, value in request.query_params.multi_items():
        if name not in STATUS_QUERY:
            raise ApiError("invalid_request", f"unknown parameter {name!r}: ask for payment=<32 hex digits> "
                                              "and serial=<certificate serial in hex>; nothing is listed by user id")
        if not STATUS_QUERY[name].fullmatch(value):
            raise ApiError("invalid_request", f"{name} {value[:48]!r} is not a {name} "
                                              f"(expected {STATUS_QUERY[name].pattern})")
        wanted[name].append(value)
    for name, values in wanted.items():
        if len(values) > STATUS_MAX_EACH:
            raise ApiError("invalid_request", f"at most {STATUS_MAX_EACH} {name} parameters per request")
        wanted[name] = list(dict.fromkeys(values))
    return wanted


def _iso(moment) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def _payment_status(p: Payment) -> dict:
    """A payment as the API reads it (PaymentService.get, state_as_read)."""
    state, refusal = state_as_read(p.state, p.refusal_code, p.expires_at)
    return {"payment_id": p.id, "order_ref": p.order_ref, "payee": p.payee,
            "amount": format_amount(p.amount_minor, p.currency), "state": state,
            "refusal_code": refusal, "card_counter": p.card_counter,
            "created_at": _iso(p.created_at), "authorized_at": _iso(p.authorized_at)}


@router.get("/web/status")
def status(request: Request) -> JSONResponse:
    """The certificates and payments this browser asks about by serial and payment id,
    newest first; unknown ones are simply absent, so nothing can be enumerated. Payments
    are the shop's own (its merchant client created them)."""
    wanted = _status_query(request)
    merchant_id = _merchant(request) if wanted["payment"] else None
    with request.app.state.ctx.db.read_session() as session:  # a read: never the writer lock
        certificates = session.scalars(select(Certificate).where(Certificate.serial_hex.in_(wanted["serial"]))
                                       .order_by(Certificate.issued_at.desc())).all() if wanted["serial"] else []
        payments = session.scalars(select(Payment).where(Payment.id.in_(wanted["payment"]),
                                                         Payment.merchant_client_id == merchant_id)
                                   .order_by(Payment.created_at.desc())).all() if wanted["payment"] else []
        owners = {c.user_id for c in certificates} | {p.user_id for p in payments}
        blocked = bool(owners) and session.scalar(
            select(func.count()).select_from(User).where(User.id.in_(owners), User.blocked_at.is_not(None))) > 0
        body = {
            "blocked": blocked,
            "certificates": [{"serial": c.serial_hex, "slot": c.slot, "status": c.status,
                              "not_before": _iso(c.not_before), "not_after": _iso(c.not_after),
                              "issued_at": _iso(c.issued_at)} for c in certificates],
            "payments": [_payment_status(p) for p in payments],
        }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
