"""A local authentication server in its own process, for the demo and the end-to-end
tests: `cardshield server init` (CA + SQLite) in a private state directory, the issuer's
attestation CA certificates in its trust store, one terminal, one merchant and one admin
(the bank) client, then `cardshield server run` on a loopback port. The bank's work (users,
activation codes, card records) goes through the `cardshield server` CLI. stop() leaves no
process behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cardshield.errors import UserError
from cardshield.server.testing.live import free_loopback_port
from cardshield.web.catalog import SHOP_NAME

MERCHANT_TOKEN_ENV = "CARDSHIELD_WEB_MERCHANT_TOKEN"


@dataclass
class LocalServer:
    state_dir: Path
    port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 60.0
    # attestation CA certificates (PEM) the card registry trusts
    attestation_cas: list[Path] = field(default_factory=list)
    terminal_token: str = field(default="", repr=False)
    merchant_token: str = field(default="", repr=False)
    admin_token: str = field(default="", repr=False)
    _process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "server.log"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, CARDSHIELD_SERVER_DIR=str(self.state_dir), PYTHONUNBUFFERED="1", **self.extra_env)
        env.pop("CARDSHIELD_DATABASE_URL", None)
        env.pop("DATABASE_URL", None)
        return env

    def _cli(self, *argv: str) -> str:
        result = subprocess.run([sys.executable, "-m", "cardshield", "server", *argv], env=self._env(),
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise UserError(f"`cardshield server {argv[0]}` failed: {result.stderr.strip()[-800:]}")
        return result.stdout.strip()

    def start(self) -> "LocalServer":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._cli("init")
        for certificate in self.attestation_cas:
            self._cli("trust-attestation-ca", str(certificate))
        self.terminal_token = self._cli("client", "terminal-1", "--role", "terminal").splitlines()[-1]
        self.merchant_token = self._cli("client", "web-shop", "--role", "merchant",
                                        "--display-name", SHOP_NAME).splitlines()[-1]
        self.admin_token = self._cli("client", "bank-office", "--role", "admin").splitlines()[-1]
        self.port = self.port or free_loopback_port()
        env = self._env()
        env[MERCHANT_TOKEN_ENV] = self.merchant_token
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "cardshield", "server", "run", "--port", str(self.port)], env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while not self._healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                self.stop()
                raise UserError(f"the authentication server did not start on {self.url}:\n{tail}")
            time.sleep(0.1)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def _request(self, token: str, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def merchant_request(self, method: str, path: str, body: dict | None = None) -> dict:
        """The merchant's side of the API (create a payment, read its state)."""
        return self._request(self.merchant_token, method, path, body)

    def admin_request(self, method: str, path: str, body: dict | None = None) -> dict:
        """The bank's side of the API (users, codes, the card registry)."""
        return self._request(self.admin_token, method, path, body)

    # -- the bank, through `cardshield server` ----------------------------------------------
    def import_cards(self, records: Path) -> str:
        return self._cli("cards", "import", str(records))

    def add_user(self, user_id: str) -> str:
        return self._cli("user", "add", user_id)

    def activation_code(self, user_id: str, slot: int = 1, replace: bool = False) -> str:
        """A new one-time code (the CLI prints it once, on the first line)."""
        return self._cli("user", "code", user_id, "--slot", str(slot),
                         *(["--replace"] if replace else [])).splitlines()[0]

    def create_payment(self, user_id: str, amount_minor: int, currency: str, order_ref: str) -> dict:
        """The payee is the shop's registered display name; the signing mode the card's policy."""
        return self.merchant_request("POST", "/v1/payments", {
            "user_id": user_id, "amount_minor": amount_minor, "currency": currency, "order_ref": order_ref})

    def request_key_pem(self, key_type: str = "rsa-2048") -> bytes:
        """The server's request-signing public key (PEM) of a type (rsa-2048, ec-p256), as the
        issuer writes it on a card."""
        from cryptography.hazmat.primitives import serialization

        der = bytes.fromhex(json.loads(self.get(f"/v1/server-key?type={key_type}"))["public_key_spki_der_hex"])
        return serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
