"""The payment path's database work: one small store interface, two implementations.

PaymentService (payment.py) holds every rule of figure 6 once, in Python. It reads a
snapshot, decides, composes and signs outside any write transaction, and then asks the
store for one conditional write whose WHERE clauses re-check everything that another
transaction could have changed since (the compare-and-sets stay the source of truth). When
a conditional write matches nothing the store says so (`LostRace`) and the service reads a
fresh snapshot to say why, with the same rules.

    create      one INSERT ... SELECT ... RETURNING: the merchant's refusal window, the
                user (not blocked), the active payment certificate and its card (not
                blocked, attested if required), the payee and signing mode
    claim       a snapshot read, then one UPDATE ... WHERE state = 'created' ... that
                re-checks the user, the certificate and the card
    authorize   one transaction: the card row's counter compare-and-set (still not
                blocked, certificate still the user's active one with the posted reference
                and valid now, user not blocked, counter within max_counter_jump), the
                payment row's nonce compare-and-set, failure counters reset, the audit row.
                PostgreSQL: the function cs_authorize_payment (migration 0005), one round
                trip; SQLite: the same statements in one short transaction of the writer.
    refused     the refusal's consequences in their own transaction (the refused work
                wrote nothing): the payment ended, failure counts, the client's refusal
                window, the audit rows.

The statements are written once, in PostgreSQL's syntax with $n parameters and explicit
casts; the SQLite store drops the casts and numbers its parameters ?n (SQLite >= 3.35 for
RETURNING). SqlitePaymentStore runs them on the DB-API connection (no ORM session, no
SQLAlchemy statement compilation): reads on a snapshot connection on the event loop,
writes as a savepoint of the group-commit writer's batch (db.GroupCommitWriter).
PostgresPaymentStore (payment_postgres.py) runs them through asyncpg on the event loop.
"""
from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Protocol

from .db import Database

OPEN_STATES = ("created", "cert_requested", "sign_requested")
PAYMENT_SLOT = 1  # ca.PAYMENT_SLOT (not imported: the store needs no CA)


class LostRace(Exception):
    """A conditional write matched nothing: something changed since the snapshot."""


# -- typed rows ------------------------------------------------------------------------------
@dataclass
class PaymentRecord:
    """A payments row with its user's id, failure count and block, and the asking client's
    refusal window."""
    id: str
    merchant_client_id: int
    terminal_client_id: int | None
    user_id: int
    amount_minor: int
    currency: str
    payee: str
    order_ref: str
    signing_mode: str
    state: str
    seq: int
    pending_batch: str | None
    card_id: int | None
    certificate_serial_hex: str | None
    nonce: bytes | None
    nonce_expires_at: datetime | None
    nonce_used_at: datetime | None
    signed_fields: bytes | None
    card_counter: int | None
    signature: bytes | None
    refusal_code: str | None
    created_at: datetime
    expires_at: datetime
    authorized_at: datetime | None
    user_external_id: str
    user_failures: int
    user_blocked_at: datetime | None
    client_refusals: int
    client_refusals_since: datetime | None


@dataclass(frozen=True)
class CardKey:
    """A payment certificate and the card row of its key (counter, block, policy)."""
    serial_hex: str
    sha256: str
    status: str
    user_id: int
    slot: int
    not_before: datetime
    not_after: datetime
    revocation_reason: str | None
    card_id: int
    public_key_der: bytes
    last_counter: int
    card_failures: int
    blocked_at: datetime | None
    requires_server_signature: bool
    attested: bool
    bank_key_algorithm: int | None  # the bank key the card checks 8E with (bank_signature.py)


@dataclass(frozen=True)
class PaymentSnapshot:
    """A payment and a certificate with its card: the user's active payment certificate
    (claim) or the one chosen at the claim (final post, reads)."""
    payment: PaymentRecord
    key: CardKey | None


@dataclass(frozen=True)
class CreateSnapshot:
    """What a refused create is explained from."""
    client_refusals: int
    client_refusals_since: datetime | None
    user_id: int | None
    user_blocked_at: datetime | None
    key: CardKey | None


