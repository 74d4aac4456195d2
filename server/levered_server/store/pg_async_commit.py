"""Serve commits on PostgreSQL from the event loop, on an asyncio connection of its own.

What `LockStore.commit` does (insert the new locks, and the outbox rows built from the locks
that hold), sent by the event loop without a thread: while PostgreSQL works, the loop serves
other requests, and nothing else has to hand it the GIL back. A writer thread doing the
commit needed the GIL after every round trip, from a loop busy with other requests, up to the
5 ms switch interval each time (docs/benchmarks.md, "Fourth pass"). The usual batch (every
lock new) is one statement in autocommit: one round trip instead of five. One connection per
event loop, opened with the engine's own connection arguments on first use; one commit at a
time on it (`services/loop_group.LoopGroup` gathers the next batch meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from levered_server.store.locks import Key, LockStore, held_of, pg_outbox_statement


class AsyncCommitter:
    """`LockStore.commit` for PostgreSQL, awaited on the event loop."""

    def __init__(self, locks: LockStore) -> None:
        self.locks = locks
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            engine = self.locks.store.engine
            cargs, cparams = engine.dialect.create_connect_args(engine.url)
            self._conn = await psycopg.AsyncConnection.connect(*cargs, **cparams,
                                                               autocommit=True)
        return self._conn

    async def commit(self, rows: list[dict[str, Any]],
                     exposures: list[tuple[str, str, Key | None]],
                     lost: Callable[[dict[Key, tuple[int, float]]], list[tuple[str, str]]]
                     ) -> tuple[set[Key], Exception] | None:
        """Commit a batch whose exposures `(organization id, payload, key)` were built from
        the locks as assigned, in one statement (`LockStore.pg_commit_statement`). Locks
        found stored already (another replica, another version) are read back, and
        `lost(held)` builds the exposures of their serves from them, inserted after.

        A statement whose connection broke is sent once more on a new connection. (Had
        PostgreSQL committed it before the connection broke, the retry writes those
        exposures to the outbox again; the managed warehouse keeps one row per exposure id.)

        :returns: None, or when the first statement committed but writing the exposures of
            the serves whose lock was stored already failed, their keys and the error.
        """
        statement = self.locks.pg_commit_statement(rows, exposures)
        inserted = {(o, a) for o, a in await self._run(statement)}
        keys = {(r["optimization_id"], r["anonymous_id"]) for r in rows} - inserted
        if not keys:
            return None
        try:
            held = held_of(await self._run(self.locks.pg_read_back_statement(sorted(keys))))
            rest = lost(held)
            if rest:
                await self._run(pg_outbox_statement(rest), fetch=False)
        except Exception as exc:  # noqa: BLE001 - the caller fails those serves only
            return keys, exc
        return None

    async def _run(self, statement: tuple[str, tuple[str, ...]], fetch: bool = True
                   ) -> list[Any]:
        for attempt in (0, 1):
            conn = await self._connection()
            try:
                cursor = await conn.execute(*statement)
                return await cursor.fetchall() if fetch else []
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection without the event loop (at shutdown, or once broken)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.pgconn.finish()
