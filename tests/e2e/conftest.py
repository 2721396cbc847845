"""End-to-end fixtures: the authentication server (own process, with the pages, default
settings: enrollment verifies the card's attestation), the relay agent on 127.0.0.1, an
issued card with an attestation key on its own virtual card stack (tests/attested_card.py),
and Debian's Chromium driven by Playwright. Screenshots go to test-artifacts/e2e/
(git-ignored)."""
from __future__ import annotations

import pytest

from cardshield import paths

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = paths.ROOT / "test-artifacts" / "e2e"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    from attested_card import CardIssuer

    return CardIssuer(tmp_path_factory.mktemp("issuer"))


class Deployment:
    def __init__(self, server, agent, card):
        self.server, self.agent, self.card = server, agent, card  # card: AttestedCard
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


@pytest.fixture(scope="module")  # the card's stack must not outlive the module (tests/attested_card.py)
def deployment(issuer, tmp_path_factory):
    pytest.importorskip("cardshield.server.api", reason="the authentication server is not in this tree")
    from cardshield.card.transport import Transport
    from cardshield.terminal.agent import AgentConfig, AgentServer, default_origins
    from cardshield.terminal.localserver import LocalServer, free_loopback_port
    from cardshield.terminal.server_client import ServerClient

    agent_port = free_loopback_port()
    server = LocalServer(tmp_path_factory.mktemp("e2e-server"), attestation_cas=issuer.trust_roots,
                         extra_env={"CARDSHIELD_AGENT_URL": f"ws://127.0.0.1:{agent_port}/ws",
                                    # payments too only from attested cards
                                    "CARDSHIELD_PAYMENTS_REQUIRE_ATTESTED_CARD": "1"}).start()
    holder: dict = {}

    def open_transport(reader):
        transport = Transport(reader)
        transport.connect()
        wrapper = holder["deployment"].wrapper
        return wrapper(transport) if wrapper else transport

    try:
        with issuer.issued_card(server) as card:
            agent = AgentServer(AgentConfig(ServerClient(server.url, server.terminal_token),
                                            default_origins(server.url), reader=card.reader, port=agent_port,
                                            open_transport=open_transport)).start()
            holder["deployment"] = Deployment(server, agent, card)
            yield holder["deployment"]
            agent.stop()
    finally:
        server.stop()


# Module scope: Playwright's sync API keeps an asyncio loop running in this thread while it
# is open, and a later test's asyncio.run() would refuse to start under it.
@pytest.fixture(scope="module")
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
