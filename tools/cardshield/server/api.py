"""HTTP/JSON API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

FastAPI's router serves every route. The payment and enrollment endpoints (the hot paths)
are `async` LeanRoutes: they parse and answer with the same pydantic models the OpenAPI
description is built from, without FastAPI's per-request dependency and response-model
machinery (measured: about 0.08 ms of CPU per request, more than a payment step's database
work), and hand their transaction to Database.run (SQLite: the writer thread that
group-commits it); an enrollment post is checked on a read snapshot first (its CPU: card
answers, proof of possession, attestation, the CA signature) and only its writes go to
Database.run. Every other write (administration) is handed to Database.run the same way;
reads run on a read-only snapshot (Database.read): single rows through run_read, lists as
plain `def` in FastAPI's threadpool. Every refusal is a 4xx {"error": {"code", "message"}}.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import asynccontextmanager
from functools import partial
from typing import Literal, TypeVar

import asyncpg
from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cardshield.protocol.bank_key import BankKeyType, encode_bank_public_key
from cardshield.web import router as web_pages

from .activation import issue_code
from .context import ServerContext
from .enrollment import EnrollmentService, EnrollmentView
from .errors import ApiError
from .payment import PaymentService, PaymentView
from .registry import get_card, import_records, list_cards, parse_import, revoke_card
from .revocation import crl_renewal_due, renew_crl, revoke, stored_crl
from .schemas import (ActivationCodeIn, ActivationCodeOut, CardImportOut, CardRecordsIn,
                      CardResponsesIn, ClientCreatedOut, ClientIn, ClientOut, ClientsOut,
                      EnrollmentOut, EnrollmentStartIn, ErrorOut, PaymentCreateIn, PaymentOut,
                      RegisteredCardOut, RegisteredCardsOut, RevocationIn, RevocationOut,
                      ServerKeyOut, UserIn, UserOut, UsersOut)
from .tokens import disable_client, list_clients, register_client
from .users import create_user, get_user, list_users

log = logging.getLogger("cardshield.server")
ERRORS = {status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 410, 413, 422, 429)}
Model = TypeVar("Model", bound=BaseModel)


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


def _fields(view) -> dict:
    """A view's fields, shallow: dataclasses.asdict deep-copies the batch (costly)."""
    return dict(view.__dict__)


def _enrollment_out(v: EnrollmentView) -> dict:
    out = _fields(v)
    der = out.pop("certificate_der")
    out["certificate_der_hex"] = der.hex() if der else None
    out["certificate_serial"] = v.certificate_serial
    return out


def _user_out(u) -> dict:
    return {**_fields(u), "certificates": [_fields(c) for c in u.certificates]}


def _payment_out(v: PaymentView) -> dict:
    return _fields(v)


# -- the lean path of the payment endpoints ------------------------------------------------
AUTHORIZATION_HEADER = {"name": "authorization", "in": "header", "required": False,
                        "schema": {"type": "string"},
                        "description": "Bearer <client token>"}


def _documented(body: type[BaseModel] | None = None) -> dict:
    """OpenAPI for an endpoint that reads its request itself: the bearer header and the
    JSON body schema of `body` (flat models only: no $defs to relocate)."""
    extra: dict = {"parameters": [AUTHORIZATION_HEADER]}
    if body is not None:
        schema = body.model_json_schema()
        assert "$defs" not in schema, f"{body.__name__} must stay flat to be documented inline"
        extra["requestBody"] = {"required": True,
                                "content": {"application/json": {"schema": schema}}}
    return extra