@dataclass(frozen=True)
class NewPayment:
    id: str
    merchant_client_id: int
    user_external_id: str
    amount_minor: int
    currency: str
    order_ref: str
    created_at: datetime
    expires_at: datetime
    accept_unattested: bool
    refusal_limit: int
    refusal_window_start: datetime


@dataclass(frozen=True)
class Created:
    user_id: int
    payee: str
    signing_mode: str


@dataclass(frozen=True)
class Claim:
    payment_id: str
    terminal_client_id: int
    card_id: int
    certificate_serial_hex: str
    nonce: bytes
    signed_fields: bytes
    signing_mode: str
    nonce_expires_at: datetime
    pending_batch: str
    now: datetime


@dataclass(frozen=True)
class Authorization:
    payment_id: str
    terminal_client_id: int
    seq: int
    card_id: int
    certificate_serial_hex: str
    user_id: int
    reference_hex: str  # SHA-256 of the certificate, as the card's FCP (tag 85) gave it
    counter: int
    signature: bytes
    max_counter_jump: int
    now: datetime
    detail: str  # the audit row's


@dataclass(frozen=True)
class Authorized:
    """What the authorize write committed (on SQLite, the writer job's result)."""
    payment_id: str
    counter: int
    state: str = "authorized"


@dataclass(frozen=True)
class Refusal:
    """A refusal's consequences, written after the refused work was rolled back."""
    action: str
    code: str
    detail: str
    now: datetime
    client_id: int | None
    payment_id: str | None = None
    user_external_id: str | None = None
    user_id: int | None = None
    card_id: int | None = None
    serial_hex: str | None = None
    end_state: str | None = None  # 'refused' | 'expired': the payment ends
    count_failure: bool = False  # a failed authentication of the user and card
    max_failures: int = 5
    end_if_blocked: bool = False  # ... and if that blocked them, the payment ends
    count_client: bool = False  # against the asking client's refusal window
    window_start: datetime | None = None
    suspicious: bool = False  # a payment.suspicious audit row too


class PaymentStore(Protocol):
    async def client_by_token(self, digest: str) -> tuple[int, str, datetime | None] | None: ...
    async def create(self, new: NewPayment) -> Created | None: ...
    async def create_snapshot(self, merchant_id: int, user_external_id: str) -> CreateSnapshot: ...
    async def snapshot(self, payment_id: str, client_id: int, *, active_key: bool) -> PaymentSnapshot | None: ...
    async def claim(self, claim: Claim) -> bool: ...
    async def expire(self, payment_id: str) -> None: ...
    async def authorize(self, a: Authorization) -> Authorized: ...  # or raises LostRace
    async def refused(self, r: Refusal) -> None: ...
    async def close(self) -> None: ...


# -- the statements (PostgreSQL syntax; SqlitePaymentStore translates) -----------------------
_PAYMENT_COLUMNS = [f.name for f in fields(PaymentRecord)][:24]
_KEY_COLUMNS = ", ".join(
    f"{table}.{column} AS key_{alias or column}" for table, column, alias in (
        ("ce", "serial_hex", None), ("ce", "sha256", None), ("ce", "status", None),
        ("ce", "user_id", None), ("ce", "slot", None), ("ce", "not_before", None),
        ("ce", "not_after", None), ("ce", "revocation_reason", None), ("k", "id", "card_id"),
        ("k", "public_key_der", None), ("k", "last_counter", None),
        ("k", "consecutive_failures", "card_failures"), ("k", "blocked_at", None),
        ("k", "requires_server_signature", None), ("k", "attested", None),
        ("k", "bank_key_algorithm", None)))


def _active_certificate(user: str) -> str:
    """The serial of the user's active payment certificate (the latest stored)."""
    return (f"(SELECT a.serial_hex FROM certificates a WHERE a.user_id = {user} AND "
            f"a.slot = {PAYMENT_SLOT} AND a.status = 'active' ORDER BY a.stored_at DESC LIMIT 1)")


