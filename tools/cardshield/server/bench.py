"""`./cardshield bench server` / `cardshield server bench`: a benchmark, not a test.

Measures in one run, on loopback, with durable settings only (SQLite synchronous=FULL with
group commit; PostgreSQL: a private cluster with fsync and synchronous_commit on):
  * the raw floor: RSA-2048 sign and verify with `cryptography`;
  * a bare ASGI endpoint and the framework's floor (GET /healthz), over HTTP, server CPU each;
  * the payment services alone (in-process, no HTTP) on each database, with PostgreSQL's
    own CPU and its round trips per payment (counted on the wire by a TCP proxy);
  * enrollment: certificates issued per second at ENROLLMENT_CONCURRENCY terminals and
    again at ENROLLMENT_CPU_BOUND_CONCURRENCY (after the payments, fresh users; figure
    5 over HTTP, SoftCard answers, each with a card attestation verified; the cards' keys
    are generated before the timed part), with the server's CPU per enrollment and, apart,
    the client's; the enrollment services alone in-process, one CA issuance (certificate
    built and RSA-3072-signed) and one attestation verification alone;
  * payments at 1, 16 and 64 concurrent clients on each database, and 64 clients whose
    offered load is paced below what the server can do: authorizations per second with
    p50/p99 of the authorization request and of the whole payment, in the bank-signed
    mode (the card's slot requires the server's signature, tag 8E), so that the p99 of
    64 clients flat out can be told apart into service time and queueing;
  * the server's CPU per authorization (uvicorn processes, plus PostgreSQL's processes) and,
    separately, the client's (which plays the cards: one RSA-2048 signature per payment).
Bounded in count and time, loopback only. Results go to docs/benchmarks.md (server section).
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.protocol.constants import SlotPolicy

from .testing.softcard import SoftCard
from .testing.terminal import relay_batch

LEVELS = (1, 16, 64)
# The paced level: 64 clients that together offer this share of the flat-out throughput of
# 64 clients, each starting its payments on a fixed schedule (an open-loop arrival rate).
PACED_CLIENTS, PACED_SHARE = 64, 0.5
ENROLLMENT_CONCURRENCY = 16
# At 16 terminals the rate is bounded by the latency of 4 round trips; at 64 the server's
# and the load generator's CPU bound it: both are reported.
ENROLLMENT_CPU_BOUND_CONCURRENCY = 64
ENROLLMENTS = 128  # timed, each with its own card key, after ENROLLMENT_WARMUP untimed ones
ENROLLMENT_WARMUP = 8
ENROLLMENT_REQUESTS = 4  # start; the card's answers to GENERATE, to PROVE POSSESSION + ATTEST, to the store
SECTION_START = "<!-- server-bench:start -->"
SECTION_END = "<!-- server-bench:end -->"


def _say(text: str) -> None:
    print(f"[bench server] {text}", flush=True)


# -- a minimal keep-alive HTTP/1.1 client (cheap enough not to dominate the client CPU) ------
class Connection:
    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, token: str, body: dict | None = None):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body).encode() if body is not None else b""
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        payload = json.loads(await self.reader.readexactly(length)) if length else {}
        if status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {status} {payload}")
        return payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Level:
    clients: int
    paced_rate: float | None = None  # offered authorizations/s; None: flat out
    seconds: float = 0.0
    payments: int = 0
    authorize_ms: list[float] = field(default_factory=list)
    payment_ms: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0  # uvicorn processes + the database's processes
    database_cpu_s: float = 0.0  # of which the database (PostgreSQL; SQLite runs in-process)
    client_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.payments / self.seconds if self.seconds else 0.0

    @property
    def label(self) -> str:
        return f"{self.clients}" + (f", paced at {self.paced_rate:,.0f}/s" if self.paced_rate else "")


@dataclass
class EnrollmentLevel:
    """Enrollments over HTTP at `concurrency` terminals; CPU in seconds for the timed ones."""
    concurrency: int
    enrollments: int = 0
    seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list)  # one whole enrollment (4 requests)
    server_cpu_s: float = 0.0  # uvicorn processes + the database's processes
    database_cpu_s: float = 0.0
    client_cpu_s: float = 0.0  # the SoftCards (2 RSA-2048 signatures each) and the HTTP client

    @property
    def rate(self) -> float:
        return self.enrollments / self.seconds if self.seconds else 0.0

    def per(self, cpu_s: float) -> float:
        """ms of CPU per enrollment."""
        return cpu_s / self.enrollments * 1000 if self.enrollments else float("nan")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Floor:
    sign_per_s: float  # wall clock, under whatever load the machine has
    verify_per_s: float
    sign_cpu_ms: float  # CPU time per operation: what the load does not inflate
    verify_cpu_ms: float
    ec_bank_sign_cpu_ms: float | None = None  # the 8E with an EC P-256 bank key (cards with EC)


def rsa_floor(seconds: float = 1.0) -> Floor:
    from cardshield.protocol.bank_key import BankKeyType, generate_bank_key, sign_request
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = generate_bank_key(BankKeyType.EC_P256)
    message = b"CSTX1" + bytes(200)
    sig = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    out = []
    for op in (lambda: key.sign(message, padding.PKCS1v15(), hashes.SHA256()),
               lambda: key.public_key().verify(sig, message, padding.PKCS1v15(), hashes.SHA256()),
               lambda: sign_request(ec_key, message)):
        n, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            op()
            n += 1
        out += [n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1000]
    return Floor(out[0], out[2], out[1], out[3], out[5])


def _fresh_server(state_dir: Path, database_url: str):
    """Settings for a new CA (and a trusted test attestation CA) and a migrated database
    under an emptied state_dir."""
    from .migrations import upgrade
    from .settings import Settings
    from .testing.issuer import prepare_server_state
    shutil.rmtree(state_dir, ignore_errors=True)
    settings = Settings(state_dir=state_dir, database_url=database_url)
    prepare_server_state(settings)
    upgrade(settings.effective_database_url)
    return settings


def _bank_enrollment_codes(ctx, users: list[str]) -> dict[str, str]:
    """What the bank does before enrollment: create each user, issue an activation code."""
    from .activation import issue_code
    from .users import create_user
    codes = {}
    for user in users:
        create_user(ctx.db, user)
        codes[user] = issue_code(ctx, user, 1).activation_code
    return codes


def bank_signed_cards(ctx, state_dir: Path, keys: list, attestation_key) -> list[SoftCard]:
    """SoftCards registered in the card registry (attested by the test attestation CA under
    `state_dir`) whose payment slot accepts only requests the bank signed (tag 8E), with the
    bank key an issuer gives the default card (one with EC): EC P-256."""
    from cardshield.protocol.bank_key import BankKeyType

    from .testing.issuer import load_test_issuer, registered_softcard
    issuer = load_test_issuer(state_dir)
    bank_key = ctx.ca.request_keys[BankKeyType.EC_P256].public_key()
    return [registered_softcard(ctx, issuer, attestation_key, key_factory=lambda k=k: k,
                                server_public_key=bank_key,
                                slot_policy={1: SlotPolicy.PIN_PER_SIGNATURE
                                             | SlotPolicy.SERVER_SIGNED_REQUESTS,
                                             2: SlotPolicy(0)})
            for k in keys]


def attestation_floor(state_dir: Path, key, attestation_key, verifications: int = 300) -> float:
    """CPU ms of one enrollment's attestation verification (verify_attestation: statement
    parsing, the card certificate's chain to the attestation CA, the statement's RSA-2048
    signature, challenge/slot/key checks), as the enrollment step runs it."""
    import secrets
    from datetime import datetime, timezone

    from cryptography import x509

    from cardshield.attestation.verify import verify_attestation
    from cardshield.protocol.attestation import attest_command
    from cardshield.protocol.keys import encode_rsa_public_key
    from .settings import Settings
    from .testing.issuer import prepare_server_state
    issuer = prepare_server_state(Settings(state_dir=state_dir))
    card = SoftCard(keys={1: key}, attestation_key=attestation_key,
                    card_id=secrets.token_bytes(8))
    certificate = x509.load_der_x509_certificate(card.record(issuer).attestation_certificate_der)
    challenge = secrets.token_bytes(32)
    answer = card.transmit(attest_command(1, challenge).short())[:-2]
    public_key_do = encode_rsa_public_key(key.public_key())
    now = datetime.now(timezone.utc)
    cpu = time.process_time()
    for _ in range(verifications):
        verify_attestation(answer, card_certificate=certificate, trust_roots=[issuer.certificate],
                           challenge=challenge, public_key_do=public_key_do, slot=1, now=now)
    return (time.process_time() - cpu) / verifications * 1000


def issuance_floor(state_dir: Path, key, issuances: int = 100) -> float:
    """CPU ms of one CA issuance as enrollment runs it (CertificateAuthority.issue: the
    RFC 5280 certificate built and signed with the CA's RSA-3072 key)."""
    from .ca import CertificateAuthority
    from .settings import Settings
    from .testing.issuer import prepare_server_state
    settings = Settings(state_dir=state_dir)
    prepare_server_state(settings)
    ca = CertificateAuthority.load(settings)
    cpu = time.process_time()
    for n in range(issuances):
        ca.issue(key.public_key(), user_external_id=f"floor-{n}", card_label="card", slot=1,
                 card_id="C0FFEE0000000001", attested=True)
    return (time.process_time() - cpu) / issuances * 1000


@dataclass(frozen=True)
class StepSplit:
    """CPU per payment of each request's service call (this process, all its threads),
    and of it the SQLite writer thread's (its statements, commits and wake-ups)."""
    create_ms: float
    claim_ms: float
    final_ms: float
    writer_ms: float | None


@dataclass
class ServiceFloor:
    cpu_ms: float  # this process
    database_cpu_ms: float  # PostgreSQL's processes
    round_trips: float | None  # per payment, PostgreSQL only, counted on the wire
    steps: StepSplit | None = None


def service_floor(state_dir: Path, key, attestation_key, database_url: str, database_pids,
                  payments: int = 300, counted: int = 20) -> ServiceFloor:
    """CPU per authorization of the payment services alone (database, APDU composition,
    certificate check, RSA verify, the bank's 8E signature), called in-process without
    HTTP; the SoftCard's answers are computed outside the timed calls. On PostgreSQL,
    `counted` more payments then go through a TCP proxy that counts the round trips on the
    wire (testing/wire.py), outside the timed ones (the proxy's own CPU is not the server's)."""
    from .context import ServerContext
    from .enrollment import EnrollmentService
    from .payment import PaymentService
    from .testing.wire import RoundTripProxy
    from .tokens import create_client
    settings = _fresh_server(state_dir, database_url)
    ctx = ServerContext.create(settings)
    proxy = None if ctx.db.is_sqlite else RoundTripProxy.in_front_of(settings.effective_database_url)
    wired = (ServerContext.create(settings.with_overrides(
        database_url=proxy.url(settings.effective_database_url))) if proxy else None)
    try:
        terminal, merchant = (ctx.auth.identify("Bearer " + create_client(ctx.db, f"floor-{role}", role))[0]
                              for role in ("terminal", "merchant"))
        enrollments = EnrollmentService(ctx)
        card = bank_signed_cards(ctx, state_dir, [key], attestation_key)[0]
        card.verify(card.pin)
        code = _bank_enrollment_codes(ctx, ["floor-user"])["floor-user"]
        view = enrollments.start(terminal, "floor-user", 1, "card", code)
        while view.batch is not None:
            view = enrollments.post_responses(terminal, view.enrollment_id, view.batch["seq"], [
                bytes.fromhex(r) for r in relay_batch(view.batch, card.transmit)])

        async def pay(service: PaymentService, n: int) -> list[float]:
            """One payment; returns the CPU seconds of each of its 3 service calls."""
            cpu = time.process_time()
            view = await service.create(merchant, "floor-user", 100 + n, "EUR", f"f-{n}")
            created = time.process_time()
            view = await service.claim(terminal, view.payment_id)
            timed = [created - cpu, time.process_time() - created, 0.0]
            while view.batch is not None:
                answers = [bytes.fromhex(r) for r in relay_batch(view.batch, card.transmit)]
                cpu = time.process_time()
                view = await service.post_responses(terminal, view.payment_id, view.batch["seq"],
                                                    answers)
                timed[2] += time.process_time() - cpu
            assert view.state == "authorized", view
            return timed

        writer = ctx.db.writer

        async def measure() -> tuple[list[float], float, float | None, float | None]:
            service, spent, database0, writer0 = PaymentService(ctx), [0.0] * 3, 0.0, 0.0
            try:
                for n in range(payments + 20):  # the first 20 warm caches up
                    if n == 20:
                        database0 = _cpu_seconds(database_pids())
                        writer0 = writer.cpu_seconds if writer else 0.0
                    timed = await pay(service, n)
                    if n >= 20:
                        spent = [a + b for a, b in zip(spent, timed)]
                database_s = _cpu_seconds(database_pids()) - database0
                writer_s = writer.cpu_seconds - writer0 if writer else None
                trips = None
                if wired is not None:
                    service = PaymentService(wired)
                    await pay(service, 10_000)  # connections opened, statements prepared
                    proxy.reset()
                    for n in range(counted):
                        await pay(service, 10_001 + n)
                    trips = proxy.round_trips / counted
                    await wired.payment_store.close()
                return spent, database_s, trips, writer_s
            finally:
                await ctx.payment_store.close()

        spent, database_s, trips, writer_s = asyncio.run(measure())
        ms = [s / payments * 1000 for s in spent]
        return ServiceFloor(sum(ms), database_s / payments * 1000, trips, StepSplit(
            *ms, None if writer_s is None else writer_s / payments * 1000))
    finally:
        ctx.db.dispose()
        if wired is not None:
            wired.db.dispose()
        if proxy is not None:
            proxy.close()


@dataclass
class EnrollmentFloor:
    cpu_ms: float  # this process, per enrollment
    database_cpu_ms: float  # PostgreSQL's processes
    write_ms: float  # of cpu_ms, in the write transactions (on SQLite: the one writer's)


def enrollment_floor(state_dir: Path, keys: list, attestation_key, database_url: str,
                     database_pids, warmup: int = 5) -> EnrollmentFloor:
    """CPU per enrollment of the enrollment services alone (start and the three posts:
    activation code, key checks, proof of possession, attestation, CA issuance, database,
    APDU batches), in-process without HTTP, each call its own transaction; the SoftCards'
    answers are computed outside the timed calls; the first `warmup` keys are not timed.
    The checks of each post (on a read snapshot) and its write transaction are timed apart
    (on PostgreSQL a post is both in one transaction, as served: all counted as writes)."""
    from .context import ServerContext
    from .enrollment import EnrollmentService, Post
    from .tokens import create_client
    ctx = ServerContext.create(_fresh_server(state_dir, database_url))
    try:
        terminal = ctx.auth.identify("Bearer " + create_client(ctx.db, "floor-enroll", "terminal"))[0]
        service = EnrollmentService(ctx)
        cards = bank_signed_cards(ctx, state_dir, keys, attestation_key)
        users = [f"floor-enroll-{i}" for i in range(len(cards))]
        codes = _bank_enrollment_codes(ctx, users)
        checks = writes = database0 = 0.0
        for n, (user, card) in enumerate(zip(users, cards)):
            if n == warmup:
                checks, writes, database0 = 0.0, 0.0, _cpu_seconds(database_pids())
            card.verify(card.pin)
            cpu = time.process_time()
            view = service.start(terminal, user, 1, "card", codes[user])  # one write
            writes += time.process_time() - cpu
            while view.batch is not None:
                answers = [bytes.fromhex(r) for r in relay_batch(view.batch, card.transmit)]
                post = Post(terminal, view.enrollment_id, view.batch["seq"], answers)
                cpu = time.process_time()
                if not ctx.db.is_sqlite:  # as served: one transaction (check_and_write)
                    view = service.check_and_write(post)
                    writes += time.process_time() - cpu
                    continue
                checked = service.check(post)
                checked_at = time.process_time()
                view = service.write(post, checked)
                checks += checked_at - cpu
                writes += time.process_time() - checked_at
            assert view.state == "completed", view
        timed = len(cards) - warmup
        database_ms = (_cpu_seconds(database_pids()) - database0) / timed * 1000
        return EnrollmentFloor((checks + writes) / timed * 1000, database_ms, writes / timed * 1000)
    finally:
        ctx.db.dispose()


async def bare_asgi(scope, receive, send) -> None:
    """The floor under any framework: a fixed JSON answer to every HTTP request."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError):
            pass
    return total / tick


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [pid] + [int(p) for p in out.stdout.split()]


class Bench:
    def __init__(self, state_dir: Path, workers: int, seconds: float, database_pids=lambda: []):
        self.state_dir, self.workers, self.seconds = state_dir, workers, seconds
        self.database_pids = database_pids  # PostgreSQL's processes, whose CPU counts too
        self.port = 0
        self.server: subprocess.Popen | None = None
        self.tokens: dict[str, str] = {}
        self.cards: list[SoftCard] = []
        self.codes: dict[str, str] = {}
        self.settings = None

    # -- setup -----------------------------------------------------------------------------
    def prepare(self, database_url: str) -> None:
        from .db import Database
        from .tokens import create_client
        self.settings = _fresh_server(self.state_dir, database_url)
        db = Database(self.settings.effective_database_url)
        self.tokens = {role: create_client(db, f"bench-{role}", role)
                       for role in ("terminal", "merchant")}
        db.dispose()
        self.launch("cardshield.server.asgi:create_from_env", dict(
            os.environ, CARDSHIELD_SERVER_DIR=str(self.state_dir),
            CARDSHIELD_DATABASE_URL=database_url))

    def launch(self, app: str, env: dict | None = None) -> None:
        """uvicorn serving `app` (module:factory, or module:app for the bare endpoint)."""
        from .testing.live import free_loopback_port
        self.port = free_loopback_port()
        factory = ["--factory"] if app.endswith("create_from_env") else []
        self.server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *factory, app,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
             "--log-level", "warning", "--no-access-log"], env=env or dict(os.environ))
        deadline = time.monotonic() + 60
        while True:
            try:
                asyncio.run(Connection(self.port).request("GET", "/healthz", ""))
                break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.2)

    async def healthz(self, clients: int = 16, seconds: float = 2.0) -> tuple[float, float]:
        """GET /healthz, no token, no database: the framework's floor (or, served by
        bare_asgi, the floor under any framework). Returns requests/s and server CPU ms
        per request."""
        done, deadline = [0], time.perf_counter() + seconds

        async def client():
            conn = Connection(self.port)
            while time.perf_counter() < deadline:
                await conn.request("GET", "/healthz", "")
                done[0] += 1
            conn.close()
        pids = _children(self.server.pid)
        cpu0, start = _cpu_seconds(pids), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        return done[0] / elapsed, (_cpu_seconds(pids) - cpu0) / max(done[0], 1) * 1000

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(20)
            self.server = None

    # -- figure 5 ----------------------------------------------------------------------------
    async def _enroll(self, conn: Connection, card: SoftCard, user: str) -> None:
        """Figure 5 as a terminal relays it: 4 requests."""
        card.verify(card.pin)
        state = await conn.request("POST", "/v1/enrollments", self.tokens["terminal"],
                                   {"user_id": user, "activation_code": self.codes[user]})
        while state["batch"] is not None:
            state = await conn.request(
                "POST", f"/v1/enrollments/{state['enrollment_id']}/responses",
                self.tokens["terminal"],
                {"seq": state["batch"]["seq"], "responses": relay_batch(state["batch"], card.transmit)})
        assert state["state"] == "completed", state

    async def enroll_all(self, keys: list, concurrency: int = ENROLLMENT_CONCURRENCY,
                         warmup: int = ENROLLMENT_WARMUP, first_user: int = 0) -> EnrollmentLevel:
        """Enroll one card per key, `concurrency` terminals at a time: the first `warmup`
        untimed (each worker process's first requests pay for imports and caches). The
        bank's preparation (cards registered, users, activation codes) is done before,
        in-process, and not timed; so are the cards' keys (generated by the caller). Users
        are numbered from `first_user` (a second level enrolls new users with new cards)."""
        from .context import ServerContext
        ctx = ServerContext.create(self.settings)  # the bank's side, in-process
        try:
            cards = bank_signed_cards(ctx, self.state_dir, keys, keys[-1])
            self.codes.update(_bank_enrollment_codes(
                ctx, [f"bench-user-{first_user + i}" for i in range(len(keys))]))
        finally:
            ctx.db.dispose()
        level = EnrollmentLevel(concurrency)

        async def run(queue: list, workers: int, timed: bool) -> None:
            async def worker():
                conn = Connection(self.port)
                while queue:
                    i, card = queue.pop()
                    started = time.perf_counter()
                    await self._enroll(conn, card, f"bench-user-{i}")
                    if timed:
                        level.latency_ms.append((time.perf_counter() - started) * 1000)
                conn.close()
            await asyncio.gather(*(worker() for _ in range(workers)))

        self.cards += cards  # the payments use the first level's: bench-user-{i} is self.cards[i]
        numbered = list(enumerate(cards, first_user))
        await run(numbered[:warmup], min(concurrency, warmup), False)
        pids, database = _children(self.server.pid), self.database_pids()
        cpu0, database0, client0 = _cpu_seconds(pids), _cpu_seconds(database), time.process_time()
        start = time.perf_counter()
        await run(numbered[warmup:], concurrency, True)
        level.seconds = time.perf_counter() - start
        level.client_cpu_s = time.process_time() - client0
        level.database_cpu_s = _cpu_seconds(self.database_pids()) - database0
        level.server_cpu_s = _cpu_seconds(pids) - cpu0 + level.database_cpu_s
        level.enrollments = len(numbered) - warmup
        return level

    # -- figure 6 ----------------------------------------------------------------------------
    async def _pay(self, conn: Connection, card: SoftCard, user: str, n: int, level: Level) -> None:
        t0 = time.perf_counter()
        # three requests: create, claim (one batch), the card's answers
        created = await conn.request("POST", "/v1/payments", self.tokens["merchant"], {
            "user_id": user, "amount_minor": 1000 + n, "currency": "EUR", "order_ref": f"{user}-{n}"})
        pid, token = created["payment_id"], self.tokens["terminal"]
        state = await conn.request("POST", f"/v1/payments/{pid}/terminal", token)
        responses = relay_batch(state["batch"], card.transmit)
        t1 = time.perf_counter()
        state = await conn.request("POST", f"/v1/payments/{pid}/responses", token,
                                   {"seq": state["batch"]["seq"], "responses": responses})
        t2 = time.perf_counter()
        assert state["state"] == "authorized", state
        level.payments += 1
        level.authorize_ms.append((t2 - t1) * 1000)
        level.payment_ms.append((t2 - t0) * 1000)

    async def payments(self, clients: int, paced_rate: float | None = None) -> Level:
        """`clients` terminals paying in a loop: flat out, or together offering `paced_rate`
        payments per second (each client starts one every clients/paced_rate seconds, on
        a fixed schedule offset per client; one that falls behind starts the next at once)."""
        level = Level(clients, paced_rate)
        deadline = 0.0
        counter = [0]

        async def client(i: int):
            conn, card, user = Connection(self.port), self.cards[i], f"bench-user-{i}"
            card.verify(card.pin)
            period = clients / paced_rate if paced_rate else 0.0
            due = start + period * i / clients
            while time.perf_counter() < deadline:
                if period:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    due += period
                    if time.perf_counter() >= deadline:
                        break
                counter[0] += 1
                await self._pay(conn, card, user, counter[0], level)
            conn.close()
        # warm-up (not counted): one payment per client
        warm = Level(clients)
        await asyncio.gather(*(self._pay(Connection(self.port), self.cards[i], f"bench-user-{i}",
                                         10_000_000 + i, warm) for i in range(clients)))
        pids, database = _children(self.server.pid), self.database_pids()
        cpu0, database0, client0 = _cpu_seconds(pids), _cpu_seconds(database), time.process_time()
        start = time.perf_counter()
        deadline = start + self.seconds
        await asyncio.gather(*(client(i) for i in range(clients)))
        level.seconds = time.perf_counter() - start
        level.client_cpu_s = time.process_time() - client0
        # a backend started during the level is counted whole (it did only this level's work)
        database_now = self.database_pids()
        level.database_cpu_s = (_cpu_seconds(database_now) - database0
                                + 0 * len(set(database_now) - set(database)))
        level.server_cpu_s = _cpu_seconds(pids) - cpu0 + level.database_cpu_s
        return level


@dataclass
class DatabaseRun:
    """One database's figures."""
    name: str
    services: ServiceFloor
    enrollment_services: EnrollmentFloor
    enrollment: EnrollmentLevel
    levels: list[Level]
    enrollment_cpu_bound: EnrollmentLevel | None = None  # at ENROLLMENT_CPU_BOUND_CONCURRENCY

    @property
    def enroll_rate(self) -> float:
        return self.enrollment.rate


def _private_postgres():
    """A throw-away PostgreSQL cluster with its crash-safe defaults (fsync on) and a
    function listing its processes, or None and the reason this machine cannot run one."""
    from cardshield.testing import postgres
    try:
        cluster = postgres.start(durable=True)
    except postgres.PostgresError as exc:
        return None, str(exc)
    postmaster = int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])
    return (cluster, lambda: _children(postmaster)), None


