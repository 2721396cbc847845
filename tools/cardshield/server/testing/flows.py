"""Drive both flows through the HTTP API as a terminal + merchant would, with any card
object that has transmit(apdu) -> response and verify(pin) (SoftCard, or an adapter over
the real card client). Used by tests and by the benchmark."""
from __future__ import annotations

from dataclasses import dataclass

from .terminal import relay_batch


class FlowError(AssertionError):
    def __init__(self, status: int, body: dict):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body

    @property
    def code(self) -> str | None:
        return (self.body.get("error") or {}).get("code")


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def call(http, method: str, path: str, token: str, json: dict | None = None) -> dict:
    response = http.request(method, path, headers=_auth(token), json=json)
    body = response.json()
    if response.status_code >= 400:
        raise FlowError(response.status_code, body)
    return body


@dataclass
class Bank:
    """The bank's side of enrollment, with an admin token: users and activation codes."""
    http: object
    token: str

    def create_user(self, user_id: str) -> dict:
        return call(self.http, "POST", "/v1/admin/users", self.token, {"user_id": user_id})

    def ensure_user(self, user_id: str) -> None:
        try:
            self.create_user(user_id)
        except FlowError as err:
            if err.code != "conflict":
                raise

    def activation_code(self, user_id: str, slot: int = 1, replace: bool = False) -> str:
        """A new code for the user (created if new), as the customer gets it by post."""
        self.ensure_user(user_id)
        return call(self.http, "POST", f"/v1/admin/users/{user_id}/activation-codes", self.token,
                    {"slot": slot, "replace": replace})["activation_code"]


@dataclass
class Terminal:
    http: object
    token: str
    card: object
    pin: str = "1234"
    # Asked for an activation code when a test does not bring one.
    bank: Bank | None = None

    def _ensure_pin(self) -> None:
        if not getattr(self.card, "pin_verified", False):
            self.card.verify(self.pin)

    def run(self, batch: dict) -> list[str]:
        return relay_batch(batch, self.card.transmit, self._ensure_pin)

    # -- figure 5 ----------------------------------------------------------------------
    def start(self, user_id: str, slot: int = 1, card_label: str = "card",
              code: str | None = None, replace: bool = False) -> dict:
        if code is None:
            code = self.bank.activation_code(user_id, slot, replace)
        return call(self.http, "POST", "/v1/enrollments", self.token,
                    {"user_id": user_id, "slot": slot, "card_label": card_label,
                     "activation_code": code})

    def enroll(self, user_id: str, slot: int = 1, card_label: str = "card",
               code: str | None = None, replace: bool = False) -> dict:
        state = self.start(user_id, slot, card_label, code, replace)
        while state["batch"] is not None:
            state = self.post_enrollment(state["enrollment_id"], state["batch"])
        return state

    def post_enrollment(self, enrollment_id: str, batch: dict, responses=None) -> dict:
        return call(self.http, "POST", f"/v1/enrollments/{enrollment_id}/responses", self.token,
                    {"seq": batch["seq"], "responses": responses or self.run(batch)})

    # -- figure 6 ----------------------------------------------------------------------
    def claim(self, payment_id: str) -> dict:
        return call(self.http, "POST", f"/v1/payments/{payment_id}/terminal", self.token)

    def post_payment(self, payment_id: str, batch: dict, responses=None) -> dict:
        return call(self.http, "POST", f"/v1/payments/{payment_id}/responses", self.token,
                    {"seq": batch["seq"], "responses": responses or self.run(batch)})

    def pay(self, payment_id: str) -> dict:
        state = self.claim(payment_id)
        while state["batch"] is not None:
            state = self.post_payment(payment_id, state["batch"])
        return state


def create_payment(http, merchant_token: str, user_id: str, amount_minor: int = 1250,
                   currency: str = "EUR", order_ref: str = "order-1") -> dict:
    """The payee is the merchant's registered display name: not the request's to say."""
    return call(http, "POST", "/v1/payments", merchant_token,
                {"user_id": user_id, "amount_minor": amount_minor, "currency": currency,
                 "order_ref": order_ref})
