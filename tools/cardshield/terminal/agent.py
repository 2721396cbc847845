"""The local agent: the browser module's "CSP plug-in" of the patent, as a process on
the card holder's machine.

It listens on 127.0.0.1 only and offers
  * /ws      a WebSocket for the bank's and merchant's pages, accepted only from the
             configured server origins (Origin header, RFC 6455 10.2); through it a page
             asks to "enroll USER" or "pay PAYMENT" and receives progress, never the PIN;
  * /        the agent's own page: the PIN and consent dialog (dialog.py), on the
             agent's origin, which the pages open in a window of its own;
  * /dialog/question, /dialog/answer   what that page reads and posts (same origin only).
Requests whose Host is not the agent's own are refused (DNS rebinding). One flow runs at
a time: there is one card. Card and server I/O run in a worker thread.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .card_link import open_card
from .dialog import DialogInterface, PendingQuestion
from .flows import FlowFailed, Progress
from .server_client import ServerClient, origin_of
from .session import run_flow

LOOPBACK = "127.0.0.1"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class AgentConfig:
    server: ServerClient
    allowed_origins: frozenset[str]
    reader: str | None = None
    port: int = 8765
    open_transport: Callable = open_card  # how a flow gets its card (tests wrap it)
    slot: int = 1


@dataclass
class Agent:
    config: AgentConfig
    dialog: DialogInterface = field(default_factory=DialogInterface)
    _busy: threading.Lock = field(default_factory=threading.Lock)

    @property
    def own_origins(self) -> frozenset[str]:
        return frozenset({f"http://{LOOPBACK}:{self.config.port}", f"http://localhost:{self.config.port}"})

    @property
    def dialog_url(self) -> str:
        return f"http://{LOOPBACK}:{self.config.port}/"

    def _host_ok(self, headers) -> bool:
        return headers.get("host", "") in {origin.split("//", 1)[1] for origin in self.own_origins}

    # -- the agent's own page ---------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        if not self._host_ok(request.headers):
            return Response("wrong host", status_code=421)
        name = request.path_params.get("name", "dialog.html")
        if name not in ("dialog.html", "dialog.js", "dialog.css"):
            return Response("not found", status_code=404)
        body = resources.files("cardshield.terminal").joinpath("static", name).read_bytes()
        media = {"html": "text/html; charset=utf-8", "js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
        return Response(body, media_type=media, headers=SECURITY_HEADERS)

    async def question(self, request: Request) -> Response:
        if not self._host_ok(request.headers) or request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
            return JSONResponse({"error": "forbidden"}, status_code=403)
        pending = self.dialog.pending()
        body = {"question": None} if pending is None else {
            "question": {"id": pending.question_id, **pending.request.as_dict()}}
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def answer(self, request: Request) -> Response:
        if not self._host_ok(request.headers) or request.headers.get("origin") not in self.own_origins:
            return JSONResponse({"error": "answers are accepted from the agent's own page only"}, status_code=403)
        try:
            body = json.loads(await request.body())
            question_id, approved = str(body["id"]), bool(body["approved"])
            pin = body.get("pin")
            pin = str(pin) if isinstance(pin, str) and pin else None
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected {id, approved, pin}"}, status_code=400)
        if not self.dialog.answer(question_id, approved, pin):
            return JSONResponse({"error": "that question is no longer waiting"}, status_code=409)
        return JSONResponse({"ok": True}, headers=SECURITY_HEADERS)

    # -- the pages' WebSocket -----------------------------------------------------------------
    async def websocket(self, websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if origin not in self.config.allowed_origins or not self._host_ok(websocket.headers):
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        await websocket.accept()
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue = asyncio.Queue()

        def send_soon(message: dict) -> None:
            loop.call_soon_threadsafe(outbox.put_nowait, message)

        sender = asyncio.create_task(self._pump(websocket, outbox))
        await websocket.send_json({"type": "ready", "server": self.config.server.base_url,
                                   "dialog_url": self.dialog_url})
        try:
            while True:
                message = await websocket.receive_json()
                kind, subject = message.get("type"), message.get("subject")
                code = message.get("activation_code")  # enroll only; sent to the server, never logged
                if (kind not in ("enroll", "pay") or not isinstance(subject, str) or not 0 < len(subject) <= 64
                        or (kind == "enroll") != (isinstance(code, str) and 0 < len(code) <= 40)):
                    send_soon({"type": "failed", "code": "bad_request",
                               "message": "the page sent a request the agent does not understand"})
                    continue
                if not self._busy.acquire(blocking=False):
                    send_soon({"type": "failed", "code": "busy",
                               "message": "the card is busy with another operation: wait for it to finish"})
                    continue
                threading.Thread(target=self._run, args=(kind, subject, code, send_soon), daemon=True,
                                 name=f"cardshield-{kind}").start()
        except (WebSocketDisconnect, RuntimeError, ValueError):
            self.dialog.cancel()  # the page is gone: do not leave a question waiting
        finally:
            sender.cancel()

    @staticmethod
    async def _pump(websocket: WebSocket, outbox: asyncio.Queue) -> None:
        while True:
            message = await outbox.get()
            try:
                await websocket.send_json(message)
            except Exception:  # the page went away; the flow finishes on its own
                return

    def _run(self, kind: str, subject: str, activation_code: str | None, send: Callable[[dict], None]) -> None:
        def on_question(question: PendingQuestion) -> None:
            send({"type": "question", "dialog_url": self.dialog_url, "action": question.request.action,
                  "pin_needed": question.request.pin_needed})

        def on_progress(event: Progress) -> None:
            send({"type": "progress", **event.as_dict()})

        self.dialog.on_question = on_question
        try:
            runner = run_flow(kind, subject, server=self.config.server, ui=self.dialog, reader=self.config.reader,
                              on_progress=on_progress, open_transport=self.config.open_transport,
                              slot=self.config.slot, activation_code=activation_code)
            report = runner.report
            send({"type": "done", "flow": kind, "state": _public_state(report.state), "relayed": report.relayed,
                  "local": report.local, "seconds": round(report.seconds, 3)})
        except FlowFailed as failure:
            send({"type": "failed", "flow": kind, "code": failure.code, "message": str(failure)})
        except Exception as error:  # never leave the page waiting without an answer
            send({"type": "failed", "flow": kind, "code": "agent_error",
                  "message": f"the agent failed unexpectedly: {type(error).__name__}"})
        finally:
            self._busy.release()

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self.page, methods=["GET"]),
            Route("/static/{name}", self.page, methods=["GET"]),
            Route("/dialog/question", self.question, methods=["GET"]),
            Route("/dialog/answer", self.answer, methods=["POST"]),
            WebSocketRoute("/ws", self.websocket),
        ])


def _public_state(state: dict) -> dict:
    """What the page may show: the server's final state without the pending batch."""
    keep = ("enrollment_id", "payment_id", "state", "certificate_serial", "amount_minor", "currency", "payee",
            "order_ref", "card_counter", "authorized_at", "refusal_code", "failure_code")
    return {key: state[key] for key in keep if key in state}


def bind_loopback(port: int) -> socket.socket:
    """The agent's listening socket: 127.0.0.1 only, never a wildcard address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(16)
    return sock


class AgentServer:
    """uvicorn around the agent; start() in a thread (tests, demo) or serve_forever()."""

    def __init__(self, config: AgentConfig):
        import uvicorn

        self.sock = bind_loopback(config.port)
        config.port = self.sock.getsockname()[1]
        self.agent = Agent(config)
        self._server = uvicorn.Server(uvicorn.Config(self.agent.app(), log_level="warning", access_log=False,
                                                     ws="websockets-sansio", lifespan="off"))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.agent.config.port

    def serve_forever(self) -> None:
        self._server.run(sockets=[self.sock])

    def start(self) -> "AgentServer":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="cardshield-agent")
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the agent's HTTP server did not start")
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        self.agent.dialog.cancel()
        self._server.should_exit = True
        if self._thread:
            self._thread.join(10)
        self.sock.close()


def default_origins(server_url: str, extra: list[str] | None = None) -> frozenset[str]:
    return frozenset({origin_of(server_url), *(origin_of(url) for url in extra or [])})
