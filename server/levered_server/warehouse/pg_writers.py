"""A small bounded pool of the server's own (writer) connections, one database each.

PostgreSQL counts every connection against `max_connections`, and a server may write to many
organizations' databases: at most `size` connections are open at once (in use or idle), the
least recently used idle one is closed to make room, and a caller waits (up to `wait` seconds)
while all of them are in use. A connection idle for more than `PING_AFTER` seconds is checked
before it is handed out, so a restarted PostgreSQL costs a reconnect, not a failed write.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from levered_server.warehouse.driver_api import WarehouseFailure

PING_AFTER = 1.0  # seconds; busy connections (a group commit every few ms) skip the check


class WriterPool:
    """Idle connections by database, least recently used first."""

    def __init__(self, connect: Callable[[str], Any], *, size: int = 4,
                 wait: float = 10.0) -> None:
        self._connect = connect
        self.size = size
        self.wait = wait
        self._idle: list[tuple[str, Any, float]] = []  # (database, connection, idle since)
        self._in_use = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def open_count(self) -> int:
        """Connections open now, idle or in use."""
        with self._cond:
            return len(self._idle) + self._in_use

    def _take(self, database: str) -> tuple[Any, float] | None:
        """Reserve a slot; an idle connection to `database` if there is one (under the lock)."""
        if not self._cond.wait_for(lambda: self._in_use < self.size, timeout=self.wait):
            raise WarehouseFailure("managed warehouse busy: every writer connection is in use")
        self._in_use += 1
        for i in range(len(self._idle) - 1, -1, -1):
            if self._idle[i][0] == database:
                _, conn, since = self._idle.pop(i)
                return conn, since
        return None

    def _checkout(self, database: str) -> Any:
        with self._cond:
            found = self._take(database)
            # Make room: close the least recently used idle connections (of other databases).
            evicted = []
            while found is None and self._idle and len(self._idle) + self._in_use > self.size:
                evicted.append(self._idle.pop(0)[1])
        for conn in evicted:
            _close(conn)
        try:
            if found is not None and _alive(*found):
                return found[0]
            if found is not None:
                _close(found[0])
            return self._connect(database)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify()

    @contextlib.contextmanager
    def connection(self, database: str) -> Iterator[Any]:
        """A connection to `database` for one transaction; back to the pool if still sound.

        :raises psycopg.Error: connecting failed (nothing was sent).
        """
        conn = self._checkout(database)
        keep = False
        try:
            yield conn
            keep = not conn.closed and not conn.broken
        finally:
            with self._cond:
                keep = keep and not self._closed
                if keep:
                    self._idle.append((database, conn, time.monotonic()))
                self._in_use -= 1
                self._cond.notify()
            if not keep:
                _close(conn)

    def close(self) -> None:
        """Close every idle connection; those in use, and later ones, close after their use."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._closed = True
        for _, conn, _ in idle:
            _close(conn)


def _alive(conn: Any, since: float) -> bool:
    if time.monotonic() - since < PING_AFTER:
        return True
    try:
        conn.execute("SELECT 1")
        conn.rollback()
    except Exception:  # noqa: BLE001 - any failure: replace the connection
        return False
    return True


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()
