"""The authentication server under faults and load, over real loopback HTTP.

A live server (`cardshield server run`, uvicorn worker processes) is killed with SIGKILL
while many terminals enroll and pay (SoftCard answers), then restarted; the terminals resume
every interrupted session from the server's own view of it (GET), as a real terminal would.
Afterwards the database must show: no payment authorized twice, none that a terminal saw
authorized missing, card counters unique among authorized payments, every certificate on a
card recorded, and every session either finished or refused with a 4xx reason. No answer
may ever be a 5xx other than 503 while the database is down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from cardshield.server.models import AuditEvent, Certificate, Enrollment, Payment
from cardshield.server.testing.flows import FlowError, call
from cardshield.server.testing.live import free_loopback_port
from cardshield.server.testing.softcard import SoftCard
from cardshield.server.testing.terminal import relay_batch

pytestmark = pytest.mark.slow


class LiveServer:
    """`python -m cardshield server run` in its own process group, killable with SIGKILL."""

    def __init__(self, state_dir: Path, database_url: str, workers: int = 2):
        self.env = {**os.environ, "CARDSHIELD_SERVER_DIR": str(state_dir), "CARDSHIELD_DATABASE_URL": database_url,
                    "CARDSHIELD_TOKEN_CACHE_SECONDS": "0"}
        self.workers = workers
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state_dir / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cardshield", "server", "run", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        """SIGKILL the whole process group (the uvicorn supervisor and its workers)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class Observed:
    """What the terminals saw: final states, refusals, server errors."""

    authorized: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)
    enrolled: dict[str, bytes] = field(default_factory=dict)  # user -> certificate on the card
    server_errors: list[str] = field(default_factory=list)
    interrupted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class OutcomeUnknown(Exception):
    """A state-changing request failed in a way that does not say whether it took effect."""


class ResilientTerminal:
    """A terminal that survives a server restart: on a broken connection it asks the server
    where the session stands and continues from there (never replays card answers blindly)."""

    def __init__(self, url: str, tokens: dict[str, str], card: SoftCard, observed: Observed, deadline: float,
                 allowed_5xx: tuple[int, ...] = ()):
        self.http = httpx.Client(base_url=url, timeout=10)
        self.tokens, self.observed, self.deadline, self.allowed_5xx = tokens, observed, deadline, allowed_5xx
        self.card = card  # registered in the card registry, as the issuer would have

    def _call(self, method: str, path: str, role: str, body: dict | None = None, *, repeatable: bool = True) -> dict:
        """One request, sent again after a broken connection only if that is harmless:
        a GET, or a creation (an abandoned duplicate session just expires). Anything else
        raises, and _step reads the session's state instead."""
        while True:
            try:
                return call(self.http, method, path, self.tokens[role], body)
            except httpx.ConnectError:
                self._wait()  # nothing reached the server
            except httpx.TransportError:
                if not repeatable:
                    raise
                with self.observed.lock:
                    self.observed.interrupted += 1
                self._wait()
            except FlowError as error:
                if error.status >= 500:
                    if error.status in self.allowed_5xx:  # 503 database_busy: the database is down
                        if not repeatable:
                            raise OutcomeUnknown(str(error)) from error
                        self._wait()
                        continue
                    with self.observed.lock:
                        self.observed.server_errors.append(f"{method} {path}: {error}")
                raise

    def _wait(self) -> None:
        if time.monotonic() > self.deadline + 180:  # a restart imports the server anew: slow on a busy machine
            raise TimeoutError("the server did not come back")
        time.sleep(0.1)

    def _step(self, method: str, path: str, role: str, body: dict | None, resume_path: str) -> dict:
        """A state-changing request; if the connection breaks after it was sent, the outcome
        is unknown: read the session's state instead of sending it again."""
        try:
            return self._call(method, path, role, body, repeatable=False)
        except (httpx.TransportError, OutcomeUnknown):
            with self.observed.lock:
                self.observed.interrupted += 1
            return self._call("GET", resume_path, role)

    def _start(self, user: str) -> dict:
        """The bank issues the user an activation code (and a new one if a start was cut
        off: the code may have been consumed by a session this terminal never heard of)."""
        while True:
            code = self._call("POST", f"/v1/admin/users/{user}/activation-codes", "admin", {"slot": 1})
            try:
                return self._call("POST", "/v1/enrollments", "terminal",
                                  {"user_id": user, "card_label": f"card-{user}",
                                   "activation_code": code["activation_code"]}, repeatable=False)
            except (httpx.TransportError, OutcomeUnknown):
                with self.observed.lock:
                    self.observed.interrupted += 1

    def enroll(self, user: str) -> None:
        try:
            self._call("POST", "/v1/admin/users", "admin", {"user_id": user})
        except FlowError as error:  # created by an attempt whose answer was lost
            if error.code != "conflict":
                raise
        state = self._start(user)
        path = f"/v1/enrollments/{state['enrollment_id']}"
        while state.get("batch"):
            batch = state["batch"]
            responses = relay_batch(batch, self.card.transmit, lambda: self.card.verify(self.card.pin))
            state = self._step("POST", f"{path}/responses", "terminal", {"seq": batch["seq"], "responses": responses},
                               path)
        with self.observed.lock:
            self.observed.enrolled[user] = self.card.certificates.get(1, b"")

    def pay(self, user: str, n: int) -> None:
        payment = self._call("POST", "/v1/payments", "merchant",
                             {"user_id": user, "amount_minor": 100 + n, "currency": "EUR",
                              "order_ref": f"{user}-{n}"})
        pid = payment["payment_id"]
        path = f"/v1/payments/{pid}"
        try:
            state = self._step("POST", f"{path}/terminal", "terminal", None, path)
            while state.get("batch") and state["state"] != "authorized":
                batch = state["batch"]
                responses = relay_batch(batch, self.card.transmit, lambda: self.card.verify(self.card.pin))
                state = self._step("POST", f"{path}/responses", "terminal",
                                   {"seq": batch["seq"], "responses": responses}, path)
        except FlowError as error:
            with self.observed.lock:
                self.observed.refused[pid] = error.code or str(error.status)
            return
        with self.observed.lock:
            if state["state"] == "authorized":
                self.observed.authorized.add(pid)
            else:
                self.observed.refused[pid] = state.get("refusal_code") or state["state"]

    def run(self, user: str) -> None:
        self.enroll(user)
        n = 0
        while n == 0 or time.monotonic() < self.deadline:  # at least one payment each
            self.pay(user, n)
            n += 1