def run(seconds: float = 5.0, workers: int = 2, database_url: str | None = None,
        out: Path | None = None) -> int:
    from .settings import _repo_root
    root = _repo_root()
    state_dir, floor_dir = root / "var" / "bench" / "server", root / "var" / "bench" / "floor"
    _say("RSA-2048 floor with cryptography (1 s each) ...")
    floor = rsa_floor()
    _say(f"  sign {floor.sign_per_s:,.0f}/s ({floor.sign_cpu_ms:.2f} ms CPU), verify "
         f"{floor.verify_per_s:,.0f}/s ({floor.verify_cpu_ms:.3f} ms CPU)")
    cards = ENROLLMENT_WARMUP + ENROLLMENTS  # the first max(LEVELS) of them pay afterwards
    _say(f"generating {2 * cards} card keys (the SoftCards' on-card keygen, not measured) ...")
    keys, second_keys = ([rsa.generate_private_key(public_exponent=65537, key_size=2048)
                          for _ in range(cards)] for _level in range(2))

    floors = Bench(state_dir, workers, seconds)
    floors.launch("cardshield.server.bench:bare_asgi")
    try:
        bare = asyncio.run(floors.healthz())
    finally:
        floors.stop()
    _say(f"bare ASGI endpoint: {bare[0]:,.0f}/s, {bare[1]:.3f} ms server CPU each")
    _say("attestation verification alone (in-process) ...")
    attestation_ms = attestation_floor(root / "var" / "bench" / "attestation", keys[0], keys[1])
    _say(f"  {attestation_ms:.3f} ms CPU per enrollment (budget 1 ms)")
    issuance_ms = issuance_floor(root / "var" / "bench" / "attestation", keys[0])
    _say(f"CA issuance alone (certificate built + RSA-3072 signature): {issuance_ms:.2f} ms CPU")

    targets: list[tuple[str, str, str, object]] = []  # name, HTTP run's URL, floor's URL, pids
    if database_url:
        targets.append((database_url.split(":")[0].split("+")[0], database_url, database_url,
                        lambda: []))
        postgres, why_not = None, None
    else:
        targets.append(("sqlite", f"sqlite:///{state_dir / 'bench.db'}",
                        f"sqlite:///{floor_dir / 'floor.db'}", lambda: []))
        postgres, why_not = _private_postgres()
    if postgres:
        cluster, pids = postgres
        targets.append(("postgresql", cluster.url, cluster.url, pids))
    elif why_not:
        _say(f"PostgreSQL skipped: {why_not}")
    runs, framework = [], None
    try:
        for name, url, floor_url, database_pids in targets:
            _say(f"{name}: payment services without HTTP (in-process) ...")
            services = service_floor(floor_dir, keys[0], keys[1], floor_url, database_pids)
            _say(f"  {services.cpu_ms:.2f} ms CPU + database {services.database_cpu_ms:.2f} ms"
                 + (f", {services.round_trips:.1f} round trips" if services.round_trips else ""))
            _say(f"{name}: enrollment services without HTTP (in-process) ...")
            enrollment_services = enrollment_floor(floor_dir, keys[2:47], keys[1], floor_url,
                                                   database_pids)
            _say(f"  {enrollment_services.cpu_ms:.2f} ms CPU + database "
                 f"{enrollment_services.database_cpu_ms:.2f} ms per enrollment")
            if not url.startswith("sqlite"):
                _reset_postgres(url)
            bench = Bench(state_dir, workers, seconds, database_pids)
            _say(f"{name}: uvicorn with {workers} workers on loopback")
            bench.prepare(url)
            try:
                if framework is None:
                    framework = asyncio.run(bench.healthz())
                    _say(f"framework floor: GET /healthz {framework[0]:,.0f}/s, "
                         f"{framework[1]:.3f} ms server CPU each")
                enrollment = asyncio.run(bench.enroll_all(keys))
                _say(f"enrollment: {enrollment.rate:,.1f} certificates/s at {enrollment.concurrency} "
                     f"terminals; server CPU {enrollment.per(enrollment.server_cpu_s):.2f} ms, client "
                     f"CPU {enrollment.per(enrollment.client_cpu_s):.2f} ms per enrollment")
                levels = []
                for clients in LEVELS:
                    level = asyncio.run(bench.payments(clients))
                    levels.append(level)
                paced = asyncio.run(bench.payments(
                    PACED_CLIENTS, PACED_SHARE * _flat_out(levels, PACED_CLIENTS).rate))
                levels.append(paced)
                cpu_bound = asyncio.run(bench.enroll_all(
                    second_keys, ENROLLMENT_CPU_BOUND_CONCURRENCY, first_user=len(keys)))
                _say(f"enrollment: {cpu_bound.rate:,.1f} certificates/s at {cpu_bound.concurrency} "
                     f"terminals; server CPU {cpu_bound.per(cpu_bound.server_cpu_s):.2f} ms, client "
                     f"CPU {cpu_bound.per(cpu_bound.client_cpu_s):.2f} ms per enrollment")
                for level in levels:
                    _say(f"  {level.label} clients: {level.rate:,.1f} authorizations/s; authorize p50 "
                         f"{_pct(level.authorize_ms, .5):.1f} ms p99 {_pct(level.authorize_ms, .99):.1f} ms; "
                         f"server CPU {level.server_cpu_s / max(level.payments, 1) * 1000:.2f} ms/auth")
            finally:
                bench.stop()
            runs.append(DatabaseRun(name, services, enrollment_services, enrollment, levels,
                                    cpu_bound))
    finally:
        if postgres:
            from cardshield.testing.postgres import stop
            stop(postgres[0].directory)
    out = out or root / "docs" / "benchmarks.md"
    _write_section(out, _report(floor, bare, framework, runs, workers, why_not, attestation_ms,
                                issuance_ms))
    _say(f"wrote {out}")
    return 0