_SNAPSHOT = (
    "SELECT " + ", ".join(f"p.{c}" for c in _PAYMENT_COLUMNS) + ", "
    "u.external_id AS user_external_id, u.consecutive_failures AS user_failures, "
    "u.blocked_at AS user_blocked_at, c.refusals AS client_refusals, "
    "c.refusals_since AS client_refusals_since, " + _KEY_COLUMNS + " "
    "FROM payments p JOIN users u ON u.id = p.user_id JOIN api_clients c ON c.id = $2::integer "
    "LEFT JOIN certificates ce ON ce.serial_hex = {certificate} "
    "LEFT JOIN cards k ON k.id = ce.card_id WHERE p.id = $1::text")
SNAPSHOT_CLAIMED = _SNAPSHOT.format(certificate="p.certificate_serial_hex")
SNAPSHOT_ACTIVE = _SNAPSHOT.format(certificate=_active_certificate("p.user_id"))

CREATE_SNAPSHOT = (
    "SELECT m.refusals AS client_refusals, m.refusals_since AS client_refusals_since, "
    "u.id AS user_id, u.blocked_at AS user_blocked_at, " + _KEY_COLUMNS + " "
    "FROM api_clients m LEFT JOIN users u ON u.external_id = $2::text "
    "LEFT JOIN certificates ce ON ce.serial_hex = " + _active_certificate("u.id") + " "
    "LEFT JOIN cards k ON k.id = ce.card_id WHERE m.id = $1::integer")

# Every create check in the one statement; no row: the service explains from CREATE_SNAPSHOT.
CREATE = (
    "INSERT INTO payments (id, merchant_client_id, user_id, amount_minor, currency, payee, "
    "order_ref, signing_mode, state, seq, created_at, expires_at) "
    "SELECT $1::text, m.id, u.id, $4::bigint, $5::text, COALESCE(m.display_name, m.name), "
    "$6::text, CASE WHEN k.requires_server_signature THEN 'server_signed' ELSE 'transaction' "
    "END, 'created', 0, $7::timestamp, $8::timestamp "
    "FROM api_clients m, users u JOIN certificates ce ON ce.serial_hex = "
    + _active_certificate("u.id") + " JOIN cards k ON k.id = ce.card_id "
    "WHERE m.id = $2::integer AND u.external_id = $3::text AND u.blocked_at IS NULL "
    "AND k.blocked_at IS NULL AND ($9::boolean OR k.attested) "
    "AND NOT (m.refusals >= $10::integer AND m.refusals_since IS NOT NULL "
    "AND m.refusals_since > $11::timestamp) "
    "RETURNING user_id, payee, signing_mode")

# 601-606: the terminal takes the payment, if nothing changed since the snapshot.
CLAIM = (
    "UPDATE payments SET terminal_client_id = $2::integer, seq = 1, state = 'sign_requested', "
    "card_id = $3::integer, certificate_serial_hex = $4::text, nonce = $5::bytea, "
    "signed_fields = $6::bytea, signing_mode = $7::text, nonce_expires_at = $8::timestamp, "
    "pending_batch = $9::text "
    "WHERE id = $1::text AND state = 'created' AND terminal_client_id IS NULL "
    "AND expires_at > $10::timestamp "
    "AND EXISTS (SELECT 1 FROM users u WHERE u.id = payments.user_id AND u.blocked_at IS NULL) "
    "AND EXISTS (SELECT 1 FROM certificates ce JOIN cards k ON k.id = ce.card_id "
    "WHERE ce.serial_hex = $4::text AND ce.status = 'active' AND k.id = $3::integer "
    "AND k.blocked_at IS NULL)")

EXPIRE = ("UPDATE payments SET state = 'expired', pending_batch = NULL, "
          "refusal_code = 'payment_expired' WHERE id = $1::text AND state IN "
          + str(OPEN_STATES))

