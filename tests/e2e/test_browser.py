"""The pages in Debian's Chromium against the server, the agent and the virtual card:
enroll, pay, see both on the status page; a wrong PIN and a tampered amount are refused
on screen. Each page is saved as a screenshot in test-artifacts/e2e/."""
from __future__ import annotations

import re

import pytest

from terminal.tampering import Tamper, insert_card_and_wait, remove_card_before_keygen

from perso.instance import PIN

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.card, pytest.mark.virtual_only, pytest.mark.slow]

USER = "alice"


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def start(page, deployment, path, button):
    """Open a page, wait for the agent, fill the user, click; return the agent's window."""
    page.goto(deployment.url + path)
    page.wait_for_selector("#agent-status.ok")
    page.fill("#user-id", USER)
    if path == "/enroll":
        page.fill("#activation-code", deployment.activation_code(USER))
    with page.expect_popup() as popup:
        page.click(button)
    dialog = popup.value
    dialog.wait_for_selector("#question:not([hidden])")
    return dialog


def test_1_enroll(page, deployment):
    dialog = start(page, deployment, "/enroll", "#enroll-button")
    assert dialog.url.startswith("http://127.0.0.1:")  # the agent's own origin, not the bank's page
    assert "key pair" in dialog.inner_text("#action")
    dialog.fill("#pin", PIN)
    shot(dialog, "agent-dialog-enroll")
    dialog.click("#approve")
    page.wait_for_selector(".notice.success", timeout=120_000)
    assert re.search(r"certificate [0-9a-f]+ is stored on your card", page.inner_text("#notice"))
    assert page.locator("ol.steps li.done").count() == 12
    assert page.get_attribute("#notice a", "href") == "/status"  # no user id in the link
    assert page.input_value("#activation-code") == ""  # single use: not kept on the page
    # the bank verified the card's attestation: the registered card is now alice's
    card = deployment.server.admin_request("GET", f"/v1/admin/cards/{deployment.card.card_id_hex}")
    assert card["bound_user"] == USER
    shot(page, "enroll")


def test_2_pay(page, deployment):
    dialog = start(page, deployment, "/checkout", "#pay-button")
    assert dialog.inner_text("#amount") == "49.80 EUR" and dialog.inner_text("#payee") == "Example Shop"
    dialog.fill("#pin", PIN)
    shot(dialog, "agent-dialog-payment")
    dialog.click("#approve")
    page.wait_for_selector(".notice.success")
    assert "Payment authorized: 49.80 EUR to Example Shop" in page.inner_text("#notice")
    assert page.locator("ol.steps li.done").count() == 8
    shot(page, "checkout")


def test_3_wrong_pin_is_refused_on_screen(page, deployment):
    dialog = start(page, deployment, "/checkout", "#pay-button")
    dialog.fill("#pin", "0000")
    dialog.click("#approve")
    dialog.wait_for_selector("#tries:not([hidden])")
    assert "Wrong PIN. 2 tries left" in dialog.inner_text("#tries")
    shot(dialog, "agent-dialog-wrong-pin")
    dialog.fill("#pin", PIN)  # the right PIN: the card's try counter goes back to 3
    dialog.click("#approve")
    page.wait_for_selector(".notice.success")
    dialog.close()
    dialog = start(page, deployment, "/checkout", "#pay-button")
    dialog.fill("#pin", "0000")
    dialog.click("#approve")
    dialog.wait_for_selector("#tries:not([hidden])")
    dialog.click("#decline")
    page.wait_for_selector(".notice.failure")
    assert "Payment not made: Cancelled" in page.inner_text("#notice")
    shot(page, "checkout-wrong-pin-cancelled")


def test_4_tampered_amount_is_refused_on_screen(page, deployment):
    deployment.wrapper = Tamper
    try:
        dialog = start(page, deployment, "/checkout", "#pay-button")
        assert dialog.inner_text("#amount") == "49.80 EUR"  # what the bank asked for
        dialog.fill("#pin", PIN)
        dialog.click("#approve")
        page.wait_for_selector(".notice.failure")
    finally:
        deployment.wrapper = None
    # The card checks the bank's signature (8E) over the fields and refuses to sign what
    # the malware changed: nothing signed, nothing paid.
    notice = page.inner_text("#notice")
    assert notice.startswith("Payment not made") and "SIGN TRANSACTION with 6982" in notice
    shot(page, "checkout-tampered")


def test_5_status_shows_what_this_browser_did_and_forgets_it(page, deployment):
    """The enrollment and payments above were made in this browser: the page finds them
    through the serial and payment ids the pages kept, with no user id asked."""
    page.goto(f"{deployment.url}/status")
    page.wait_for_selector("#certificates-card:not([hidden])")
    assert "made from this browser" in page.inner_text("#explanation")
    assert page.locator("#user-id").count() == 0
    certificates = page.inner_text("#certificates")
    assert "active" in certificates and re.search(r"[0-9a-f]{17,}", certificates)
    payments = page.inner_text("#payments")
    assert payments.count("authorized") == 2 and "not signed" in payments  # the tampered one
    shot(page, "status")
    page.click("#forget-button")
    page.wait_for_selector("#certificates-card[hidden]", state="attached")
    page.reload()
    page.wait_for_selector("#notice:not([hidden])")
    assert "Nothing was done from this browser yet" in page.inner_text("#notice")
    assert page.is_hidden("#certificates-card") and page.is_hidden("#payments-card")


def test_without_the_agent_the_page_says_how_to_start_it(browser_context, deployment):
    page = browser_context.new_page()
    page.route("**/web/config", lambda route: route.fulfill(
        json={"agent_url": "ws://127.0.0.1:9/ws", "shop": "x", "currency": "EUR", "catalog": []}))
    page.goto(deployment.url + "/enroll")
    page.wait_for_selector("#agent-status.missing")
    assert "./cardshield terminal" in page.inner_text("#agent-status")
    assert page.is_disabled("#enroll-button")
    shot(page, "enroll-no-agent")
    page.close()


def test_6_card_removed_during_enrollment_is_explained_on_screen(page, deployment):
    deployment.wrapper = remove_card_before_keygen(deployment.card.stack)
    try:
        dialog = start(page, deployment, "/enroll", "#enroll-button")
        dialog.fill("#pin", PIN)
        dialog.click("#approve")
        page.wait_for_selector(".notice.failure")
    finally:
        deployment.wrapper = None
        insert_card_and_wait(deployment.card.stack, deployment.card.reader)
    assert "The card was removed during the operation: insert it and start again." in page.inner_text("#notice")
    assert page.locator("ol.steps li.failed").count() == 1
    shot(page, "enroll-card-removed")


def test_7_a_wrong_activation_code_is_explained_on_screen(page, deployment):
    deployment.activation_code(USER)  # the bank issued a code; the person mistypes it
    page.goto(deployment.url + "/enroll")
    page.wait_for_selector("#agent-status.ok")
    page.fill("#user-id", USER)
    page.fill("#activation-code", "ZZZZ-ZZZZ-ZZZZ-ZZZ0")
    with page.expect_popup():
        page.click("#enroll-button")
    page.wait_for_selector(".notice.failure")
    notice = page.inner_text("#notice")
    assert "refused the activation code" in notice and "ZZZZ" not in notice
    shot(page, "enroll-wrong-code")