def _flat_out(levels: list[Level], clients: int) -> Level:
    return next(lv for lv in levels if lv.clients == clients and lv.paced_rate is None)


def _reset_postgres(url: str) -> None:
    """Drop what the service floor left, so the HTTP run starts from an empty schema."""
    from sqlalchemy import create_engine, text

    from .db import normalize_url
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


GOALS_MS = {"sqlite": 1.5, "postgresql": 2.1}
ENROLLMENT_GOAL = 100.0  # certificates issued per second
PAYMENT_REQUESTS = 3  # Bench._pay: create, claim, the card's answers
ROUND_TRIP_BUDGET = 5  # per complete payment on PostgreSQL (tests/server/test_round_trips.py)


def _report(floor: Floor, bare: tuple[float, float], framework: tuple[float, float],
            runs: list[DatabaseRun], workers: int, why_not: str | None,
            attestation_ms: float, issuance_ms: float) -> str:
    cores = os.cpu_count() or 1
    per = lambda lv, cpu: cpu / lv.payments * 1000 if lv.payments else float("nan")
    lines = [
        SECTION_START,
        "## Authentication server",
        "",
        f"`./cardshield bench server`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{cores} cores ({platform.machine()}), Python {platform.python_version()}, "
        f"uvicorn with {workers} worker processes, loopback HTTP/1.1 keep-alive, SoftCard "
        "answers (one RSA-2048 signature per payment in the client). Durable settings only: "
        "SQLite in WAL mode with synchronous=FULL (every commit fsynced) and group commit; "
        "PostgreSQL in a private cluster with fsync and synchronous_commit on. Load average "
        f"when the run ended: {_loadavg()}. The machine is shared with other work, so the "
        "figures are noisy: compare ratios within this run.",
        "",
        "An authorization is a complete figure 6 payment in the bank-signed mode (the card's "
        f"payment slot requires the server's signature, tag 8E): {PAYMENT_REQUESTS} requests "
        "(the merchant creates the payment; the terminal's claim is answered with one batch: "
        "SELECT, the certificate reference, SIGN TRANSACTION; the terminal posts the card's "
        "answers), one certificate validation against the CA, one ECDSA P-256 signature by the "
        "bank's request key (the bank key of the default card, one with EC; a card without EC, "
        "such as a SIM, holds the RSA-2048 one) and one RSA-2048 verification.",
        "",
        f"Floors measured in the same run: RSA-2048 sign {floor.sign_cpu_ms:.2f} ms CPU, verify "
        f"{floor.verify_cpu_ms:.3f} ms CPU (one core). A bare ASGI endpoint under uvicorn: "
        f"{bare[1]:.3f} ms server CPU per request ({bare[0]:,.0f}/s at 16 clients). The "
        f"framework's floor, `GET /healthz` through FastAPI: {framework[1]:.3f} ms "
        f"({framework[0]:,.0f}/s).",
        "",
        *_enrollment_report(runs, floor, attestation_ms, issuance_ms, cores),
        "### Payments",
        "",
        "Round trips: request/response exchanges between the server and PostgreSQL during "
        f"one complete payment (create, claim, final post; tokens cached by the replica), "
        f"counted on the wire by a TCP proxy in front of the database (budget {ROUND_TRIP_BUDGET}).",
        "",
        "| database | payment services alone (CPU / auth) | of which database | round trips / payment |",
        "|---|---:|---:|---:|",
    ]
    for r in runs:
        trips = f"{r.services.round_trips:.1f}" if r.services.round_trips else "in-process"
        database = ("in the server process" if r.name == "sqlite"
                    else f"{r.services.database_cpu_ms:.2f} ms")
        lines.append(f"| {r.name} | {r.services.cpu_ms + r.services.database_cpu_ms:.2f} ms | "
                     f"{database} | {trips} |")
    lines += [
        "",
        f"The last level of each database is {PACED_CLIENTS} clients whose offered load is paced "
        f"at {PACED_SHARE:.0%} of what {PACED_CLIENTS} clients reached flat out (each client "
        "starts a payment on a fixed schedule), to tell the p99 apart into service time and "
        "queueing.",
        "",
        "| database | clients | authorizations/s | authorize p50 | authorize p99 | payment p50 "
        "| payment p99 | server CPU / auth | of which database | client CPU / auth |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        for lv in r.levels:
            lines.append(
                f"| {r.name} | {lv.label} | {lv.rate:,.1f} | {_pct(lv.authorize_ms, .5):.1f} ms | "
                f"{_pct(lv.authorize_ms, .99):.1f} ms | {_pct(lv.payment_ms, .5):.1f} ms | "
                f"{_pct(lv.payment_ms, .99):.1f} ms | {per(lv, lv.server_cpu_s):.2f} ms | "
                + ("in-process" if r.name == "sqlite" else f"{per(lv, lv.database_cpu_s):.2f} ms")
                + f" | {per(lv, lv.client_cpu_s):.2f} ms |")
    lines += ["", "### Where the time goes", ""]
    for r in runs:
        busiest = _flat_out(r.levels, max(LEVELS))
        server = per(busiest, busiest.server_cpu_s)
        services = r.services.cpu_ms + r.services.database_cpu_ms
        http = server - services
        goal = GOALS_MS.get(r.name)
        verdict = f" (goal {goal} ms: {'met' if server <= goal else 'not met'})" if goal else ""
        if http > 0:
            rest = (f"The other {http:.2f} ms ({http / PAYMENT_REQUESTS:.2f} ms per request, "
                    f"against {framework[1]:.2f} ms for /healthz and {bare[1]:.3f} ms for a bare "
                    "endpoint) are HTTP in uvicorn, the framework, JSON and pydantic, the token check "
                    "and the hand-over to the database (SQLite: the writer thread; PostgreSQL: none, "
                    "asyncpg runs on the event loop).")
        else:  # the services alone pay each commit and wake-up by themselves; under load they are shared
            rest = (f"The whole server costs {-http:.2f} ms less than the services measured alone: "
                    "under load the writer shares commits and wake-ups that the services alone pay "
                    "one by one, which hides HTTP's share here (the 1-client row below shows it).")
        lines.append(
            f"- {r.name}, {busiest.clients} clients: {server:.2f} ms of server CPU per "
            f"authorization{verdict}. The payment services alone take {services:.2f} ms of it: "
            f"{_services_split(r, floor)}. {rest}")
    for r in runs:
        lines.append(_p99_explained(r, per))
    for r in runs:
        alone = r.levels[0]
        extra = per(alone, alone.server_cpu_s) - r.services.cpu_ms - r.services.database_cpu_ms
        lines.append(
            f"- {r.name}, how to read the CPU split: the services alone commit each of the "
            f"{PAYMENT_REQUESTS} transactions of a payment by themselves, while under load the "
            "server shares commits and wake-ups, so at 64 clients the difference understates "
            f"what HTTP costs; with {alone.clients} client, where nothing is shared, the server "
            f"spends {extra:.2f} ms above the services ({extra / PAYMENT_REQUESTS:.2f} ms per "
            "request).")
    client = _flat_out(runs[0].levels, max(LEVELS))
    lines += [
        "",
        f"The client (the SoftCards and the HTTP client) shares the {cores} cores and spends "
        f"{per(client, client.client_cpu_s):.2f} ms of CPU per authorization, "
        f"{floor.sign_cpu_ms:.2f} ms of it the card's RSA-2048 signature that a real card "
        "computes itself; it is not part of the server figures.",
    ]
    if why_not:
        lines += ["", f"PostgreSQL was not measured in this run: {why_not}."]
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def _services_split(r: DatabaseRun, floor: Floor) -> str:
    """Where the services' CPU goes, from the floor's per-step figures."""
    bank_key = ((f"the bank's 8E signature {floor.ec_bank_sign_cpu_ms:.3f} ms with the EC P-256 bank key "
                 "these cards hold, " if floor.ec_bank_sign_cpu_ms else "the bank's 8E signature ")
                + f"{floor.sign_cpu_ms:.2f} ms with the RSA-2048 one of a card without EC")
    verify = f"the card signature's verification {floor.verify_cpu_ms:.2f} ms"
    steps = r.services.steps
    if steps is None:
        return f"{bank_key}, {verify}, the rest SQL, APDU batches and the checks"
    text = (f"create {steps.create_ms:.2f} ms, claim {steps.claim_ms:.2f} ms ({bank_key}), "
            f"final post {steps.final_ms:.2f} ms ({verify})")
    if r.name == "postgresql":
        text += (f"; plus PostgreSQL's own {r.services.database_cpu_ms:.2f} ms for "
                 f"{r.services.round_trips or 0:.0f} round trips and 3 durable commits")
    if steps.writer_ms is not None:
        text += (f"; {steps.writer_ms:.2f} ms of the three is the writer thread: the statements "
                 f"and {PAYMENT_REQUESTS} durable commits, each alone here, shared under load")
    return text


def _p99_explained(r: DatabaseRun, per) -> str:
    """The authorize p99 of the busiest flat-out level against its service time (the p50
    with one client, where nothing queues) and against the paced level of as many clients."""
    alone, busiest = r.levels[0], _flat_out(r.levels, max(LEVELS))
    paced = next((lv for lv in r.levels if lv.paced_rate), None)
    service = _pct(alone.authorize_ms, .5)
    p99 = _pct(busiest.authorize_ms, .99)
    text = (f"- {r.name}, authorize p99 at {busiest.clients} clients flat out: {p99:.0f} ms "
            f"(goal 50 ms: {'met' if p99 <= 50 else 'not met'}) at {busiest.rate:,.0f} "
            f"authorizations/s. Its service time is {service:.1f} ms (p50 with {alone.clients} "
            f"client, nothing queued; {per(busiest, busiest.server_cpu_s) / PAYMENT_REQUESTS:.2f} ms "
            f"of server CPU per request), so {max(p99 - service, 0):.0f} ms of that p99 are waiting: "
            f"{busiest.clients} clients keep up to {busiest.clients} requests in a server of "
            f"{os.cpu_count() or 1} cores shared with the load generator, and each waits behind "
            "the others' CPU.")
    if paced is not None:
        paced_p99 = _pct(paced.authorize_ms, .99)
        text += (f" Paced at {paced.paced_rate:,.0f}/s offered ({paced.rate:,.0f}/s served), the same "
                 f"{paced.clients} clients see an authorize p99 of {paced_p99:.0f} ms "
                 f"(goal {'met' if paced_p99 <= 50 else 'not met'}) and p50 "
                 f"{_pct(paced.authorize_ms, .5):.1f} ms: the p99 follows the load offered, not the "
                 "number of clients.")
    return text


def _enrollment_report(runs: list[DatabaseRun], floor: Floor, attestation_ms: float,
                       issuance_ms: float, cores: int) -> list[str]:
    first = runs[0].enrollment
    lines = [
        "### Enrollment",
        "",
        f"{first.enrollments} certificates issued over HTTP by {first.concurrency} concurrent "
        f"terminals (after {ENROLLMENT_WARMUP} not counted), each a figure 5 enrollment of "
        f"{ENROLLMENT_REQUESTS} requests and as many write transactions (start with the "
        "activation code; the card's answers to GENERATE; to READ PUBLIC KEY, PROVE POSSESSION "
        "and ATTEST; to the certificate's store and read-back): key checks, a proof-of-possession "
        "verification, the card attestation verified, a CA RSA-3072 signature. The cards' keys "
        "are generated before the timed part (on a real card the card generates them); the "
        "client's CPU (the SoftCards' two RSA-2048 signatures per enrollment, PROVE POSSESSION "
        "and ATTEST, and the HTTP client) is counted apart from the server's.",
        "",
        f"Alone, in-process: one CA issuance (the certificate built and signed with the "
        f"RSA-3072 CA key) takes {issuance_ms:.2f} ms CPU; one attestation verification "
        "(statement parsing, the card certificate's chain to the attestation CA, the "
        f"statement's RSA-2048 signature, challenge/slot/key checks) {attestation_ms:.3f} ms "
        f"(budget 1 ms); the proof of possession one RSA-2048 verification "
        f"({floor.verify_cpu_ms:.3f} ms).",
        "",
        "| database | certificates/s | terminals | enrollment p50 | enrollment p99 | server CPU / enrollment "
        "| of which database | enrollment services alone (CPU) | client CPU / enrollment |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, e in ((r, e) for r in runs for e in (r.enrollment, r.enrollment_cpu_bound) if e):
        alone = r.enrollment_services
        database = "in-process" if r.name == "sqlite" else f"{e.per(e.database_cpu_s):.2f} ms"
        services = alone.cpu_ms + alone.database_cpu_ms
        lines.append(f"| {r.name} | {e.rate:,.1f} | {e.concurrency} | {_pct(e.latency_ms, .5):.0f} ms "
                     f"| {_pct(e.latency_ms, .99):.0f} ms | {e.per(e.server_cpu_s):.2f} ms | {database} "
                     f"| {services:.2f} ms | {e.per(e.client_cpu_s):.2f} ms |")
    lines += ["", "Where the time of an enrollment goes:", ""]
    for r in runs:
        e, wide = r.enrollment, r.enrollment_cpu_bound
        server, client = e.per(e.server_cpu_s), e.per(e.client_cpu_s)
        services = r.enrollment_services.cpu_ms + r.enrollment_services.database_cpu_ms
        met = max(e.rate, wide.rate if wide else 0.0) >= ENROLLMENT_GOAL
        rates = f"{e.rate:,.1f} certificates issued per second" + (
            f" at {e.concurrency} terminals and {wide.rate:,.1f} at {wide.concurrency}" if wide else "")
        text = (f"- {r.name}: {rates} (goal "
                f"{ENROLLMENT_GOAL:.0f}: {'met' if met else 'not met'}). The server spends "
                f"{server:.2f} ms of CPU per enrollment: the services {services:.2f} ms (of which "
                f"the CA issuance {issuance_ms:.2f} ms, attestation and proof of possession "
                f"{attestation_ms + floor.verify_cpu_ms:.2f} ms; the rest SQL in "
                f"{ENROLLMENT_REQUESTS} transactions, the activation code, key checks and APDU "
                f"batches) and {max(server - services, 0):.2f} ms HTTP, framework and JSON for "
                f"{ENROLLMENT_REQUESTS} requests. The client spends {client:.2f} ms, "
                f"{2 * floor.sign_cpu_ms:.2f} ms of it the SoftCards' two signatures. On these "
                f"{cores} cores the server alone could issue at most {cores * 1000 / server:,.0f}/s "
                f"and, sharing them with this load generator, {cores * 1000 / (server + client):,.0f}/s; "
                f"the CA signature alone would allow {cores * 1000 / issuance_ms:,.0f}/s.")
        if r.name == "sqlite":
            writes = r.enrollment_services.write_ms
            text += (f" SQLite runs the write transactions on one writer at a time (the writer "
                     f"lock spans the worker processes): {writes:.2f} ms of the services' CPU per "
                     f"enrollment (each of its {ENROLLMENT_REQUESTS} transactions committing alone "
                     f"here; the checks, the signature included, run outside it), which caps it at "
                     f"{1000 / writes:,.0f}/s whatever the cores.")
        mean = sum(e.latency_ms) / len(e.latency_ms) if e.latency_ms else float("nan")
        text += (f" At {e.concurrency} terminals the rate is the terminals over the time one "
                 f"enrollment takes ({e.concurrency} / {mean:.0f} ms = "
                 f"{e.concurrency * 1000 / mean:,.0f}/s): its {ENROLLMENT_REQUESTS} round trips "
                 "each wait behind the others' CPU.")
        if wide:
            text += (f" At {wide.concurrency} terminals, where the CPU bounds the rate: "
                     f"{wide.rate:,.1f}/s with {wide.per(wide.server_cpu_s):.2f} ms server CPU and "
                     f"{wide.per(wide.client_cpu_s):.2f} ms client CPU per enrollment (p50 "
                     f"{_pct(wide.latency_ms, .5):.0f} ms).")
        if not met:
            need_server, need_client = ENROLLMENT_GOAL * server / 1000, ENROLLMENT_GOAL * client / 1000
            if need_server + need_client <= cores:
                text += (f" The CPU of {ENROLLMENT_GOAL:.0f}/s ({need_server:.1f} cores for the server, "
                         f"{need_client:.1f} for this load generator) fits in these {cores} cores: "
                         "what this run lacked is the CPU that other work on the machine took "
                         f"(load average {_loadavg()} at the end), not the server's cost.")
            else:
                text += (f" {ENROLLMENT_GOAL:.0f}/s needs {need_server:.1f} cores of server CPU at "
                         f"this cost per enrollment and {need_client:.1f} for this load generator: "
                         f"more than these {cores} cores.")
        lines.append(text)
    lines.append("")
    return lines


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
