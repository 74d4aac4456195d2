"""Serve commits on PostgreSQL from the event loop, on an asyncio connection of its own.

What `LockStore.commit` does (insert the new locks, and the outbox rows built from the locks
that hold), sent by the event loop without a thread: while PostgreSQL works, the loop serves
other requests, and nothing else has to hand it the GIL back. A writer thread doing the
commit needed the GIL after every round trip, from a loop busy with other requests, up to the
5 ms switch interval each time (docs/benchmarks.md, "Fourth pass"). The usual batch (every
lock new) is one statement in autocommit: one round trip instead of five. One connection per
event loop, opened with the engine's own connection arguments on first use; one commit at a
time on it (`services/loop_group.LoopGroup` gathers the next batch meanwhile).

The statements go through libpq directly (`psycopg.pq`), each prepared once per connection,
with one reader callback on the connection's socket for as long as it is open: psycopg's own
asyncio execution (a cursor, a generator and a reader added and removed per wait) cost
~120 µs of CPU per statement against ~50 µs this way, a tenth of a worker's CPU per serve at
2,000 serves/s (docs/benchmarks.md, "Seventh pass").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import pq
from psycopg.errors import error_from_result
from psycopg.pq.abc import PGconn, PGresult

from levered_server.store.locks import Key, LockStore, distinct_keys, held_of, pg_outbox_statement

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


class AsyncCommitter:
    """`LockStore.commit` for PostgreSQL, awaited on the event loop."""

    def __init__(self, locks: LockStore) -> None:
        self.locks = locks
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._prepared: dict[str, bytes] = {}  # statement text -> its name on this connection
        # The statement in flight: its results so far, and who waits for them.
        self._results: list[PGresult] = []
        self._waiting: asyncio.Future[list[PGresult]] | None = None

    async def commit(self, rows: list[dict[str, Any]],
                     exposures: list[tuple[str, str, Key | None]],
                     lost: Callable[[dict[Key, tuple[int, float]]], list[tuple[str, str]]]
                     ) -> tuple[set[Key], Exception] | None:
        """Commit a batch whose exposures `(organization id, payload, key)` were built from
        the locks as assigned, in one statement (`LockStore.pg_commit_statement`): it also
        writes the exposures of returning users whose stored lock is the one assigned. For
        the locks found stored otherwise (another replica, another version), `lost(held)`
        builds the exposures of their serves from them, inserted after.

        A statement whose connection broke is sent once more on a new connection. (Had
        PostgreSQL committed it before the connection broke, the retry writes those
        exposures to the outbox again; the managed warehouse keeps one row per exposure id.)

        :returns: None, or when the first statement committed but writing the exposures of
            the serves whose lock was stored already failed, their keys and the error.
        """
        found = await self._run(self.locks.pg_commit_statement(rows, exposures))
        assigned = {(r["optimization_id"], r["anonymous_id"]):
                    (int(r["variant_number"]), float(r["propensity"])) for r in rows}
        stored = held_of([row for row in found if row[2] is not None])
        # Left: the keys it did not insert, but for returning users drawn as stored, whose
        # exposures the statement wrote too (when no user is twice in the batch).
        keys = set(assigned) - {(o, a) for o, a, n, _p in found if n is None}
        if distinct_keys(rows):
            keys -= {key for key, lock in stored.items() if lock == assigned[key]}
        if not keys:
            return None
        try:
            held = {key: lock for key, lock in stored.items() if key in keys}
            unseen = sorted(keys - held.keys())  # locked by a commit that ended meanwhile
            if unseen:
                held.update(held_of(await self._run(self.locks.pg_read_back_statement(unseen))))
            rest = lost(held)
            if rest:
                await self._run(pg_outbox_statement(rest))
        except Exception as exc:  # noqa: BLE001 - the caller fails those serves only
            return keys, exc
        return None

    async def _run(self, statement: tuple[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
        """The statement's rows, as text; sent again on a new connection if this one broke."""
        for attempt in (0, 1):
            try:
                return await self._execute(*statement)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _execute(self, sql: str, params: tuple[str, ...]) -> list[tuple[str, ...]]:
        pgconn = await self._connection()
        name = self._prepared.get(sql)
        if name is None:
            name = f"levered_commit_{len(self._prepared)}".encode()
            _check(await self._send(lambda: pgconn.send_prepare(name, _numbered(sql))))
            self._prepared[sql] = name
        values: list[bytes | None] = [p.encode() for p in params]
        result = _check(await self._send(lambda: pgconn.send_query_prepared(name, values)))
        return [tuple(_text(result.get_value(i, j)) for j in range(result.nfields))
                for i in range(result.ntuples)]

    async def _connection(self) -> PGconn:
        conn = self._conn
        if (conn is None or conn.closed or conn.pgconn.status != pq.ConnStatus.OK
                or self._loop is not asyncio.get_running_loop()):  # its reader is on that loop
            self.close()
            engine = self.locks.store.engine
            cargs, cparams = engine.dialect.create_connect_args(engine.url)
            conn = await psycopg.AsyncConnection.connect(*cargs, **cparams, autocommit=True)
            self._loop = asyncio.get_running_loop()
            self._fd = conn.pgconn.socket
            self._loop.add_reader(self._fd, self._readable)
            self._conn, self._prepared = conn, {}
        return conn.pgconn

    async def _send(self, send: Callable[[], None]) -> list[PGresult]:
        """Send one command (`send` queues it in libpq) and wait for all its results."""
        assert self._loop is not None and self._conn is not None and self._waiting is None
        pgconn = self._conn.pgconn
        waiting: asyncio.Future[list[PGresult]] = self._loop.create_future()
        self._waiting = waiting
        self._results = []
        try:
            send()
            while pgconn.flush():  # the socket's buffer is full: the rest when writable
                writable = self._loop.create_future()
                self._loop.add_writer(self._fd, writable.set_result, None)
                try:
                    await writable
                finally:
                    self._loop.remove_writer(self._fd)
            return await waiting
        except BaseException:
            if self._waiting is waiting:  # failed to send, or cancelled: the state is unknown
                self._waiting = None
                self.close()
            raise

    def _readable(self) -> None:
        """The socket has data: collect the results of the command in flight; hand them over
        once libpq has them all."""
        conn = self._conn
        if conn is None:
            return
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:  # the command's last result came before
                    waiting, self._waiting = self._waiting, None
                    if waiting is not None and not waiting.done():
                        waiting.set_result(self._results)
                    self._results = []
                    return
                self._results.append(result)
        except psycopg.Error as exc:  # the connection broke (with or without a command)
            waiting, self._waiting = self._waiting, None
            self.close()
            if waiting is not None and not waiting.done():
                waiting.set_exception(exc)

    def close(self) -> None:
        """Close the connection; also without the event loop (at shutdown, or once broken)."""
        conn, self._conn = self._conn, None
        loop, self._loop = self._loop, None
        if conn is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):  # the loop may be gone at shutdown
                loop.remove_reader(self._fd)
        if not conn.closed:
            conn.pgconn.finish()
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_exception(psycopg.OperationalError("the connection was closed"))


def _check(results: list[PGresult]) -> PGresult:
    """The command's last result; its error raised as psycopg raises it."""
    for result in results:
        if result.status not in _OK:
            raise error_from_result(result)
    if not results:
        raise psycopg.OperationalError("PostgreSQL returned no result")
    return results[-1]


def _numbered(sql: str) -> bytes:
    """`%s` placeholders as libpq's `$1`, `$2`, … (a statement numbered already as it is)."""
    parts = sql.split("%s")
    return "".join(f"{part}${i}" if i < len(parts) else part
                   for i, part in enumerate(parts, start=1)).encode()


def _text(value: bytes | None) -> Any:
    return None if value is None else value.decode()