def _prepare_server(tmp_path: Path, database_url: str, terminals: int) -> tuple[dict[str, str], list[SoftCard]]:
    """Server state with a trusted test attestation CA; API tokens; one registered card per terminal."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from cardshield.server.context import ServerContext
    from cardshield.server.migrations import upgrade
    from cardshield.server.settings import Settings
    from cardshield.server.testing.issuer import prepare_server_state, registered_softcard
    from cardshield.server.tokens import create_client

    settings = Settings(state_dir=tmp_path, database_url=database_url)
    issuer = prepare_server_state(settings)
    upgrade(database_url)
    ctx = ServerContext.create(settings)
    try:
        attestation_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cards = [registered_softcard(ctx, issuer, attestation_key) for _ in range(terminals)]
        return {role: create_client(ctx.db, f"load-{role}", role) for role in ("terminal", "merchant", "admin")}, cards
    finally:
        ctx.db.dispose()


def _run_load(server: LiveServer, tokens: dict[str, str], cards: list[SoftCard], terminals: int, seconds: float, fault=None,
              allowed_5xx: tuple[int, ...] = ()) -> Observed:
    observed = Observed()
    deadline = time.monotonic() + seconds
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            ResilientTerminal(server.url, tokens, cards[i], observed, deadline, allowed_5xx).run(f"user-{i}")
        except BaseException as error:  # reported below, with the thread's user
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(terminals)]
    for thread in threads:
        thread.start()
    if fault is not None:
        fault()
    for thread in threads:
        thread.join(timeout=seconds + 90)
    assert not errors, f"{len(errors)} terminals failed: {errors[:3]!r}"
    return observed


def _assert_every_terminal_reached_an_outcome(figures: dict[str, int], observed: Observed, terminals: int) -> None:
    """Liveness after the faults: every terminal enrolled, and each of its payments ended
    authorized or cleanly refused (a payment cut by a kill may expire: that is a refusal,
    never a payment in limbo). At least one payment was authorized after the restarts."""
    assert len(observed.enrolled) == terminals
    assert figures["authorized"] + len(observed.refused) >= terminals
    assert figures["authorized"] >= 1


def _check_database(database_url: str, observed: Observed) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            payments = {row.id: row for row in conn.execute(select(Payment))}
            authorized_events = dict(conn.execute(
                select(AuditEvent.payment_id, func.count()).where(AuditEvent.outcome == "ok",
                                                                   AuditEvent.action.like("%authoriz%"))
                .group_by(AuditEvent.payment_id)).all())
            certificates = {row.der: row for row in conn.execute(select(Certificate))}
            enrollments = {row.id: row for row in conn.execute(select(Enrollment))}
    finally:
        engine.dispose()
    # no payment lost: what a terminal saw authorized is authorized in the database
    lost = [pid for pid in observed.authorized if payments[pid].state != "authorized"]
    assert not lost, f"authorized for the terminal but not in the database: {lost}"
    # no payment authorized twice: one success event each, card counters unique per card
    twice = {pid: count for pid, count in authorized_events.items() if pid and count > 1}
    assert not twice, f"payments authorized more than once: {twice}"
    counters: dict[tuple, str] = {}
    for pid, row in payments.items():
        if row.state == "authorized":
            key = (row.card_id, row.card_counter)
            assert key not in counters, f"counter {row.card_counter} of card {row.card_id} authorized twice"
            counters[key] = pid
    # no certificate on a card without its record, no record without its enrollment
    for user, der in observed.enrolled.items():
        assert der in certificates, f"{user}'s card holds a certificate the database does not know"
        assert certificates[der].status == "active"
    for row in certificates.values():
        assert row.enrollment_id in enrollments, f"certificate {row.serial_hex} has no enrollment record"
    # every session finished or was refused with a reason
    for pid in observed.refused:
        assert payments[pid].state != "authorized", f"{pid} refused to the terminal but authorized"
    return {"payments": len(payments), "authorized": sum(r.state == "authorized" for r in payments.values()),
            "certificates": len(certificates)}


@pytest.mark.parametrize("workers", [2])
def test_kill9_server_during_enrollments_and_payments(tmp_path, workers):
    database_url = f"sqlite:///{tmp_path / 'server.db'}"
    tokens, cards = _prepare_server(tmp_path, database_url, terminals=12)
    server = LiveServer(tmp_path, database_url, workers)
    server.start()
    kills = []

    def fault():
        for _ in range(2):  # twice: during enrollments, then during payments
            time.sleep(1.5)
            server.kill9()
            kills.append(time.monotonic())
            time.sleep(0.3)
            server.start()

    try:
        observed = _run_load(server, tokens, cards, terminals=12, seconds=6.0, fault=fault)
    finally:
        server.stop()
    assert len(kills) == 2
    assert not observed.server_errors, observed.server_errors
    figures = _check_database(database_url, observed)
    _assert_every_terminal_reached_an_outcome(figures, observed, terminals=12)
    print(f"kill -9 x2: {figures}, {observed.interrupted} requests interrupted, "
          f"{len(observed.refused)} refusals {sorted(set(observed.refused.values()))}")


def test_load_many_concurrent_terminals(tmp_path):
    """32 terminals enroll and pay for a bounded time on loopback: zero errors, zero refusals
    (no fault, nothing to refuse)."""
    database_url = f"sqlite:///{tmp_path / 'server.db'}"
    tokens, cards = _prepare_server(tmp_path, database_url, terminals=32)
    server = LiveServer(tmp_path, database_url, workers=2)
    server.start()
    try:
        observed = _run_load(server, tokens, cards, terminals=32, seconds=5.0)
    finally:
        server.stop()
    assert not observed.server_errors and not observed.refused, (observed.server_errors, observed.refused)
    figures = _check_database(database_url, observed)
    assert len(observed.enrolled) == 32 and figures["authorized"] == len(observed.authorized) >= 32
    print(f"32 terminals: {figures}")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster of this test (.ci/postgres), killable with SIGKILL."""

    SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "postgres"

    def __init__(self):
        if os.geteuid() != 0 or not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
            pytest.skip("needs root and Debian's postgresql (installed by .ci/postgres in CI)")
        out = subprocess.run([str(self.SCRIPT), "start"], capture_output=True, text=True, timeout=180,
                             env={**os.environ, "CARDSHIELD_TEST_PG_PORT": str(free_loopback_port())})
        assert out.returncode == 0, out.stderr
        values = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines()
                      if line.startswith("export "))
        self.url, self.directory = values["CARDSHIELD_TEST_POSTGRES_URL"], Path(values["PG_TEST_DIR"])
        self.port = self.url.rsplit(":", 1)[1].split("/")[0]
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]

    def kill9(self) -> None:
        """SIGKILL the postmaster: what a crash of the database host's service looks like."""
        pid = int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def restart(self, timeout: float = 60.0) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off "
                   f"-c max_connections=200")
        command = (f"'{self.bin}/pg_ctl' -D '{self.directory}/data' -l '{self.directory}/log' -w "
                   f"-o \"{options}\" start")
        deadline = time.monotonic() + timeout
        while True:  # orphaned backends hold the shared memory for a moment after the kill
            result = subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], capture_output=True,
                                    text=True, timeout=120)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not restart: {result.stderr}")
            time.sleep(0.5)

    def stop(self) -> None:
        subprocess.run([str(self.SCRIPT), "stop", str(self.directory)], capture_output=True, timeout=120)


