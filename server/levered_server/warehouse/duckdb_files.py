"""The embedded warehouse's open files: each DuckDB file once per process, read-write.

DuckDB allows one configuration of a file per process, so the driver instances of an
organization share one `Database`: a root connection that hands out cursors, the writer's
cursor, and the lock that serializes the server's writes.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from pathlib import Path
from typing import Any

import duckdb

from levered_server.background import lower_thread_priority

SCHEMA = "managed_dw"
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.exposures (
  exposure_id VARCHAR, anonymous_id VARCHAR, optimization_id VARCHAR, variant JSON,
  variant_number INTEGER, context JSON, in_holdout BOOLEAN, propensity DOUBLE,
  model_version INTEGER, source VARCHAR, idempotency_key VARCHAR, timestamp_utc TIMESTAMP,
  organization_id VARCHAR, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS {SCHEMA}.rewards (
  reward_id VARCHAR, anonymous_id VARCHAR, name VARCHAR, value DOUBLE, timestamp_utc TIMESTAMP,
  organization_id VARCHAR, optimization_id VARCHAR, properties JSON, idempotency_key VARCHAR,
  created_at TIMESTAMP);
"""


class Database:
    """One file opened read-write: a root connection that only hands out cursors, the
    writer's cursor, and the lock that serializes the server's writes."""

    def __init__(self, path: str, config: dict[str, Any]) -> None:
        self.root = duckdb.connect(path, config=config)
        try:
            self.root.execute(_DDL)
            self.writer = self.root.cursor()
        except BaseException:
            self.root.close()
            raise
        self.write_lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        # Under the registry's lock: a connection object is not for concurrent use.
        with _GUARD:
            return self.root.cursor()

    def close(self) -> None:
        """Close the file (its cursors with it: a query still running fails)."""
        self.root.close()


_DATABASES: dict[str, Database] = {}
_GUARD = threading.Lock()


def database_of(path: Path, config: dict[str, Any]) -> Database:
    key = str(path)
    with _GUARD:
        found = _DATABASES.get(key)
        if found is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            found = _DATABASES[key] = _open_lowered(key, config)
        return found


def _open_lowered(path: str, config: dict[str, Any]) -> Database:
    """Open the file on a thread at a lower CPU priority (`background.py`).

    DuckDB starts the worker threads of a database when it opens, and they inherit the
    opener's priority: opened from a request's thread, a training query's or an ingest's
    workers competed with the serving event loop at full priority. Serving never waits for
    DuckDB, so everything DuckDB runs goes after it.
    """
    opened: dict[str, Any] = {}

    def run() -> None:
        lower_thread_priority()
        try:
            opened["database"] = Database(path, config)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            opened["error"] = exc

    opener = threading.Thread(target=run, name="levered-duckdb-open")
    opener.start()
    opener.join()
    if "error" in opened:
        raise opened["error"]
    database: Database = opened["database"]
    return database


def discard(key: str, database: Database) -> None:
    """Forget and close a database that failed (the next use opens it again), only if it is
    still the one registered: never another thread's newer one."""
    with _GUARD:
        if _DATABASES.get(key) is database:
            del _DATABASES[key]
    with contextlib.suppress(duckdb.Error):
        database.close()


def close_writers() -> None:
    """Close every open warehouse file (at shutdown), each once its current write is done."""
    with _GUARD:
        databases = list(_DATABASES.items())
        _DATABASES.clear()
    for _, database in databases:
        with database.write_lock:
            with contextlib.suppress(duckdb.Error):
                database.close()


# DuckDB objects left to interpreter finalization can abort the process.
atexit.register(close_writers)
