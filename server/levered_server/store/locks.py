"""Sticky locks in the state store: one indexed lookup per first visit, batched inserts.

Writes come from the serve log's group commit (`services/serve_log.py`): the batch's new locks
and its exposures (into `exposure_outbox`, `services/outbox.py`) in one transaction, committed
before the serves are acknowledged. Both run often enough (every serve of a new user, every
commit) that they use a driver connection held by the calling thread, in autocommit for
lookups, instead of checking one out of SQLAlchemy's pool each time: the checkout cost more
Python than the indexed lookup itself, on the event loop.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from levered_server.json_rows import dumps_rows, select_fields
from levered_server.store.db import Store
from levered_server.store.models import Lock

Key = tuple[str, str]
#: Builds the exposure-outbox rows `(organization id, payload)` from the locks as stored.
Outbox = Callable[[dict[Key, tuple[int, float]]], list[tuple[str, str]]]
_COLUMNS = ("organization_id", "optimization_id", "anonymous_id", "variant_number",
            "propensity", "model_version", "assigned_at")
_PG_TYPES = ("text", "text", "text", "integer", "double precision", "integer", "timestamp")
_OUTBOX_INSERT = "INSERT INTO exposure_outbox (organization_id, payload) VALUES (%s, %s)"
# PostgreSQL batches are one JSON parameter each (`json_rows`).
_OUTBOX_INSERT_PG = ("INSERT INTO exposure_outbox (organization_id, payload) "
                     "SELECT x->>0, x->>1 FROM jsonb_array_elements(%s::jsonb) AS x")
_READ_BACK = 500  # keys per read-back statement on SQLite (its variable limit is 32,766)
_BUSY_SECONDS = 10.0  # as the engine's busy_timeout
_BUSY_POLL = 0.0002
# WAL pages: the outbox mover checkpoints long before; this only bounds the WAL if it cannot.
_NO_AUTOCHECKPOINT = 100_000
_CACHE_KIB = 64 * 1024  # the serving connections' page cache


class WriteBusy(Exception):
    """Another connection holds SQLite's write lock, and the commit was not to wait."""


def _begin_immediate(conn: Any, wait: bool = True) -> None:
    """Take SQLite's write lock now, polling every 0.2 ms while another writer holds it.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25… ms between tries, so a serve
    commit that met the outbox mover's delete or an API write waited 18-250 ms for a lock
    released after a fraction of a millisecond: that was the serve tail on the embedded
    default (docs/benchmarks.md). Polling keeps the wait to what the other writer needs.

    :raises WriteBusy: `wait` is false and the lock is held (nothing was started).
    """
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if not wait:
                raise WriteBusy(str(exc)) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(_BUSY_POLL)


def _naive(value: Any) -> Any:
    # Stored as naive UTC, as `UTCDateTime` does for ORM writes.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def held_of(rows: list[Any]) -> dict[Key, tuple[int, float]]:
    """The locks read back, by key: `(variant, propensity)`."""
    return {(o, a): (int(n), float(p)) for o, a, n, p in rows}


def _lock_rows(rows: list[dict[str, Any]]) -> str:
    # PostgreSQL: a batch's lock rows as one JSON parameter (`json_rows`), in key order, so
    # that concurrent batches (of replicas, of workers) that insert the same users take the
    # unique index's row locks in the same order and never deadlock.
    ordered = sorted(rows, key=lambda r: (r["optimization_id"], r["anonymous_id"]))
    return dumps_rows([_naive(r[c]) for c in _COLUMNS] for r in ordered)


def distinct_keys(rows: list[dict[str, Any]]) -> bool:
    """Whether no user has two of the lock rows (two serves of one batch)."""
    return len({(r["optimization_id"], r["anonymous_id"]) for r in rows}) == len(rows)