# 608, in one transaction (the body of cs_authorize_payment on PostgreSQL). Parameters:
# $1 payment, $2 terminal, $3 seq, $4 card, $5 serial, $6 user, $7 reference (hex),
# $8 counter, $9 signature, $10 max jump, $11 now, $12 audit detail.
AUTHORIZE_COUNTER = (
    "UPDATE cards SET last_counter = $8::bigint WHERE id = $4::integer "
    "AND last_counter < $8::bigint "
    "AND (last_counter >= $8::bigint - $10::bigint OR $8::bigint <= $10::bigint) "
    "AND blocked_at IS NULL "
    "AND EXISTS (SELECT 1 FROM certificates ce WHERE ce.serial_hex = $5::text "
    "AND ce.card_id = $4::integer AND ce.status = 'active' AND ce.sha256 = $7::text "
    f"AND ce.user_id = $6::integer AND ce.slot = {PAYMENT_SLOT} "
    "AND ce.not_before <= $11::timestamp AND ce.not_after > $11::timestamp) "
    "AND EXISTS (SELECT 1 FROM users u WHERE u.id = $6::integer AND u.blocked_at IS NULL)")
AUTHORIZE_NONCE = (
    "UPDATE payments SET state = 'authorized', nonce_used_at = $11::timestamp, "
    "authorized_at = $11::timestamp, card_counter = $8::bigint, signature = $9::bytea, "
    "pending_batch = NULL WHERE id = $1::text AND state = 'sign_requested' "
    "AND nonce_used_at IS NULL AND terminal_client_id = $2::integer AND seq = $3::integer "
    "AND expires_at > $11::timestamp AND nonce_expires_at > $11::timestamp")
RESET_USER_FAILURES = ("UPDATE users SET consecutive_failures = 0 "
                       "WHERE id = $6::integer AND consecutive_failures <> 0")
RESET_CARD_FAILURES = ("UPDATE cards SET consecutive_failures = 0 "
                       "WHERE id = $4::integer AND consecutive_failures <> 0")
AUDIT_AUTHORIZED = (
    "INSERT INTO audit_events (at, action, outcome, client_id, card_id, payment_id, "
    "certificate_serial_hex, detail) VALUES ($11::timestamp, 'payment.authorize', 'ok', "
    "$2::integer, $4::integer, $1::text, $5::text, $12::text)")

# Refusals (their own transaction).
END_PAYMENT = ("UPDATE payments SET state = $2::text, refusal_code = $3::text, "
               "pending_batch = NULL WHERE id = $1::text AND state IN " + str(OPEN_STATES))
END_IF_BLOCKED = (
    "UPDATE payments SET state = 'refused', refusal_code = $2::text, pending_batch = NULL "
    "WHERE id = $1::text AND state = 'sign_requested' AND ("
    "EXISTS (SELECT 1 FROM users u WHERE u.id = payments.user_id AND u.blocked_at IS NOT NULL) "
    "OR EXISTS (SELECT 1 FROM cards k WHERE k.id = payments.card_id "
    "AND k.blocked_at IS NOT NULL))")
COUNT_FAILURE = {table: (
    f"UPDATE {table} SET consecutive_failures = consecutive_failures + 1, "
    "blocked_at = CASE WHEN blocked_at IS NULL AND consecutive_failures + 1 >= $2::integer "
    "THEN $3::timestamp ELSE blocked_at END WHERE id = $1::integer") for table in ("users", "cards")}
COUNT_CLIENT_REFUSAL = (
    "UPDATE api_clients SET "
    "refusals = CASE WHEN refusals_since IS NULL OR refusals_since <= $2::timestamp THEN 1 "
    "ELSE refusals + 1 END, "
    "refusals_since = CASE WHEN refusals_since IS NULL OR refusals_since <= $2::timestamp "
    "THEN $3::timestamp ELSE refusals_since END WHERE id = $1::integer")
AUDIT_REFUSED = (
    "INSERT INTO audit_events (at, action, outcome, code, client_id, user_external_id, card_id, "
    "payment_id, certificate_serial_hex, detail) VALUES ($1::timestamp, $2::text, 'refused', "
    "$3::text, $4::integer, $5::text, $6::integer, $7::text, $8::text, $9::text)")
CLIENT_BY_TOKEN = ("SELECT id, role, disabled_at FROM api_clients "
                   "WHERE token_sha256 = $1::text")


def authorization_args(a: Authorization) -> tuple:
    return (a.payment_id, a.terminal_client_id, a.seq, a.card_id, a.certificate_serial_hex,
            a.user_id, a.reference_hex, a.counter, a.signature, a.max_counter_jump, a.now,
            a.detail)