def test_kill9_database_during_enrollments_and_payments(tmp_path):
    postgres = PrivatePostgres()
    try:
        tokens, cards = _prepare_server(tmp_path, postgres.url, terminals=12)
        server = LiveServer(tmp_path, postgres.url, workers=2)
        server.start()

        def fault():
            for _ in range(2):
                time.sleep(1.5)
                postgres.kill9()
                time.sleep(1.0)
                postgres.restart()

        try:
            observed = _run_load(server, tokens, cards, terminals=12, seconds=6.0, fault=fault, allowed_5xx=(503,))
        finally:
            server.stop()
        assert not observed.server_errors, observed.server_errors
        figures = _check_database(postgres.url, observed)
        _assert_every_terminal_reached_an_outcome(figures, observed, terminals=12)
        print(f"PostgreSQL kill -9 x2: {figures}, {observed.interrupted} requests with an unknown outcome, "
              f"{len(observed.refused)} refusals {sorted(set(observed.refused.values()))}")
    finally:
        postgres.stop()


# Loaded by every Python process of the server under test (PYTHONPATH), the uvicorn workers
# included: when the writer thread's batch authorizes a payment, SIGKILL the whole server
# either right before its COMMIT or right after it, before any caller of the batch is
# answered, noting the batch's payments. Nothing of the server's code is changed for this.
KILL_AT_COMMIT = '''
import os, signal, threading
from pathlib import Path
if os.environ.get("CARDSHIELD_TEST_KILL"):
    from sqlalchemy import event
    from cardshield.server import db
    moment, after = os.environ["CARDSHIELD_TEST_KILL"].split(":")
    committed, make_engine = db.GroupCommitWriter._commit, db.make_engine
    due_batch = []  # the payments the writer's current batch authorized, once the kill is due

    def die(authorized):
        Path(os.environ["CARDSHIELD_TEST_KILL_NOTE"]).write_text("\\n".join(authorized))
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def before_commit(connection):  # SQLAlchemy's "commit" event: the COMMIT is next
        if threading.current_thread().name == "cardshield-writer" and due_batch:
            die(due_batch)

    def engine_with_hook(*args, **kwargs):
        engine = make_engine(*args, **kwargs)
        if moment == "before":
            event.listen(engine, "commit", before_commit)
        return engine

    def noting(work, due):
        def run(*args):
            result = work(*args)
            if due and getattr(result, "state", None) == "authorized":
                due_batch.append(result.payment_id)
            return result
        return run

    def kill_at_commit(self, batch):
        due = self.transactions + len(batch) >= int(after)
        for job in batch:
            job.work = noting(job.work, due)
        committed(self, batch)
        if moment == "after" and due_batch and all(job.error is None for job in batch):
            die(due_batch)  # committed, nobody answered yet
        due_batch.clear()

    db.make_engine, db.GroupCommitWriter._commit = engine_with_hook, kill_at_commit
'''