async def _parsed(request: Request, model: type[Model]) -> Model:
    """The JSON body validated by `model`; errors become the same 400s as FastAPI's."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",),
                                       "msg": "Field required", "input": None}])
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in err.errors(include_url=False)]) from None


def _answer(model: type[BaseModel], payload: dict, status: int = 200) -> Response:
    return Response(model.model_validate(payload).model_dump_json(), status_code=status,
                    media_type="application/json")


class LeanRoute(APIRoute):
    """A FastAPI route whose endpoint takes the Request and returns the Response itself.

    FastAPI's router dispatches it and builds its OpenAPI entry like any other route (the
    body schema and bearer header come from `_documented`, the answer from response_model);
    only the per-request dependency solver and response-model serialization are skipped,
    which cost more CPU than a payment step's database work (docs/benchmarks.md). Errors
    go through the application's exception handlers as for every route."""

    def get_route_handler(self):
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            return await endpoint(request, **request.path_params)

        return handle


CRL_CHECK_SECONDS = 60.0


async def _crl_timer(ctx: ServerContext) -> None:
    """Every replica checks once a minute (a read) whether the CRL is due and renews it
    then (revocation.renew_crl)."""
    while True:  # the first CRL of a new database is published by its first GET
        await asyncio.sleep(CRL_CHECK_SECONDS)
        try:
            if await ctx.db.run_read(crl_renewal_due, ctx):
                await ctx.db.run(renew_crl, ctx)
        except Exception:  # a database restart: try again at the next tick
            log.exception("CRL renewal failed; retrying in %.0f s", CRL_CHECK_SECONDS)


