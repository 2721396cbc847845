"""HTTP/JSON API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Handlers are plain `def`: FastAPI runs them in its threadpool, so RSA and database work
never block the event loop. Every refusal is a 4xx {"error": {"code", "message"}}.
"""
from __future__ import annotations

import logging
from dataclasses import asdict

from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cardshield.protocol.keys import encode_rsa_public_key
from cardshield.web import router as web_pages

from .context import ServerContext
from .enrollment import EnrollmentService, EnrollmentView
from .errors import ApiError
from .payment import PaymentService, PaymentView
from .revocation import current_crl, revoke
from .schemas import (CardResponsesIn, EnrollmentOut, EnrollmentStartIn, ErrorOut, PaymentCreateIn,
                      PaymentOut, RevocationIn, RevocationOut, ServerKeyOut)

log = logging.getLogger("cardshield.server")
ERRORS = {status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 410, 413, 422)}


class BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes with 413, declared or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                return await _send_error(scope, send, ApiError(
                    "body_too_large", f"request bodies are limited to {self.limit} bytes"))
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError("body_too_large", f"request bodies are limited to {self.limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _send_error(scope, send, err: ApiError) -> None:
    response = JSONResponse(err.as_json(), status_code=err.status)
    await response(scope, None, send)


def _enrollment_out(v: EnrollmentView) -> dict:
    out = asdict(v)
    der = out.pop("certificate_der")
    out["certificate_der_hex"] = der.hex() if der else None
    out["certificate_serial"] = v.certificate_serial
    return out


def _payment_out(v: PaymentView) -> dict:
    out = asdict(v)
    out["weaker_signing"] = v.signing_mode == "bare_hash"
    return out


def create_app(ctx: ServerContext) -> FastAPI:
    app = FastAPI(
        title="CardShield authentication server",
        version="1.0",
        description="Certificate enrollment (patent CN101938520A figure 5) and payment "
                    "authorization (figure 6) for keys generated on the card. The server "
                    "composes card APDUs; the terminal relays them and asks for the PIN "
                    "locally. Authenticate with 'Authorization: Bearer <client token>'.",
    )
    enrollments, payments = EnrollmentService(ctx), PaymentService(ctx)
    app.state.ctx = ctx

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError):
        return JSONResponse(err.as_json(), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError):
        errors = err.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            body = ApiError("malformed_json", "the request body is not valid JSON")
        else:
            first = errors[0] if errors else {}
            where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
            body = ApiError("invalid_request", f"{where or 'body'}: {first.get('msg', 'invalid')}")
        out = body.as_json()
        out["error"]["fields"] = [{"field": ".".join(str(p) for p in e.get("loc", ())),
                                   "problem": e.get("msg")} for e in errors[:20]]
        return JSONResponse(out, status_code=body.status)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _db_busy(_request: Request, err: Exception):
        log.warning("database busy: %s", getattr(err, "orig", err))
        return JSONResponse(ApiError("database_busy", "the database is busy; retry").as_json(),
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(IntegrityError)
    async def _conflict(_request: Request, err: IntegrityError):
        # a racing request inserted the same unique value first; the work was rolled back
        log.info("integrity conflict: %s", err.orig)
        return JSONResponse(ApiError("conflict", "a concurrent request changed the same data; "
                                                 "nothing was written, retry").as_json(),
                            status_code=409)

    async def authenticate(authorization: str | None, role: str) -> int:
        # A cached token is resolved on the event loop: a sync dependency would cost a
        # threadpool round trip per request. A cache miss asks the database off the loop.
        identity = ctx.auth.cached_identity(authorization)
        if identity is None:
            identity = await run_in_threadpool(ctx.auth.identify, authorization)
        return ctx.auth.check_role(identity, (role,))

    async def terminal(authorization: str | None = Header(None)) -> int:
        return await authenticate(authorization, "terminal")

    async def merchant(authorization: str | None = Header(None)) -> int:
        return await authenticate(authorization, "merchant")

    async def admin(authorization: str | None = Header(None)) -> int:
        return await authenticate(authorization, "admin")

    # -- public CA material ---------------------------------------------------------------
    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/ca/certificate", tags=["ca"], response_class=Response,
             responses={200: {"content": {"application/pkix-cert": {}}}})
    def ca_certificate():
        return Response(ctx.ca.cert_der, media_type="application/pkix-cert")

    @app.get("/v1/ca/crl", tags=["ca"], response_class=Response,
             responses={200: {"content": {"application/pkix-crl": {}}}})
    def crl():
        return Response(current_crl(ctx), media_type="application/pkix-crl")

    @app.get("/v1/server-key", tags=["ca"], response_model=ServerKeyOut)
    def server_key():
        public = ctx.ca.request_key.public_key()
        return {"public_key_7f49_hex": encode_rsa_public_key(public).hex(),
                "public_key_spki_der_hex": public.public_bytes(
                    serialization.Encoding.DER,
                    serialization.PublicFormat.SubjectPublicKeyInfo).hex()}

    # -- enrollment (figure 5) -------------------------------------------------------------
    @app.post("/v1/enrollments", tags=["enrollment"], response_model=EnrollmentOut,
              status_code=201, responses=ERRORS)
    def start_enrollment(body: EnrollmentStartIn, terminal_id: int = Depends(terminal)):
        """501-502: start; returns SELECT + GENERATE KEY PAIR (PIN at the terminal)."""
        return _enrollment_out(enrollments.start(terminal_id, body.user_id, body.slot,
                                                 body.card_label))

    @app.get("/v1/enrollments/{enrollment_id}", tags=["enrollment"],
             response_model=EnrollmentOut, responses=ERRORS)
    def get_enrollment(enrollment_id: str, terminal_id: int = Depends(terminal)):
        """State and pending batch, to resume an interrupted enrollment."""
        return _enrollment_out(enrollments.get(terminal_id, _id(enrollment_id)))

    @app.post("/v1/enrollments/{enrollment_id}/responses", tags=["enrollment"],
              response_model=EnrollmentOut, responses=ERRORS)
    def enrollment_responses(enrollment_id: str, body: CardResponsesIn,
                             terminal_id: int = Depends(terminal)):
        """506 / 510 / 512: the card's responses to the pending batch."""
        return _enrollment_out(enrollments.post_responses(
            terminal_id, _id(enrollment_id), body.seq, body.decoded()))

    # -- payment (figure 6) ----------------------------------------------------------------
    @app.post("/v1/payments", tags=["payment"], response_model=PaymentOut, status_code=201,
              responses=ERRORS)
    def create_payment(body: PaymentCreateIn, merchant_id: int = Depends(merchant)):
        return _payment_out(payments.create(merchant_id, body.user_id, body.amount_minor,
                                            body.currency, body.payee, body.order_ref,
                                            body.signing_mode))

    @app.get("/v1/payments/{payment_id}", tags=["payment"], response_model=PaymentOut,
             responses=ERRORS)
    def get_payment(payment_id: str, authorization: str | None = Header(None)):
        client_id, role = ctx.auth.identify(authorization)
        return _payment_out(payments.get(client_id, role, _id(payment_id)))

    @app.post("/v1/payments/{payment_id}/terminal", tags=["payment"], response_model=PaymentOut,
              responses=ERRORS)
    def claim_payment(payment_id: str, terminal_id: int = Depends(terminal)):
        """601-602: the terminal takes the payment; returns the read-certificate batch."""
        return _payment_out(payments.claim(terminal_id, _id(payment_id)))

    @app.post("/v1/payments/{payment_id}/responses", tags=["payment"], response_model=PaymentOut,
              responses=ERRORS)
    def payment_responses(payment_id: str, body: CardResponsesIn,
                          terminal_id: int = Depends(terminal)):
        """604 / 608: the certificate read, then the signature."""
        return _payment_out(payments.post_responses(terminal_id, _id(payment_id), body.seq,
                                                    body.decoded()))

    # -- administration ------------------------------------------------------------------
    @app.post("/v1/admin/revocations", tags=["admin"], response_model=RevocationOut,
              responses=ERRORS)
    def revoke_certificates(body: RevocationIn, admin_id: int = Depends(admin)):
        return {"revoked": revoke(ctx, serial_hex=body.serial, user_external_id=body.user_id,
                                  reason=body.reason, client_id=admin_id)}

    app.include_router(web_pages)  # the browser pages (cardshield.web)
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes)
    return app


def _id(value: str) -> str:
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise ApiError("not_found", "identifiers are 32 lowercase hex characters")
    return value
