"""How the relay asks the card holder: the PIN, and consent to what the card will do.

Three front ends implement UserInterface: the terminal prompt (TtyInterface), the local
dialog page the agent serves on 127.0.0.1 (cardshield.terminal.dialog), and a scripted
one for the demo and tests. None of them ever logs or returns the PIN anywhere but to
the relay, which sends it to the card in a VERIFY marked sensitive (masked in traces).
"""
from __future__ import annotations

import getpass
import sys
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .display import PaymentToConfirm


@dataclass(frozen=True)
class AuthorizationRequest:
    """One question to the card holder."""

    action: str  # what entering the PIN / approving allows, in plain words
    pin_needed: bool
    payment: PaymentToConfirm | None = None
    weaker_signing: bool = False  # a bare hash: the card cannot show what it signs
    tries_left: int | None = None  # after a wrong PIN
    server: str = ""  # which authentication server asks
    problem: str | None = None  # what was wrong with the previous answer (a PIN that is not 4-12 digits)

    def as_dict(self) -> dict:
        return {"action": self.action, "pin_needed": self.pin_needed,
                "payment": self.payment.as_dict() if self.payment else None,
                "weaker_signing": self.weaker_signing, "tries_left": self.tries_left, "server": self.server,
                "problem": self.problem}


@dataclass
class Answer:
    approved: bool
    pin: str | None = field(default=None, repr=False)


class UserInterface(Protocol):
    def authorize(self, request: AuthorizationRequest) -> Answer: ...


class TtyInterface:
    """Prompts on the controlling terminal; the PIN is read without echo."""

    def __init__(self, read_line: Callable[[str], str] = input, read_secret: Callable[[str], str] = getpass.getpass,
                 write: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)):
        self.read_line, self.read_secret, self.write = read_line, read_secret, write

    def authorize(self, request: AuthorizationRequest) -> Answer:
        self.write("")
        self.write(f"== {request.server or 'the authentication server'} asks to {request.action}")
        if request.payment:
            p = request.payment
            self.write(f"   amount:  {p.amount_text}\n   payee:   {p.payee}\n   order:   {p.order_ref}")
            if p.server_signed:
                self.write("   (request signed by the bank; the card checks that signature)")
        if request.weaker_signing:
            self.write("   WARNING: the card signs a bare hash and cannot show what it stands for")
        if request.tries_left is not None:
            self.write(f"   Wrong PIN: {request.tries_left} tries left before the PIN blocks")
        if request.problem:
            self.write(f"   {request.problem}")
        if request.payment or request.weaker_signing:
            if self.read_line("   Approve? [y/N] ").strip().lower() not in ("y", "yes"):
                return Answer(False)
        if not request.pin_needed:
            return Answer(True)
        pin = self.read_secret("   Card PIN (empty to cancel): ")
        return Answer(bool(pin), pin or None)


class ScriptedInterface:
    """Answers without a person: the demo's and the tests'. `pins` are tried in order
    (a test can start with a wrong one); every payment shown is recorded and approved
    unless `approve` says otherwise."""

    def __init__(self, pins: list[str], approve: Callable[[AuthorizationRequest], bool] = lambda request: True,
                 on_request: Callable[[AuthorizationRequest], None] = lambda request: None):
        self._pins = list(pins)
        self.approve, self.on_request = approve, on_request
        self.requests: list[AuthorizationRequest] = []

    def authorize(self, request: AuthorizationRequest) -> Answer:
        self.requests.append(request)
        self.on_request(request)
        if not self.approve(request):
            return Answer(False)
        if not request.pin_needed:
            return Answer(True)
        if not self._pins:
            return Answer(False)
        return Answer(True, self._pins.pop(0) if len(self._pins) > 1 else self._pins[0])

