"""End-to-end fixtures: the authentication server (own process, with the pages), the
relay agent on 127.0.0.1, the virtual card, and Debian's Chromium driven by Playwright.
Screenshots go to test-artifacts/e2e/ (git-ignored)."""
from __future__ import annotations

import pytest

from cardshield import paths

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = paths.ROOT / "test-artifacts" / "e2e"
PIN, PUK = "7531", "86420975"


@pytest.fixture(scope="session")
def e2e_card(card_stack, reader_name):
    """A development card issued with PIN-per-signature on slot 1 (no server-signed
    requests, so a tampered amount reaches the card and the bank must catch it)."""
    if card_stack is None:
        pytest.skip("the browser tests personalize a card: virtual card only")
    from cardshield.card.client import CardShield
    from cardshield.card.transport import Transport
    from cardshield.protocol.constants import Algorithm, SlotPolicy

    card_stack.pristine()
    with Transport(reader_name) as transport:
        transport.reconnect("reset")
        CardShield(transport).personalize_development_card(
            PIN, PUK, slots={1: (Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE)})
    return reader_name


class Deployment:
    def __init__(self, server, agent):
        self.server, self.agent = server, agent
        self.wrapper = None  # set by a test: what sits between the agent and the card
        self._users: set[str] = set()

    @property
    def url(self) -> str:
        return self.server.url

    def activation_code(self, user: str) -> str:
        """What the bank hands the customer: a one-time code (the user created if new; the
        code may replace an earlier certificate, as a re-enrollment needs)."""
        if user not in self._users:
            self.server.add_user(user)
            self._users.add(user)
        return self.server.activation_code(user, replace=True)


@pytest.fixture(scope="session")
def deployment(e2e_card, tmp_path_factory):
    pytest.importorskip("cardshield.server.api", reason="the authentication server is not in this tree")
    from cardshield.card.transport import Transport
    from cardshield.terminal.agent import AgentConfig, AgentServer, default_origins
    from cardshield.terminal.localserver import LocalServer, free_loopback_port
    from cardshield.terminal.server_client import ServerClient

    agent_port = free_loopback_port()
    # The session's development card cannot get an attestation key (that needs the issuer's
    # secure channel), so this server enrolls unattested keys, as its setting allows, marked
    # so; the attested path runs in tests/server/test_virtual_card.py and `cardshield demo`.
    server = LocalServer(tmp_path_factory.mktemp("e2e-server"),
                         extra_env={"CARDSHIELD_AGENT_URL": f"ws://127.0.0.1:{agent_port}/ws",
                                    "CARDSHIELD_ALLOW_UNATTESTED_ENROLLMENT": "1"}).start()
    holder: dict = {}

    def open_transport(reader):
        transport = Transport(reader)
        transport.connect()
        wrapper = holder["deployment"].wrapper
        return wrapper(transport) if wrapper else transport

    try:
        agent = AgentServer(AgentConfig(ServerClient(server.url, server.terminal_token), default_origins(server.url),
                                        reader=e2e_card, port=agent_port, open_transport=open_transport)).start()
        holder["deployment"] = Deployment(server, agent)
        yield holder["deployment"]
        agent.stop()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1000, "height": 900})
        context.set_default_timeout(30_000)
        yield context
        context.close()


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    yield page
    for other in browser_context.pages:
        other.close()
