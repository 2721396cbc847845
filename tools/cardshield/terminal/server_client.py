"""The terminal's client of the authentication server's HTTP API (cardshield.server.api).

Standard library only (urllib): HTTPS with the system's CA store (or a given CA file),
the terminal's bearer token, JSON in and out. Errors say what to do: the server is
unreachable, the token is refused, or the server refused a step (its error code and
message, for the card holder).
"""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 30.0


class ServerError(Exception):
    """The server could not be reached or answered unexpectedly."""


class ServerRefused(ServerError):
    """A 4xx with the server's machine-readable code and human message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.status, self.code, self.message = status, code, message


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, as browsers send it in the Origin header."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}"


class ServerClient:
    def __init__(self, base_url: str, token: str, *, ca_file: str | None = None, timeout: float = TIMEOUT_SECONDS):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"server URL {base_url!r} must start with https:// (or http:// on loopback)")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"server URL {base_url!r}: plain HTTP is accepted on loopback only; use https://")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._ssl = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None

    def __repr__(self) -> str:  # never the token
        return f"ServerClient({self.base_url})"

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json",
                     **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise self._refusal(error) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServerError(f"the authentication server at {self.base_url} does not answer ({reason}); check "
                              "that it runs and that --server points to it") from None

    @staticmethod
    def _refusal(error: urllib.error.HTTPError) -> ServerError:
        try:
            body = json.loads(error.read() or b"{}")
            detail = body.get("error") or {}
            code, message = detail.get("code"), detail.get("message")
        except (ValueError, AttributeError):
            code = message = None
        if error.code == 401:
            return ServerRefused(401, code or "unauthorized", "the server does not accept this terminal's token "
                                 "(CARDSHIELD_TERMINAL_TOKEN): register the terminal with `cardshield server "
                                 "client NAME --role terminal`")
        if code and message:
            return ServerRefused(error.code, code, message)
        return ServerError(f"the authentication server answered HTTP {error.code} without an explanation")

    # -- figure 5 -----------------------------------------------------------------------
    def start_enrollment(self, user_id: str, activation_code: str, slot: int = 1, card_label: str = "card") -> dict:
        """The bank's one-time activation code goes in this request only (never logged)."""
        return self.request("POST", "/v1/enrollments", {"user_id": user_id, "slot": slot, "card_label": card_label,
                                                         "activation_code": activation_code})

    def post_enrollment(self, enrollment_id: str, seq: int, responses: list[str]) -> dict:
        return self.request("POST", f"/v1/enrollments/{enrollment_id}/responses",
                            {"seq": seq, "responses": responses})

    # -- figure 6 -----------------------------------------------------------------------
    def claim_payment(self, payment_id: str) -> dict:
        return self.request("POST", f"/v1/payments/{payment_id}/terminal")

    def post_payment(self, payment_id: str, seq: int, responses: list[str]) -> dict:
        return self.request("POST", f"/v1/payments/{payment_id}/responses", {"seq": seq, "responses": responses})