def pg_outbox_statement(exposures: list[tuple[str, str]]) -> tuple[str, tuple[str]]:
    """The PostgreSQL insert of exposure-outbox rows `(organization id, payload)`."""
    return _OUTBOX_INSERT_PG, (dumps_rows(exposures),)


def read_back_sqlite(keys: int) -> str:
    """The SQLite statement reading the stored locks of `keys` (optimization id, anonymous id)
    pairs, bound in that order.

    The keys drive the join, one primary-key probe each: SQLite plans the shorter
    `(a, b) IN (VALUES …)` as a scan of every lock (8 ms per serve commit at 50,000 users, and
    growing with them), and a CROSS JOIN fixes the order.
    """
    values = ", ".join("(?, ?)" for _ in range(keys))
    return (f"SELECT l.optimization_id, l.anonymous_id, l.variant_number, l.propensity "
            f"FROM (VALUES {values}) AS k CROSS JOIN {Lock.__tablename__} AS l "
            f"ON l.optimization_id = k.column1 AND l.anonymous_id = k.column2")


class LockStore:
    """Reads and inserts sticky locks by (optimization_id, anonymous_id), raw SQL."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.postgres = store.engine.dialect.name == "postgresql"
        self._mark = "%s" if self.postgres else "?"
        table = Lock.__tablename__
        self._lookup = (f"SELECT variant_number, propensity FROM {table} "
                        f"WHERE optimization_id = {self._mark} AND anonymous_id = {self._mark}")
        self._insert = (f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES "
                        f"({', '.join(self._mark for _ in _COLUMNS)}) ON CONFLICT DO NOTHING")
        # PostgreSQL: one statement per batch, its rows one JSON parameter (no per-row round
        # trip, no per-element dumping in Python).
        self._insert_pg = (f"INSERT INTO {table} ({', '.join(_COLUMNS)}) "
                           f"SELECT {select_fields(_PG_TYPES)} "
                           f"FROM jsonb_array_elements(%s::jsonb) AS x ON CONFLICT DO NOTHING")
        # One primary-key probe per key, whatever the plan: psycopg prepares the statement
        # after five runs, and PostgreSQL's generic plan for a plain join (it guesses 100
        # keys) was a hash join over a sequential scan of every lock, 6.7 ms at 20,000 users
        # and growing with them. LIMIT 1 keeps the lateral subquery from being flattened.
        self._read_back_pg = (f"SELECT l.optimization_id, l.anonymous_id, l.variant_number, "
                              f"l.propensity FROM jsonb_array_elements(%s::jsonb) AS k "
                              f"CROSS JOIN LATERAL (SELECT * FROM {table} AS t WHERE "
                              f"t.optimization_id = k->>0 AND t.anonymous_id = k->>1 LIMIT 1) AS l")
        # The event loop's commit in one statement (`pg_commit_statement`). `held`: the
        # stored locks of the batch's keys as of the statement's start, so none it inserts
        # (returning users, users another replica locked). An exposure is written if its
        # key's lock was inserted, or, when $3 (no user twice in the batch: two contexts can
        # draw differently), if it is stored as drawn now (the same model version and context
        # draw the same); the other serves' exposures are built from the stored lock after.
        # $1 is read twice, hence numbered placeholders. Keeping the inserted keys out of
        # `held` with NOT EXISTS cost PostgreSQL more per new user than the probes it saves
        # (docs/benchmarks.md).
        lock = {c: f"x->>{i}" for i, c in enumerate(_COLUMNS)}
        self._commit_pg = (
            f"WITH ins AS ({self._insert_pg.replace('%s', '$1')} "
            f"RETURNING optimization_id, anonymous_id), "
            f"k AS (SELECT {lock['optimization_id']} AS o, {lock['anonymous_id']} AS a, "
            f"({lock['variant_number']})::integer AS n, ({lock['propensity']})::double precision "
            f"AS p FROM jsonb_array_elements($1::jsonb) AS x), "
            f"held AS (SELECT k.o, k.a, k.n, k.p, t.variant_number, t.propensity FROM k "
            f"CROSS JOIN LATERAL (SELECT * FROM {table} AS t WHERE t.optimization_id = k.o "
            f"AND t.anonymous_id = k.a LIMIT 1) AS t), "
            f"o AS (INSERT INTO exposure_outbox (organization_id, payload) "
            f"SELECT e->>0, e->>1 FROM jsonb_array_elements($2::jsonb) AS e WHERE e->>2 IS NULL "
            f"OR EXISTS (SELECT 1 FROM ins WHERE ins.optimization_id = e->>2 "
            f"AND ins.anonymous_id = e->>3) "
            f"OR ($3::boolean AND EXISTS (SELECT 1 FROM held WHERE held.o = e->>2 "
            f"AND held.a = e->>3 AND held.variant_number = held.n "
            f"AND held.propensity = held.p))) "
            f"SELECT optimization_id, anonymous_id, NULL::integer, NULL::double precision "
            f"FROM ins UNION ALL SELECT o, a, variant_number, propensity FROM held")
        self._local = threading.local()
        self._held: list[Any] = []
        self._held_lock = threading.Lock()

    # -- connections ---------------------------------------------------------------------

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.store.engine.raw_connection()
            driver: Any = conn.driver_connection
            if self.postgres:
                driver.autocommit = True  # a lookup opens no transaction
            else:
                # This thread's commits poll for the write lock themselves
                # (`_begin_immediate`), and leave WAL checkpoints (an fsync of the database)
                # to the outbox mover's thread instead of running them inside a serve's commit.
                driver.execute("PRAGMA busy_timeout=0")
                driver.execute(f"PRAGMA wal_autocheckpoint={_NO_AUTOCHECKPOINT}")
                # New users' keys land on random pages of the locks' index: with SQLite's
                # default 2 MB page cache, each commit read pages back from the OS once the
                # table outgrew it (tens of thousands of users), a system call each.
                driver.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self._local.conn = conn
            with self._held_lock:
                self._held.append(conn)
        return conn

    def _drop(self, conn: Any) -> None:
        self._local.conn = None
        with self._held_lock:
            if conn in self._held:
                self._held.remove(conn)
        try:
            conn.invalidate()
        except Exception:  # noqa: BLE001 - already broken
            pass

    def close(self) -> None:
        """Close the connections threads hold (at shutdown)."""
        with self._held_lock:
            held, self._held = self._held, []
        for conn in held:
            try:
                conn.invalidate()
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    def _run(self, work: Any) -> Any:
        """Run `work(dbapi_connection)`; on a broken connection, once more on a new one."""
        for attempt in (0, 1):
            conn = self._connection()
            try:
                return work(conn.driver_connection)
            except WriteBusy:
                raise  # the connection is fine; nothing was done
            except Exception:
                self._drop(conn)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # -- locks ---------------------------------------------------------------------------

    def get(self, optimization_id: str, anonymous_id: str) -> tuple[int, float] | None:
        """The user's stored lock."""
        def lookup(conn: Any) -> Any:
            cur = conn.cursor()
            try:
                cur.execute(self._lookup, (optimization_id, anonymous_id))
                return cur.fetchone()
            finally:
                cur.close()

        found = self._run(lookup)
        return (found[0], found[1]) if found else None

    def insert(self, rows: list[dict[str, Any]]) -> dict[Key, tuple[int, float]]:
        """Insert new locks (an existing row wins) in one transaction; return the lock that
        holds for every key, as stored."""
        return self.commit(rows, lambda _held: [])

    def commit(self, rows: list[dict[str, Any]], outbox: Outbox, *, wait: bool = True
               ) -> dict[Key, tuple[int, float]]:
        """In one transaction: insert new locks (an existing row wins), read back the lock that
        holds for every key, and insert the exposure-outbox rows `outbox(held)` returns
        (`(organization id, payload)`, built from the locks as stored).

        :raises WriteBusy: SQLite only, `wait` false and another connection is writing
            (nothing was done, `outbox` was not called).
        """
        if self.postgres:
            return self._commit_postgres(rows, outbox)
        keys = list({(r["optimization_id"], r["anonymous_id"]) for r in rows})
        params = [tuple(_naive(r[c]) for c in _COLUMNS) for r in rows]

        def write(conn: Any) -> dict[Key, tuple[int, float]]:
            held: dict[Key, tuple[int, float]] = {}
            _begin_immediate(conn, wait)
            cur = conn.cursor()
            try:
                unread = keys
                if params:
                    cur.executemany(self._insert, params)
                    if cur.rowcount == len(params):
                        # Every lock was new (the usual batch): they hold as inserted, and
                        # no read-back means two fewer SQLite calls, each of which lets
                        # another thread take the GIL from the event loop.
                        held = {(r["optimization_id"], r["anonymous_id"]):
                                (int(r["variant_number"]), float(r["propensity"])) for r in rows}
                        unread = []
                for i in range(0, len(unread), _READ_BACK):
                    chunk = unread[i:i + _READ_BACK]
                    cur.execute(read_back_sqlite(len(chunk)),
                                tuple(x for key in chunk for x in key))
                    held.update(held_of(cur.fetchall()))
                exposures = outbox(held)
                if exposures:
                    cur.executemany(_OUTBOX_INSERT.replace("%s", "?"), exposures)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cur.close()
            return held

        result: dict[Key, tuple[int, float]] = self._run(write)
        return result

    def pg_commit_statement(self, rows: list[dict[str, Any]],
                            exposures: list[tuple[str, str, Key | None]]
                            ) -> tuple[str, tuple[str, str, str]]:
        """A PostgreSQL serve commit as one statement, for exposures built from the locks as
        assigned: insert the new locks, and the outbox rows `(organization id, payload, key)`
        whose key's lock it inserted, or found stored as assigned (a returning user drawn
        the same again, when no user is twice in the batch: `distinct_keys`), or whose key is
        None (no new lock). Its rows are `(optimization id, anonymous id, variant,
        propensity)`: each key inserted, with no variant, and the stored lock of each key it
        did not insert. A serve whose stored lock differs from its own still needs its
        exposure written from it; a key in neither was locked by a commit that ended after
        this statement began (`pg_read_back_statement`).

        One statement in autocommit is one round trip and no transaction to open and close:
        five round trips, each ~0.1 ms of psycopg on the event loop, were a third of a
        worker's loop (docs/benchmarks.md)."""
        return self._commit_pg, (
            _lock_rows(rows),
            dumps_rows((org, payload, *(key or (None, None))) for org, payload, key in exposures),
            "true" if distinct_keys(rows) else "false")

    def pg_read_back_statement(self, keys: list[Key]) -> tuple[str, tuple[str]]:
        """The PostgreSQL read-back of the stored locks of `keys`."""
        return self._read_back_pg, (dumps_rows(keys),)

    def _commit_postgres(self, rows: list[dict[str, Any]], outbox: Outbox
                         ) -> dict[Key, tuple[int, float]]:
        keys = list({(r["optimization_id"], r["anonymous_id"]) for r in rows})

        def write(conn: Any) -> dict[Key, tuple[int, float]]:
            with conn.transaction():
                cur = conn.cursor()
                try:
                    held: dict[Key, tuple[int, float]] = {}
                    if rows:
                        cur.execute(self._insert_pg, (_lock_rows(rows),))
                        cur.execute(*self.pg_read_back_statement(keys))
                        held = held_of(cur.fetchall())
                    exposures = outbox(held)
                    if exposures:
                        cur.execute(*pg_outbox_statement(exposures))
                    return held
                finally:
                    cur.close()

        result: dict[Key, tuple[int, float]] = self._run(write)
        return result