@pytest.mark.parametrize("moment", ["before", "after"])
def test_kill9_at_commit_loses_nothing_acknowledged(tmp_path, moment):
    """SQLite's group commit answers a caller only after the batch's COMMIT returned.
    Killed right before that COMMIT is sent, the batch's work is gone and no terminal was
    told it happened (they resume and finish the payment; a design that answered before
    committing fails here with an acknowledged payment missing). Killed right after it, the batch's
    payments are authorized and the terminals find them so when they resume. Either way
    everything acknowledged is in the database and nothing is authorized twice."""
    database_url = f"sqlite:///{tmp_path / 'server.db'}"
    tokens, cards = _prepare_server(tmp_path, database_url, terminals=8)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_AT_COMMIT)
    note = tmp_path / "killed-batch.txt"
    server = LiveServer(tmp_path, database_url, workers=2)
    server.env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
                      CARDSHIELD_TEST_KILL=f"{moment}:30", CARDSHIELD_TEST_KILL_NOTE=str(note))
    server.start()

    def fault():
        server.process.wait(timeout=60)  # the hook killed it
        for name in ("PYTHONPATH", "CARDSHIELD_TEST_KILL"):
            server.env.pop(name)
        server.start()

    try:
        observed = _run_load(server, tokens, cards, terminals=8, seconds=4.0, fault=fault)
    finally:
        server.stop()
    killed_batch = note.read_text().split()
    assert killed_batch, "the server was not killed at a commit"
    assert not observed.server_errors, observed.server_errors
    figures = _check_database(database_url, observed)  # nothing acknowledged lost, nothing twice
    assert set(killed_batch) <= observed.authorized  # the terminals finished or found them
    if moment == "after":
        engine = create_engine(database_url)
        try:
            with engine.connect() as conn:
                states = dict(conn.execute(select(Payment.id, Payment.state)
                                           .where(Payment.id.in_(killed_batch))).all())
        finally:
            engine.dispose()
        assert states == {pid: "authorized" for pid in killed_batch}
    _assert_every_terminal_reached_an_outcome(figures, observed, terminals=8)
    print(f"kill {moment} commit: a batch with {len(killed_batch)} authorization(s), none answered "
          f"before the kill; {figures}, {observed.interrupted} requests interrupted")
