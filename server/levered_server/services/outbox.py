"""The exposure outbox: served exposures move from the state store to the warehouse, behind.

A serve commits its exposure into `exposure_outbox` in the same state-store transaction as its
sticky lock (`store/locks.py`), so the answer waits for one commit and never for the warehouse
(a DuckDB file busy with a training query, a warehouse on another server). This mover copies
the rows to each organization's managed warehouse every `interval` seconds, and at once when a
reader asks (`flush`: attribution, training and ingestion read recent serves), then deletes
them from the outbox.

Crash safety: rows leave the outbox only after the warehouse committed them. A crash between
the two leaves rows that are already in the warehouse; rows an earlier process left (ids up to
the largest at start) are therefore moved skipping exposure ids the warehouse has, whichever
organization and whenever they move (on PostgreSQL the unique index always does). With
several replicas on PostgreSQL each move claims its rows with `FOR UPDATE SKIP LOCKED`, so
replicas move disjoint rows, and rows a dead replica left are moved by the others.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import logging
import os
import threading
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import text

from levered_server.background import lower_thread_priority
from levered_server.json_rows import json_default
from levered_server.store.db import Store

log = logging.getLogger("levered_server.exposures")
BATCH = 5000
WAL_CHECKPOINT_BYTES = 4 << 20
# Past this the WAL is emptied even if that makes serve commits wait (see `_checkpoint`).
WAL_TRUNCATE_BYTES = 64 << 20
_PASSIVE_PASSES = 8
# SQLite: rows per DELETE. Each holds SQLite's write lock, which serve commits wait for, for
# ~2-3 µs a row.
DELETE_CHUNK = 250
_TIMES = ("timestamp_utc", "created_at")
# PostgreSQL: rows moved (by this process) between two vacuums of the outbox (`_vacuum`).
VACUUM_ROWS = 20_000
# PostgreSQL: the mover's rounds move chunks of this many rows, each followed by a pause of
# `PACE` times its own duration (`_move_paced`).
MOVE_CHUNK = 250
PACE = 3.0


# One encoder, timestamps as ISO text through `default`: a serve's commit encodes each
# exposure, and the copy per row with the timestamps replaced cost more than the encoding.
_ENCODE = json.JSONEncoder(ensure_ascii=False, default=json_default).encode


def encode(row: dict[str, Any]) -> str:
    """An exposure row (keyed by `exposure_writer.COLUMNS`) as outbox JSON."""
    return _ENCODE(row)


def decode(payload: str) -> dict[str, Any]:
    """An outbox payload back into an exposure row (naive UTC timestamps)."""
    row: dict[str, Any] = json.loads(payload)
    for k in _TIMES:
        if row.get(k) is not None:
            row[k] = dt.datetime.fromisoformat(row[k])
    return row


class OutboxMover:
    """Moves outbox rows into the managed warehouses: a thread, and `flush` for readers."""

    def __init__(self, store: Store, warehouses: Any, interval: float = 1.0) -> None:
        self.store = store
        self.warehouses = warehouses
        self.interval = interval
        self.postgres = store.engine.dialect.name == "postgresql"
        database = store.engine.url.database
        self._wal = f"{database}-wal" if database and database != ":memory:" else None
        self._lock = threading.Lock()  # one move at a time in this process
        # Rows up to this id were left by an earlier process (a crash may have left them in
        # the warehouse too): they are moved skipping exposure ids the warehouse has.
        self._horizon = self._last_id()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # The warehouse inserts run here, at a lower CPU priority: a DuckDB insert is
        # milliseconds of CPU per statement, whatever its size (so one move a second, not
        # five), that should go behind serving. Not the mover's own thread: it takes SQLite's
        # write lock for the delete, and a niced thread preempted while holding it made every
        # serve commit wait for it (tens of milliseconds, docs/benchmarks.md).
        self._behind = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="levered-outbox-write", initializer=lower_thread_priority)
        self.moved = 0
        self._vacuumed_at = 0

    def flush(self, org_id: str | None = None) -> None:
        """Move every row (of one organization, or all) now.

        :raises Exception: the warehouse failed; the rows stay in the outbox.
        """
        while self._move(org_id) >= BATCH:
            pass

    def start(self) -> None:
        """Start the mover thread."""
        self._thread = threading.Thread(target=self._run, name="levered-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after one last move (rows that cannot move stay for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - kept in the outbox, moved after a restart
            log.warning("exposures left in the outbox at shutdown: %s", exc)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                if self.postgres:
                    self._move_paced()
                else:
                    self.flush()
                if failing:
                    log.warning("moving exposures to the warehouse works again")
                failing = False
            except Exception as exc:  # noqa: BLE001 - one line per failing period, then retry
                if not failing:
                    log.warning("moving exposures to the warehouse failed (%s); they stay in "
                                "the outbox and are retried", exc)
                failing = True
            self._checkpoint()
            self._vacuum()

    def _move_paced(self) -> None:
        """PostgreSQL: one round of the mover, spread out: chunks of `MOVE_CHUNK` rows, each
        followed by a pause of `PACE` times its duration, until the round has lasted an
        interval (then it goes on without pauses, so that the mover keeps up).

        A second's rows moved at once (claim, warehouse insert, delete: 45-60 ms of a
        PostgreSQL backend at 2,000 serves/s) took a core from the serving workers and their
        commits for that long, every second; in chunks the same work comes in slices of a
        few milliseconds. At 2,000 serves/s, in two series of alternated runs, the median
        p99 was 17-18 ms against 24-25 ms (docs/benchmarks.md, "Eighth pass"). Not on
        SQLite: a DuckDB insert costs milliseconds whatever its size, so there one move a
        second is cheaper. Readers' `flush` moves everything at once, as before."""
        started = time.monotonic()
        while not self._stop.is_set():
            began = time.perf_counter()
            if self._move(None, MOVE_CHUNK) < MOVE_CHUNK:
                return
            if time.monotonic() - started < self.interval:
                self._stop.wait(PACE * (time.perf_counter() - began))

    def _vacuum(self) -> None:
        """PostgreSQL: vacuum the outbox after every `VACUUM_ROWS` rows this process moved.

        The outbox is a queue: each row is deleted a second after it was inserted, and every
        claim walks the primary key from the lowest id, over the entries of the rows deleted
        since the last vacuum. Autovacuum removes them only when it runs (it is off on some
        servers, this project's test machines among them): after 1.27 million serves the
        claim read 3,400 pages and took 9.8 ms for no row, and the table only grew. A vacuum
        of 20,000 dead rows takes ~12 ms, and `SKIP_LOCKED` skips it while another replica's
        runs. Without the right to vacuum the table, PostgreSQL only warns."""
        if not self.postgres or self.moved - self._vacuumed_at < VACUUM_ROWS:
            return
        self._vacuumed_at = self.moved
        try:
            with self.store.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM (SKIP_LOCKED) exposure_outbox")
        except Exception as exc:  # noqa: BLE001 - tried again after the next rows
            log.debug("outbox vacuum failed: %s", exc)

    def _checkpoint(self) -> None:
        """SQLite: once the WAL passes 4 MB, copy it into the database so that it starts over.

        The serve log's connection does not checkpoint (`store/locks.py`), so that no serve
        waits for the fsync; this thread does it, whether or not moves succeed. One passive
        pass never completes while serves keep committing (frames added meanwhile are left),
        and then no writer rewinds the log: the WAL grew by ~14 MB a second at 1,000
        serves/s. So passive passes repeat, each copying what the one before left (a
        fraction of a millisecond's worth), until one copies everything; the next commit then
        writes from the start of the file again (SQLite rewinds a fully copied WAL). No pass
        takes the write lock: a TRUNCATE checkpoint, which blocks writers while it copies and
        syncs, made serve commits wait 7-18 ms every second (docs/benchmarks.md). It is kept
        for a WAL that still passes 64 MB (a reader held an old snapshot through every pass).
        """
        if self.postgres or not self._wal or not os.path.exists(self._wal):
            return
        try:
            size = os.path.getsize(self._wal)
            if size <= WAL_CHECKPOINT_BYTES:
                return
            with self.store.engine.connect() as conn:
                for _ in range(_PASSIVE_PASSES):
                    busy, frames, copied = conn.exec_driver_sql(
                        "PRAGMA wal_checkpoint(PASSIVE)").one()
                    if not busy and frames == copied:
                        return
                if size > WAL_TRUNCATE_BYTES:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception as exc:  # noqa: BLE001 - tried again on the next round
            log.debug("WAL checkpoint failed: %s", exc)

    def _move(self, org_id: str | None, limit: int = BATCH) -> int:
        where = "WHERE organization_id = :org " if org_id else ""
        select = f"SELECT id, organization_id, payload FROM exposure_outbox {where}ORDER BY id " \
                 f"LIMIT {int(limit)}"
        with self._lock:
            if self.postgres:
                # Claimed until this transaction ends: other replicas skip these rows.
                with self.store.engine.begin() as conn:
                    rows = list(conn.execute(text(select + " FOR UPDATE SKIP LOCKED"),
                                             {"org": org_id}).all())
                    written, error = self._write_all(rows)
                    self._delete(conn, written)
            else:
                # SQLite: no transaction across the warehouse write (the serve log commits
                # meanwhile); one process per data dir, and this lock, keep moves apart.
                rows = self._select_sqlite(select, org_id)
                written, error = self._write_all(rows)
                self._delete_sqlite(written)
            self.moved += len(written)
            if error is not None:
                raise error
            return len(rows)

    def _write_all(self, rows: list[Any]) -> tuple[list[Any], Exception | None]:
        """Write the rows organization by organization; return those written and the first
        failure (the others stay in the outbox)."""
        by_org: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_org[row[1]].append(row)
        written: list[Any] = []
        error: Exception | None = None
        for org, batch in by_org.items():
            try:
                self._write(org, batch)
            except Exception as exc:  # noqa: BLE001 - reported after the others moved
                error = error or exc
                continue
            written += batch
        return written, error

    @staticmethod
    def _delete(conn: Any, rows: list[Any]) -> None:
        if rows:
            conn.execute(text(_delete_sql(rows)))

    def _delete_sqlite(self, rows: list[Any]) -> None:
        """Delete moved rows, each chunk one autocommitted statement (`Store.write_at_once`):
        SQLite's write lock is then taken and released inside one C call, with the GIL
        released throughout. In a transaction (BEGIN, DELETE, COMMIT) this thread held the
        lock while it waited for the GIL between the calls, up to the interpreter's 5 ms
        switch interval each time, and serve commits waited behind it (2.5-12 ms per
        second's move, docs/benchmarks.md)."""
        for i in range(0, len(rows), DELETE_CHUNK):
            self.store.write_at_once(text(_delete_sql(rows[i:i + DELETE_CHUNK])))

    def _select_sqlite(self, select: str, org_id: str | None) -> list[Any]:
        """The rows to move, through the raw `sqlite3` connection: tuples from C, where
        SQLAlchemy's rows cost this thread ~2 µs of GIL each."""
        raw = self.store.engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            return list(driver.execute(select, {"org": org_id}).fetchall())
        finally:
            raw.close()

    def _write(self, org_id: str, rows: list[Any]) -> None:
        driver = self.warehouses.managed(org_id)
        left = [{**decode(r[2]), "_explicit_id": True} for r in rows if r[0] <= self._horizon]
        if left:
            driver.ingest("exposures", left)
        fresh = [r[2] for r in rows if r[0] > self._horizon]
        if not fresh:
            return
        if hasattr(driver, "append_exposure_payloads"):
            # The warehouse parses the payloads: no decoding here, which held the GIL in
            # stretches the serving event loop waited behind (docs/benchmarks.md).
            self._behind.submit(driver.append_exposure_payloads, fresh).result()
        else:
            self._behind.submit(lambda: driver.append_exposures([decode(p) for p in fresh])
                                ).result()

    def _last_id(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM exposure_outbox"))
                       .scalar() or 0)


def _delete_sql(rows: list[Any]) -> str:
    ids = ", ".join(str(int(r[0])) for r in rows)
    return f"DELETE FROM exposure_outbox WHERE id IN ({ids})"
