"""The embedded, managed warehouse: one DuckDB file per organization (API.md 10.3)."""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from levered_server.warehouse.base import (
    ColumnSet,
    NotReadOnly,
    ResultSet,
    SqlRejected,
    WarehouseDriver,
    WarehouseFailure,
    pick_table,
)
from levered_server.warehouse.exposure_writer import insert_exposures, insert_rows
from levered_server.warehouse.managed_tables import EXPOSURES, fresh_rows, table_of
from levered_server.warehouse.rwlock import RWLock
from levered_server.warehouse.values import to_json, unique_names

SCHEMA = "managed_dw"
# External access off (no files, URLs, ATTACH, INSTALL/LOAD) and the
# configuration locked so a query cannot turn it back on.
_CONFIG: dict[str, Any] = {"enable_external_access": False,
                           "autoinstall_known_extensions": False,
                           "autoload_known_extensions": False, "lock_configuration": True}
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
_LOCKS: dict[str, RWLock] = {}
_LOCKS_GUARD = threading.Lock()
WRITE_WAIT = 10.0


def _lock_for(path: Path) -> RWLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), RWLock())


_WRITERS: dict[str, duckdb.DuckDBPyConnection] = {}
_CLOSING = threading.Lock()
_PARSER: list[duckdb.DuckDBPyConnection] = []
_PARSER_LOCK = threading.Lock()


def _close_writer(key: str) -> None:
    # Under a mutex: a second reader must wait until the first one has *finished*
    # closing (a checkpoint) before it opens the file read-only.
    with _CLOSING:
        con = _WRITERS.pop(key, None)
        if con is not None:
            con.close()


def close_writers() -> None:
    """Close every cached writer connection (at shutdown)."""
    for key in list(_WRITERS):
        with _lock_for(Path(key)).write():
            _close_writer(key)


def _close_parser() -> None:
    with _PARSER_LOCK:
        while _PARSER:
            _PARSER.pop().close()


def _statements(sql: str) -> list[Any]:
    # One in-memory database used only for DuckDB's parser, closed at exit
    # (DuckDB objects left to interpreter finalization can abort the process).
    with _PARSER_LOCK:
        if not _PARSER:
            _PARSER.append(duckdb.connect(":memory:", config=dict(_CONFIG)))
        return list(_PARSER[0].extract_statements(sql))


# DuckDB objects left to interpreter finalization can abort the process.
atexit.register(_close_parser)
atexit.register(close_writers)


