"""The terminal prompt: what the card holder reads before typing the PIN."""
from __future__ import annotations

from cardshield.terminal.display import PaymentToConfirm
from cardshield.terminal.ui import AuthorizationRequest, TtyInterface


def prompt(request, lines, secret):
    shown: list[str] = []
    asked: list[str] = []
    tty = TtyInterface(read_line=lambda text: (asked.append(text), lines.pop(0))[1],
                       read_secret=lambda text: (asked.append(text), secret)[1], write=shown.append)
    return tty.authorize(request), "\n".join(shown), asked


PAYMENT = PaymentToConfirm(125000, "EUR", "Garage Dupont", "INV-9", server_signed=True)


def test_payment_shows_amount_payee_order_then_asks_approval_and_pin():
    answer, shown, asked = prompt(AuthorizationRequest("authorize this payment", True, PAYMENT), ["y"], "2468")
    assert "1,250.00 EUR" in shown and "Garage Dupont" in shown and "INV-9" in shown
    assert answer.approved and answer.pin == "2468" and len(asked) == 2


def test_declining_a_payment_never_asks_the_pin():
    answer, _shown, asked = prompt(AuthorizationRequest("authorize this payment", True, PAYMENT), ["n"], "2468")
    assert not answer.approved and answer.pin is None and len(asked) == 1


def test_wrong_pin_shows_tries_left_and_an_empty_pin_cancels():
    answer, shown, _asked = prompt(AuthorizationRequest("create a key", True, tries_left=1), [], "")
    assert "1 tries left" in shown and not answer.approved
