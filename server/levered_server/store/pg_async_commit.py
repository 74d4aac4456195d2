"""Serve commits on PostgreSQL from the event loop, on an asyncio connection of its own.

The same transaction as `LockStore.commit` (insert the new locks, read back the locks that
hold, insert the outbox rows), sent by the event loop without a thread: while PostgreSQL
works, the loop serves other requests, and nothing else has to hand it the GIL back. A writer
thread doing the commit needed the GIL after every round trip, from a loop busy with other
requests, up to the 5 ms switch interval each time (docs/benchmarks.md, "Fourth pass").
One connection per event loop, opened with the engine's own connection arguments on first
use; one commit at a time on it (`services/serve_log.LoopGroup` gathers the next batch
meanwhile).
"""

from __future__ import annotations

from typing import Any

import psycopg

from levered_server.store.locks import Key, LockStore, Outbox, held_of, pg_outbox_statement


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

    async def commit(self, rows: list[dict[str, Any]], outbox: Outbox
                     ) -> dict[Key, tuple[int, float]]:
        """As `LockStore.commit`: one transaction; on a broken connection, once more on a
        new one (nothing of the first try was committed)."""
        statements = self.locks.pg_lock_statements(rows)
        for attempt in (0, 1):
            conn = await self._connection()
            try:
                async with conn.transaction():
                    held: dict[Key, tuple[int, float]] = {}
                    if statements:
                        insert, read_back = statements
                        await conn.execute(*insert)
                        held = held_of(await (await conn.execute(*read_back)).fetchall())
                    exposures = outbox(held)
                    if exposures:
                        await conn.execute(*pg_outbox_statement(exposures))
                    return held
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