def refusal_statements(r: Refusal) -> list[tuple[str, tuple]]:
    """The statements that record a refusal, in order."""
    out: list[tuple[str, tuple]] = []
    if r.end_state and r.payment_id:
        out.append((END_PAYMENT, (r.payment_id, r.end_state, r.code)))
    if r.count_failure:
        for table, row_id in (("users", r.user_id), ("cards", r.card_id)):
            if row_id is not None:
                out.append((COUNT_FAILURE[table], (row_id, r.max_failures, r.now)))
        if r.end_if_blocked and not r.end_state and r.payment_id:
            out.append((END_IF_BLOCKED, (r.payment_id, r.code)))
    if r.count_client and r.client_id is not None:
        out.append((COUNT_CLIENT_REFUSAL, (r.client_id, r.window_start, r.now)))
    audit = (r.client_id, r.user_external_id, r.card_id, r.payment_id, r.serial_hex,
             r.detail[:512])
    out.append((AUDIT_REFUSED, (r.now, r.action, r.code, *audit)))
    if r.suspicious:
        out.append((AUDIT_REFUSED, (r.now, "payment.suspicious", r.code, *audit)))
    return out


_RECORD_FIELDS = tuple(f.name for f in fields(PaymentRecord))
_KEY_FIELDS = tuple((f.name, "key_" + f.name) for f in fields(CardKey))


def _key(row: dict) -> CardKey | None:
    if row.get("key_serial_hex") is None:
        return None
    return CardKey(**{name: row[column] for name, column in _KEY_FIELDS})


def payment_snapshot(row: dict) -> PaymentSnapshot:
    return PaymentSnapshot(PaymentRecord(**{name: row[name] for name in _RECORD_FIELDS}),
                           _key(row))


def create_snapshot(row: dict) -> CreateSnapshot:
    return CreateSnapshot(row["client_refusals"], row["client_refusals_since"], row["user_id"],
                          row["user_blocked_at"], _key(row) if row["user_id"] else None)


# -- SQLite --------------------------------------------------------------------------------
_PARAMETER = re.compile(r"\$(\d+)(?:::\w+)?")
# SQLAlchemy's storage format of DateTime on SQLite (always with microseconds), so that
# the strings compare as the times do.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_TIME_COLUMNS = frozenset(
    [f.name for cls in (PaymentRecord, CreateSnapshot) for f in fields(cls)
     if "datetime" in str(f.type)]
    + ["key_" + f.name for f in fields(CardKey) if "datetime" in str(f.type)] + ["disabled_at"])
_BOOL_COLUMNS = frozenset({"key_requires_server_signature", "key_attested"})


def sqlite_statement(statement: str) -> str:
    """$n (with its PostgreSQL cast) -> ?n."""
    return _PARAMETER.sub(r"?\1", statement)


def _sqlite_value(value):
    if isinstance(value, datetime):
        return value.strftime(_SQLITE_TIME)
    if isinstance(value, bool):
        return int(value)
    return value


def _sqlite_columns(cursor: sqlite3.Cursor) -> tuple[tuple[str, ...], tuple]:
    """A statement's column names and the conversions its columns need (SQLite stores
    times as text and booleans as integers)."""
    names = tuple(column[0] for column in cursor.description)
    conversions = tuple((name, datetime.fromisoformat if name in _TIME_COLUMNS else bool)
                        for name in names if name in _TIME_COLUMNS or name in _BOOL_COLUMNS)
    return names, conversions