def create_app(ctx: ServerContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        timer = asyncio.create_task(_crl_timer(ctx))
        yield
        timer.cancel()
        await ctx.payment_store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="CardShield authentication server",
        version="1.0",
        description="Certificate enrollment (patent CN101938520A figure 5) and payment "
                    "authorization (figure 6) for keys generated on the card. The server "
                    "composes card APDUs; the terminal relays them and asks for the PIN "
                    "locally. Authenticate with 'Authorization: Bearer <client token>'.",
    )
    enrollments, payments = EnrollmentService(ctx), PaymentService(ctx)
    app.state.ctx = ctx

    async def _api_error(_request: Request, err: ApiError):
        return JSONResponse(err.as_json(), status_code=err.status)

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

    async def _db_busy(_request: Request, err: Exception):
        log.warning("database busy: %s", getattr(err, "orig", err))
        return JSONResponse(ApiError("database_busy", "the database is busy; retry").as_json(),
                            status_code=503, headers={"Retry-After": "1"})

    async def _conflict(_request: Request, err: IntegrityError):
        # a racing request inserted the same unique value first; the work was rolled back
        log.info("integrity conflict: %s", err.orig)
        return JSONResponse(ApiError("conflict", "a concurrent request changed the same data; "
                                                 "nothing was written, retry").as_json(),
                            status_code=409)

    async def _raced(_request: Request, err: Exception):
        # the payment store's drivers: a racing insert of the same unique value
        log.info("integrity conflict: %s", err)
        return JSONResponse(ApiError("conflict", "a concurrent request changed the same data; "
                                                 "nothing was written, retry").as_json(),
                            status_code=409)

    error_handlers = {ApiError: _api_error, RequestValidationError: _invalid,
                      OperationalError: _db_busy, PoolTimeout: _db_busy, IntegrityError: _conflict,
                      # the payment store on PostgreSQL (asyncpg): a database that went away
                      # or restarts is a 503 (nothing was written), a unique race a 409
                      asyncpg.PostgresConnectionError: _db_busy, asyncpg.InterfaceError: _db_busy,
                      asyncpg.InternalClientError: _db_busy,
                      asyncpg.OperatorInterventionError: _db_busy, ConnectionError: _db_busy,
                      asyncpg.SerializationError: _db_busy, asyncpg.DeadlockDetectedError: _db_busy,
                      asyncpg.UniqueViolationError: _raced,
                      # ... and on SQLite (the DB-API connection): busy past the timeout, a race
                      sqlite3.OperationalError: _db_busy, sqlite3.IntegrityError: _raced}
    for kind, handler in error_handlers.items():
        app.add_exception_handler(kind, handler)

    async def identify(authorization: str | None) -> tuple[int, str]:
        # Resolved on the event loop from the cache; a miss is one read through the
        # payment store (never the writer), on the event loop on both databases.
        return await ctx.auth.identify_with(authorization, ctx.payment_store.client_by_token)

    async def authenticate(authorization: str | None, role: str) -> int:
        return ctx.auth.check_role(await identify(authorization), (role,))

    async def terminal(authorization: str | None = Header(None)) -> int:
        return await authenticate(authorization, "terminal")

    async def merchant(authorization: str | None = Header(None)) -> int:
        return await authenticate(authorization, "merchant")

    async def admin(authorization: str | None = Header(None)) -> int:
        return await authenticate(authorization, "admin")

    # -- payment (figure 6): the hot path -----------------------------------------------
    # Registered first, so the router matches them before the other routes, and on the
    # application's own router: FastAPI matches the routes of an included router twice
    # per request (15 us of CPU per request measured, a quarter of the stack's cost).
    def hot(method: str, path: str, **options):
        def register(endpoint):
            app.router.add_api_route(path, endpoint, methods=[method],
                                     route_class_override=LeanRoute, **options)
            return endpoint
        return register

    run = ctx.db.run

    @hot("POST", "/v1/payments", tags=["payment"], response_model=PaymentOut, status_code=201,
         responses=ERRORS, openapi_extra=_documented(PaymentCreateIn))
    async def create_payment(request: Request) -> Response:
        merchant_id = await authenticate(request.headers.get("authorization"), "merchant")
        body = await _parsed(request, PaymentCreateIn)
        view = await payments.create(merchant_id, body.user_id, body.amount_minor,
                                     body.currency, body.order_ref)
        return _answer(PaymentOut, _payment_out(view), 201)

    @hot("GET", "/v1/payments/{payment_id}", tags=["payment"], response_model=PaymentOut,
         responses=ERRORS, openapi_extra=_documented())
    async def get_payment(request: Request, payment_id: str) -> Response:
        identity = await identify(request.headers.get("authorization"))
        view = await payments.get(*identity, _id(payment_id))  # a snapshot: never writes
        return _answer(PaymentOut, _payment_out(view))

    @hot("POST", "/v1/payments/{payment_id}/terminal", tags=["payment"],
         response_model=PaymentOut, responses=ERRORS, openapi_extra=_documented())
    async def claim_payment(request: Request, payment_id: str) -> Response:
        """601 + 605: the terminal takes the payment; returns the one batch (SELECT, the
        certificate reference, SIGN TRANSACTION)."""
        terminal_id = await authenticate(request.headers.get("authorization"), "terminal")
        view = await payments.claim(terminal_id, _id(payment_id))
        return _answer(PaymentOut, _payment_out(view))

    @hot("POST", "/v1/payments/{payment_id}/responses", tags=["payment"],
         response_model=PaymentOut, responses=ERRORS, openapi_extra=_documented(CardResponsesIn))
    async def payment_responses(request: Request, payment_id: str) -> Response:
        """603-608: the card's answers; the reference, the signature and both
        compare-and-sets in one transaction."""
        terminal_id = await authenticate(request.headers.get("authorization"), "terminal")
        body = await _parsed(request, CardResponsesIn)
        view = await payments.post_responses(terminal_id, _id(payment_id), body.seq,
                                             body.decoded())
        return _answer(PaymentOut, _payment_out(view))

    # -- enrollment (figure 5): the same lean path --------------------------------------
    @hot("POST", "/v1/enrollments", tags=["enrollment"], response_model=EnrollmentOut,
         status_code=201, responses=ERRORS, openapi_extra=_documented(EnrollmentStartIn))
    async def start_enrollment(request: Request) -> Response:
        """501-502: start for a user the bank created, with the activation code the bank
        issued for this user and slot; returns SELECT + GENERATE KEY PAIR (PIN at the
        terminal)."""
        terminal_id = await authenticate(request.headers.get("authorization"), "terminal")
        body = await _parsed(request, EnrollmentStartIn)
        view = await run(enrollments.start, terminal_id, body.user_id, body.slot,
                         body.card_label, body.activation_code)
        return _answer(EnrollmentOut, _enrollment_out(view), 201)

    @hot("POST", "/v1/enrollments/{enrollment_id}/responses", tags=["enrollment"],
         response_model=EnrollmentOut, responses=ERRORS,
         openapi_extra=_documented(CardResponsesIn))
    async def enrollment_responses(request: Request, enrollment_id: str) -> Response:
        """506 / 510 / 512: the card's responses to the pending batch (checked on a read
        snapshot, then written in one short transaction: EnrollmentService)."""
        terminal_id = await authenticate(request.headers.get("authorization"), "terminal")
        body = await _parsed(request, CardResponsesIn)
        view = await enrollments.post_responses_async(terminal_id, _id(enrollment_id), body.seq,
                                                      body.decoded())
        return _answer(EnrollmentOut, _enrollment_out(view))

    # -- public CA material ---------------------------------------------------------------
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:  # no blocking work: answered on the event loop
        return {"status": "ok"}

    @app.get("/v1/ca/certificate", tags=["ca"], response_class=Response,
             responses={200: {"content": {"application/pkix-cert": {}}}})
    def ca_certificate():
        return Response(ctx.ca.cert_der, media_type="application/pkix-cert")

    @app.get("/v1/ca/crl", tags=["ca"], response_class=Response,
             responses={200: {"content": {"application/pkix-crl": {}}}})
    async def crl():
        """The stored CRL as published (revocation.publish_crl); only a database that never
        had one gets its first here."""
        der = await ctx.db.run_read(stored_crl, ctx)
        if der is None:
            der = await ctx.db.run(renew_crl, ctx)
        return Response(der, media_type="application/pkix-crl")

    @app.get("/v1/server-key", tags=["ca"], response_model=ServerKeyOut)
    def server_key(type: Literal["rsa-2048", "ec-p256"] = "rsa-2048"):
        """The bank's request-signing public key of a type, for PERSONALIZE P1=04: `ec-p256`
        for cards with EC (an 8E of at most 72 bytes), `rsa-2048` for the others."""
        public = ctx.ca.request_keys[BankKeyType(type)].public_key()
        return {"type": type, "public_key_7f49_hex": encode_bank_public_key(public).hex(),
                "public_key_spki_der_hex": public.public_bytes(
                    serialization.Encoding.DER,
                    serialization.PublicFormat.SubjectPublicKeyInfo).hex()}

    # -- enrollment: resume -----------------------------------------------------------------
    @app.get("/v1/enrollments/{enrollment_id}", tags=["enrollment"],
             response_model=EnrollmentOut, responses=ERRORS)
    async def get_enrollment(enrollment_id: str, terminal_id: int = Depends(terminal)):
        """State and pending batch, to resume an interrupted enrollment (a write: an
        overdue enrollment is expired and its certificate revoked)."""
        return _enrollment_out(await run(enrollments.get, terminal_id, _id(enrollment_id)))

    # -- administration ------------------------------------------------------------------
    @app.post("/v1/admin/revocations", tags=["admin"], response_model=RevocationOut,
              responses=ERRORS)
    async def revoke_certificates(body: RevocationIn, admin_id: int = Depends(admin)):
        return {"revoked": await run(partial(revoke, ctx, serial_hex=body.serial,
                                             user_external_id=body.user_id,
                                             reason=body.reason, client_id=admin_id))}

    @app.post("/v1/admin/clients", tags=["admin"], response_model=ClientCreatedOut,
              status_code=201, responses=ERRORS)
    async def new_client(body: ClientIn, admin_id: int = Depends(admin)):
        """A terminal, merchant or admin client; its token is in this answer only."""
        token, created = await run(partial(register_client, ctx.db, body.name, body.role,
                                           display_name=body.display_name, by=admin_id))
        return {**_fields(created), "token": token}

    @app.get("/v1/admin/clients", tags=["admin"], response_model=ClientsOut, responses=ERRORS)
    def clients(admin_id: int = Depends(admin)):  # a read (Database.read), in the threadpool
        return {"clients": [_fields(c) for c in list_clients(ctx.db)]}

    @app.post("/v1/admin/clients/{name}/disable", tags=["admin"], response_model=ClientOut,
              responses=ERRORS)
    async def disable_a_client(name: str, admin_id: int = Depends(admin)):
        """Ends a client's token (a lost terminal, a departed shop) within the token cache
        delay; idempotent."""
        disabled = await run(partial(disable_client, ctx.db, name, by=admin_id))
        if disabled is None:
            raise ApiError("not_found", f"no client {name!r}")
        return _fields(disabled)

    # -- the bank: users, activation codes, card registry ------------------------------
    @app.post("/v1/admin/users", tags=["admin"], response_model=UserOut, status_code=201,
              responses=ERRORS)
    async def new_user(body: UserIn, admin_id: int = Depends(admin)):
        """Users are created by the bank only; a taken id is a 409."""
        return _user_out(await run(partial(create_user, ctx.db, body.user_id, by=admin_id)))

    @app.get("/v1/admin/users", tags=["admin"], response_model=UsersOut, responses=ERRORS)
    def users(admin_id: int = Depends(admin)):  # a read (Database.read), in the threadpool
        return {"users": [_user_out(u) for u in list_users(ctx.db)]}

    @app.get("/v1/admin/users/{user_id}", tags=["admin"], response_model=UserOut,
             responses=ERRORS)
    async def user(user_id: str, admin_id: int = Depends(admin)):
        return _user_out(await ctx.db.run_read(get_user, ctx.db, user_id))

    @app.post("/v1/admin/users/{user_id}/activation-codes", tags=["admin"],
              response_model=ActivationCodeOut, status_code=201, responses=ERRORS)
    async def new_activation_code(user_id: str, body: ActivationCodeIn,
                                  admin_id: int = Depends(admin)):
        """A one-time enrollment code for the user and slot, in this answer only; it
        replaces the user's outstanding code for the slot."""
        return _fields(await run(partial(issue_code, ctx, user_id, body.slot,
                                         replace=body.replace, by=admin_id)))

    @app.post("/v1/admin/cards", tags=["admin"], response_model=CardImportOut,
              responses=ERRORS)
    async def register_cards(body: CardRecordsIn, admin_id: int = Depends(admin)):
        """Import personalization records (all or nothing): each attestation certificate
        must chain to the server's attestation trust store."""
        records = parse_import(body.model_dump_json())
        return _fields(await run(partial(import_records, ctx, records, by=admin_id)))

    @app.get("/v1/admin/cards", tags=["admin"], response_model=RegisteredCardsOut,
             responses=ERRORS)
    def cards(admin_id: int = Depends(admin)):  # a read (Database.read), in the threadpool
        return {"cards": [_fields(c) for c in list_cards(ctx)]}

    @app.get("/v1/admin/cards/{card_id}", tags=["admin"], response_model=RegisteredCardOut,
             responses=ERRORS)
    async def card(card_id: str, admin_id: int = Depends(admin)):
        return _fields(await ctx.db.run_read(get_card, ctx, card_id))

    @app.post("/v1/admin/cards/{card_id}/revoke", tags=["admin"],
              response_model=RegisteredCardOut, responses=ERRORS)
    async def revoke_a_card(card_id: str, admin_id: int = Depends(admin)):
        """A lost or withdrawn card: no more enrollments with it, its certificates revoked."""
        return _fields(await run(partial(revoke_card, ctx, card_id, by=admin_id)))

    app.include_router(web_pages)  # the browser pages (cardshield.web)
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes)
    return app


def _id(value: str) -> str:
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise ApiError("not_found", "identifiers are 32 lowercase hex characters")
    return value
