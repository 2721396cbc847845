"""The agent's local service: loopback only, pages from the configured origins only, the
PIN dialog answerable from the agent's own page only (not from the shop's page, not from
any other site, not through a rebound DNS name)."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

pytest.importorskip("uvicorn")
websockets_client = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import InvalidStatus  # noqa: E402

from cardshield.terminal.agent import AgentConfig, AgentServer, default_origins  # noqa: E402
from cardshield.terminal.display import PaymentToConfirm  # noqa: E402
from cardshield.terminal.server_client import ServerClient  # noqa: E402
from cardshield.terminal.ui import AuthorizationRequest  # noqa: E402

SHOP = "http://127.0.0.1:18080"


@pytest.fixture(scope="module")
def agent():
    config = AgentConfig(ServerClient(SHOP, "cst_unused"), default_origins(SHOP), port=0)
    server = AgentServer(config).start()
    yield server
    server.stop()


def http(agent, method, path, body=None, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{agent.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_listens_on_loopback_only(agent):
    assert agent.sock.getsockname()[0] == "127.0.0.1"


def test_the_shop_page_is_accepted(agent):
    with websockets_client.connect(f"ws://127.0.0.1:{agent.port}/ws", origin=SHOP) as ws:
        hello = json.loads(ws.recv(timeout=10))
    assert hello["type"] == "ready" and hello["dialog_url"] == f"http://127.0.0.1:{agent.port}/"


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:18081", "https://127.0.0.1:18080",
                                    "null"])
def test_other_origins_are_refused(agent, origin):
    with pytest.raises(InvalidStatus) as refused:
        websockets_client.connect(f"ws://127.0.0.1:{agent.port}/ws", origin=origin)
    assert refused.value.response.status_code == 403


def test_a_client_without_origin_is_refused(agent):
    with pytest.raises(InvalidStatus):
        websockets_client.connect(f"ws://127.0.0.1:{agent.port}/ws")


def test_a_rebound_host_name_is_refused(agent):
    status, _ = http(agent, "GET", "/", headers={"Host": f"evil.example:{agent.port}"})
    assert status == 421


def ask(agent, request):
    answers = []
    thread = threading.Thread(target=lambda: answers.append(agent.agent.dialog.authorize(request)))
    thread.start()
    for _ in range(200):
        status, body = http(agent, "GET", "/dialog/question")
        question = json.loads(body)["question"]
        if question:
            return question, thread, answers
        threading.Event().wait(0.02)
    raise AssertionError("the question never appeared")


def test_the_dialog_shows_the_payment_and_takes_the_answer_from_its_own_page_only(agent):
    payment = PaymentToConfirm(2599, "EUR", "Example Shop", "order-7", True)
    question, thread, answers = ask(agent, AuthorizationRequest("authorize this payment", True, payment))
    assert question["payment"]["amount"] == "25.99 EUR" and question["pin_needed"]
    answer = {"id": question["id"], "approved": True, "pin": "2468"}
    for origin in (SHOP, "http://evil.example", None):
        headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
        assert http(agent, "POST", "/dialog/answer", answer, headers)[0] == 403
    own = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{agent.port}"}
    assert http(agent, "POST", "/dialog/answer", {**answer, "id": "guessed"}, own)[0] == 409
    assert http(agent, "POST", "/dialog/answer", answer, own)[0] == 200
    thread.join(10)
    assert answers[0].approved and answers[0].pin == "2468"


def test_the_dialog_page_cannot_be_framed(agent):
    request = urllib.request.Request(f"http://127.0.0.1:{agent.port}/")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert b"Card PIN" in response.read()