class SqlitePaymentStore:
    """Reads on a per-thread snapshot connection (WAL: never waits for the writer),
    writes on the writer thread's connection as a savepoint of its group commit."""

    def __init__(self, db: Database):
        self.db = db
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._sql = {}
        self._columns = {}  # statement -> _sqlite_columns, the same on every connection

    def _prepared(self, statement: str, args: tuple) -> tuple[str, list]:
        """The statement in SQLite's terms and its arguments (as many as it numbers)."""
        translated = self._sql.get(statement)
        if translated is None:
            count = max((int(n) for n in _PARAMETER.findall(statement)), default=0)
            translated = self._sql[statement] = (sqlite_statement(statement), count)
        return translated[0], [_sqlite_value(a) for a in args[:translated[1]]]

    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self.db.raw_sqlite_reader()
            self._local.connection = connection
            self._readers.append(connection)
        return connection

    def _one(self, connection: sqlite3.Connection, statement: str, args: tuple) -> dict | None:
        cursor = connection.execute(*self._prepared(statement, args))
        values = cursor.fetchone()
        if values is None:
            return None
        columns = self._columns.get(statement)
        if columns is None:
            columns = self._columns[statement] = _sqlite_columns(cursor)
        names, conversions = columns
        row = dict(zip(names, values))
        for name, convert in conversions:
            if row[name] is not None:
                row[name] = convert(row[name])
        return row

    def _write(self, connection: sqlite3.Connection, statement: str, args: tuple) -> int:
        return connection.execute(*self._prepared(statement, args)).rowcount

    # reads: a single statement is a consistent snapshot; microseconds, on the event loop
    async def client_by_token(self, digest: str):
        row = self._one(self._reader(), CLIENT_BY_TOKEN, (digest,))
        return None if row is None else (row["id"], row["role"], row["disabled_at"])

    async def create_snapshot(self, merchant_id: int, user_external_id: str) -> CreateSnapshot:
        return create_snapshot(self._one(self._reader(), CREATE_SNAPSHOT,
                                         (merchant_id, user_external_id)))

    async def snapshot(self, payment_id: str, client_id: int, *, active_key: bool):
        row = self._one(self._reader(), SNAPSHOT_ACTIVE if active_key else SNAPSHOT_CLAIMED,
                        (payment_id, client_id))
        return None if row is None else payment_snapshot(row)

    # writes: the writer thread's next group commit
    async def create(self, new: NewPayment) -> Created | None:
        def work() -> Created | None:
            with self.db.raw_write() as connection:
                row = self._one(connection, CREATE, (
                    new.id, new.merchant_client_id, new.user_external_id, new.amount_minor,
                    new.currency, new.order_ref, new.created_at, new.expires_at,
                    new.accept_unattested, new.refusal_limit, new.refusal_window_start))
                return None if row is None else Created(**row)
        return await self.db.run(work)

    async def claim(self, claim: Claim) -> bool:
        def work() -> bool:
            with self.db.raw_write() as connection:
                return self._write(connection, CLAIM, (
                    claim.payment_id, claim.terminal_client_id, claim.card_id,
                    claim.certificate_serial_hex, claim.nonce, claim.signed_fields,
                    claim.signing_mode, claim.nonce_expires_at, claim.pending_batch,
                    claim.now)) == 1
        return await self.db.run(work)

    async def expire(self, payment_id: str) -> None:
        def work() -> None:
            with self.db.raw_write() as connection:
                self._write(connection, EXPIRE, (payment_id,))
        await self.db.run(work)

    async def authorize(self, a: Authorization) -> Authorized:
        args = authorization_args(a)

        def work() -> Authorized:
            with self.db.raw_write() as connection:
                if (self._write(connection, AUTHORIZE_COUNTER, args) != 1
                        or self._write(connection, AUTHORIZE_NONCE, args) != 1):
                    raise LostRace()  # the savepoint rolls back the card row's update
                for statement in (RESET_USER_FAILURES, RESET_CARD_FAILURES, AUDIT_AUTHORIZED):
                    self._write(connection, statement, args)
                return Authorized(a.payment_id, a.counter)
        return await self.db.run(work)

    async def refused(self, r: Refusal) -> None:
        def work() -> None:
            with self.db.raw_write() as connection:
                for statement, args in refusal_statements(r):
                    self._write(connection, statement, args)
        await self.db.run(work)

    async def close(self) -> None:
        """Close the read connections (each thread opens a new one when it reads again)."""
        readers, self._readers, self._local = self._readers, [], threading.local()
        for connection in readers:
            connection.close()


def payment_store(db: Database) -> PaymentStore:
    if db.is_sqlite:
        return SqlitePaymentStore(db)
    from .payment_postgres import PostgresPaymentStore
    return PostgresPaymentStore(db.url)