class DuckDBDriver(WarehouseDriver):
    """Managed DuckDB: reads on `read_only` connections, server writes under an exclusive lock."""

    provider = "duckdb"
    managed = True

    @property
    def path(self) -> Path:
        return Path(self.options["warehouse_dir"]) / f"{self.config.organization_id}.duckdb"

    @property
    def dataset(self) -> str:
        return SCHEMA

    @property
    def temp_dir(self) -> Path:
        """Where this database spills beyond its memory limit (DuckDB empties it on close)."""
        return Path(self.options["warehouse_dir"]) / "tmp" / self.config.organization_id

    def _config(self) -> dict[str, Any]:
        # The same for every connection to the file (DuckDB refuses a second configuration
        # of an open database). Memory is capped so a large join or aggregation spills to
        # disk instead of growing the server process with the number of events.
        config = dict(_CONFIG)
        if self.options.get("memory_limit"):
            config["memory_limit"] = str(self.options["memory_limit"])
            self.temp_dir.parent.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(self.temp_dir)
        if self.options.get("threads"):
            config["threads"] = int(self.options["threads"])
        return config

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive read-write connection, for the server's own inserts only.

        It stays open between batches (opening costs ~15 ms) until a reader needs the file.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = str(self.path)
        try:
            with _lock_for(self.path).write(WRITE_WAIT):
                con = _WRITERS.get(key)
                if con is None:
                    con = duckdb.connect(key, config=self._config())
                    con.execute(_DDL)
                    _WRITERS[key] = con
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except (TimeoutError, duckdb.IOException) as exc:
            _close_writer(key)
            raise WarehouseFailure(f"embedded warehouse busy or unreadable: {exc}") from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        # The write API reports every failure as WarehouseFailure (nothing was written).
        try:
            yield
        except (duckdb.Error, OSError) as exc:
            raise WarehouseFailure(f"writing to the embedded warehouse failed: {exc}") from None

    def append_exposures(self, rows: list[dict[str, Any]]) -> None:
        """Insert exposure rows (keyed by `exposure_writer.COLUMNS`) in one transaction.

        :raises WarehouseFailure: nothing was written.
        """
        if rows:
            with self._writing(), self.writer() as con:
                insert_exposures(con, rows)

    def ingest(self, kind: str, rows: list[dict[str, Any]]) -> int:
        """Insert the rows whose idempotency key (and explicit exposure id) is new, in one
        transaction; return how many were duplicates.

        :raises WarehouseFailure: nothing was written.
        """
        table, columns = table_of(kind)
        if not rows:
            return 0
        with self._writing(), self.writer() as con:
            keys = [r["idempotency_key"] for r in rows if r.get("idempotency_key")]
            seen_keys = {k for (k,) in con.execute(
                f"SELECT DISTINCT idempotency_key FROM {table} "
                "WHERE list_contains(?, idempotency_key)", [keys]).fetchall()} if keys else set()
            ids = [r["exposure_id"] for r in rows if r.get("_explicit_id")]
            seen_ids = {k for (k,) in con.execute(
                f"SELECT DISTINCT exposure_id FROM {EXPOSURES} "
                "WHERE list_contains(?, exposure_id)", [ids]).fetchall()} if ids else set()
            fresh = fresh_rows(rows, seen_keys, seen_ids)
            insert_rows(con, table, columns, fresh)
        return len(rows) - len(fresh)

    @contextlib.contextmanager
    def reader(self, timeout: float) -> Iterator[duckdb.DuckDBPyConnection]:
        """A `read_only` connection: the database itself refuses every write."""
        key = str(self.path)
        if not self.path.exists():
            with self.writer():
                pass
        try:
            with _lock_for(self.path).read(timeout):
                # One configuration per file and process: the cached writer must go. No
                # writer runs while a read lock is held, so closing it here is safe.
                _close_writer(key)
                con = duckdb.connect(key, read_only=True, config=self._config())
                try:
                    con.execute(f"SET search_path = '{SCHEMA}'")
                    yield con
                finally:
                    con.close()
        except (TimeoutError, duckdb.IOException, duckdb.ConnectionException) as exc:
            raise WarehouseFailure(f"embedded warehouse busy or unreadable: {exc}") from None

    def ping(self, *, timeout: float) -> None:
        with self.reader(timeout) as con:
            con.execute("SELECT 1").fetchall()

    def check_read_only(self, sql: str) -> None:
        try:
            statements = _statements(sql)
        except duckdb.Error as exc:
            raise SqlRejected(str(exc)) from None
        if len(statements) != 1:
            raise NotReadOnly(None if len(statements) > 1 else "nothing")
        kind = statements[0].type.name
        if kind != "SELECT":
            # DuckDB files INSTALL under LOAD: name the statement by the word the user typed.
            word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            raise NotReadOnly(word if word.isalpha() and word not in ("WITH", "FROM") else kind)

    def _run(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None,
             timeout: float) -> duckdb.DuckDBPyConnection:
        timer = threading.Timer(timeout, con.interrupt)
        timer.start()
        try:
            return con.execute(sql, params or None)
        except duckdb.InterruptException:
            raise WarehouseFailure(f"query timed out after {timeout:g} s", timeout=True) from None
        except duckdb.PermissionException as exc:
            raise NotReadOnly(None, f"The query was refused: {exc}") from None
        except duckdb.InvalidInputException as exc:
            if "read-only" in str(exc) or "read only" in str(exc):
                raise NotReadOnly(None, f"The query was refused: {exc}") from None
            raise SqlRejected(str(exc)) from None
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                duckdb.ConversionException, duckdb.NotImplementedException) as exc:
            raise SqlRejected(str(exc)) from None
        except duckdb.Error as exc:
            raise WarehouseFailure(str(exc)) from None
        finally:
            timer.cancel()

    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None) -> ResultSet:
        started = time.perf_counter()
        with self.reader(timeout) as con:
            cur = self._run(con, sql, params, timeout)
            desc = cur.description or []
            raw = cur.fetchmany(limit + 1)
        types = [str(d[1]) for d in desc]
        names = unique_names([d[0] for d in desc])
        rows = [{n: to_json(v, t) for n, v, t in zip(names, row, types, strict=False)} for row in raw[:limit]]
        return ResultSet(columns=[{"name": n, "type": t} for n, t in zip(names, types, strict=False)],
                         rows=rows, truncated=len(raw) > limit,
                         elapsed_ms=int((time.perf_counter() - started) * 1000))

    def query_columns(self, sql: str, *, limit: int, timeout: float,
                      params: dict[str, Any] | None = None) -> ColumnSet:
        """The result as numpy columns (``fetchnumpy``): no Python object per value.

        Numbers arrive as arrays (HUGEINT and DECIMAL as float64), text as object arrays,
        NULLs masked. Converting ~10,000 rows to dicts of JSON values held this process's GIL
        for ~0.2 s; this takes a few milliseconds. At most ``limit`` rows (+1 to detect
        truncation) are fetched.
        """
        started = time.perf_counter()
        wrapped = f"SELECT * FROM ({sql}) AS _levered_q LIMIT {int(limit) + 1}"
        with self.reader(timeout) as con:
            cur = self._run(con, wrapped, params, timeout)
            names = unique_names([d[0] for d in cur.description or []])
            try:
                raw = list(cur.fetchnumpy().values())
            except duckdb.Error as exc:
                raise WarehouseFailure(str(exc)) from None
        n = len(raw[0]) if raw else 0
        return ColumnSet(columns={name: col[:limit] for name, col in zip(names, raw, strict=True)},
                         n_rows=min(n, limit), truncated=n > limit,
                         elapsed_ms=int((time.perf_counter() - started) * 1000))

    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        wrapped = f"SELECT * FROM ({sql}) AS _levered_q LIMIT 0"
        with self.reader(timeout) as con:
            desc = self._run(con, wrapped, params, timeout).description or []
        return [{"name": d[0], "type": str(d[1])} for d in desc]

    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        with self.reader(timeout) as con:
            rows = con.execute(
                "SELECT t.table_name, t.table_type, d.estimated_size "
                "FROM information_schema.tables t LEFT JOIN duckdb_tables() d "
                "ON d.schema_name = t.table_schema AND d.table_name = t.table_name "
                "WHERE t.table_schema = ? ORDER BY t.table_name", [SCHEMA]).fetchall()
        return [{"name": n, "type": "view" if "VIEW" in kind else "table",
                 "row_count": size} for n, kind, size in rows]

    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        schema, _, table = name.rpartition(".")
        schema = schema or SCHEMA
        with self.reader(timeout) as con:
            rows = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                               "WHERE lower(table_schema) = lower(?) "
                               "AND lower(table_name) = lower(?)", [schema, table]).fetchall()
        return pick_table(rows, schema, table, name)

    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        with self.reader(timeout) as con:
            rows = con.execute("SELECT column_name, data_type, is_nullable "
                               "FROM information_schema.columns WHERE table_schema = ? "
                               "AND table_name = ? ORDER BY ordinal_position",
                               [schema, table]).fetchall()
        return [{"name": n, "type": t, "nullable": nullable == "YES"} for n, t, nullable in rows]

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def placeholder(self, name: str) -> str:
        return f"${name}"
