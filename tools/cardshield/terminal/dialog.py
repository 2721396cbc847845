"""The PIN and consent dialog the agent serves on its own origin (http://127.0.0.1:PORT).

The merchant's or bank's page never sees the PIN: it only learns that the card holder is
being asked, and where (the dialog URL). The dialog page, on the agent's origin, shows the
question (the payment decoded from the card command) and posts the answer back to the
agent; the agent checks that the answer comes from its own origin, with the one-time id
of the question it is waiting for.
"""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from .ui import Answer, AuthorizationRequest

ANSWER_TIMEOUT_SECONDS = 180.0


@dataclass
class PendingQuestion:
    request: AuthorizationRequest
    question_id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    answered: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None


class DialogInterface:
    """A UserInterface whose questions wait in the agent's dialog page for an answer."""

    def __init__(self, on_question=lambda question: None, timeout: float = ANSWER_TIMEOUT_SECONDS):
        self.on_question, self.timeout = on_question, timeout
        self._lock = threading.Lock()
        self._pending: PendingQuestion | None = None

    def authorize(self, request: AuthorizationRequest) -> Answer:
        question = PendingQuestion(request)
        with self._lock:
            self._pending = question
        try:
            self.on_question(question)
            if not question.answered.wait(self.timeout):
                return Answer(False)
            return question.answer or Answer(False)
        finally:
            with self._lock:
                if self._pending is question:
                    self._pending = None

    def pending(self) -> PendingQuestion | None:
        with self._lock:
            return self._pending

    def answer(self, question_id: str, approved: bool, pin: str | None) -> bool:
        """Deliver the card holder's answer; False if no such question is waiting."""
        with self._lock:
            question = self._pending
            if question is None or not secrets.compare_digest(question.question_id, question_id):
                return False
            question.answer = Answer(approved, pin if approved else None)
            question.answered.set()
            return True

    def cancel(self) -> None:
        """The page went away: whatever is being asked is declined."""
        with self._lock:
            question = self._pending
        if question is not None:
            question.answer = Answer(False)
            question.answered.set()
