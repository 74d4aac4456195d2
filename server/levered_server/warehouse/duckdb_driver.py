"""The embedded, managed warehouse: one DuckDB file per organization (API.md 10.3).

Each file is opened once per process, read-write (DuckDB allows one configuration of a file
per process). The server's writes run on one connection under a per-file lock; every read (a
user's query, training, results) runs on a cursor of its own in a `READ ONLY` transaction that
is rolled back, so reads never wait for writes nor writes for reads, and a statement can be
interrupted (timeout, cancel) without touching anyone else's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from levered_server.warehouse.driver_api import (
    Cancel,
    ColumnSet,
    Dialect,
    NotReadOnly,
    ResultSet,
    SqlRejected,
    WarehouseDriver,
    WarehouseFailure,
    pick_table,
)
from levered_server.warehouse.duckdb_files import SCHEMA, Database, database_of, discard
from levered_server.warehouse.duckdb_sql import CONFIG, DuckDBDialect, statements, writing_node
from levered_server.warehouse.exposure_writer import (
    insert_exposure_payloads,
    insert_exposures,
    insert_rows,
)
from levered_server.warehouse.managed_tables import EXPOSURES, fresh_rows, table_of
from levered_server.warehouse.values import unique_names

WRITE_WAIT = 10.0  # seconds a write waits for the file's writer before "busy"
_POLL = 0.05  # seconds between the checks of a statement's time limit and cancellation


class DuckDBDriver(WarehouseDriver):
    """Managed DuckDB: reads in read-only transactions, server writes one at a time."""

    provider = "duckdb"
    managed = True
    dialect: ClassVar[Dialect] = DuckDBDialect()

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
        # Memory is capped so a large join or aggregation spills to disk instead of growing
        # the server process with the number of events.
        config = dict(CONFIG)
        if self.options.get("memory_limit"):
            config["memory_limit"] = str(self.options["memory_limit"])
            self.temp_dir.parent.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(self.temp_dir)
        if self.options.get("threads"):
            config["threads"] = int(self.options["threads"])
        return config

    def _open(self) -> Database:
        try:
            return database_of(self.path, self._config())
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            raise WarehouseFailure(f"embedded warehouse unreadable: {exc}") from None

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file's read-write connection in a transaction, for the server's own inserts
        only; one write at a time (a write waits at most `WRITE_WAIT` seconds).

        :raises WarehouseFailure: busy, or the file cannot be opened (nothing was written).
        """
        database = self._open()
        # Only the holder of the lock ever touches (or closes) the writer: a write that gives
        # up waiting leaves the one in progress alone.
        if not database.write_lock.acquire(timeout=WRITE_WAIT):
            raise WarehouseFailure(f"embedded warehouse busy: another write held it for more "
                                   f"than {WRITE_WAIT:g} s")
        try:
            con = database.writer
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
        except (duckdb.IOException, duckdb.FatalException) as exc:
            # The file failed under us: reopen it on the next use.
            discard(str(self.path), database)
            raise WarehouseFailure(f"embedded warehouse unreadable: {exc}") from None
        finally:
            database.write_lock.release()

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

    def append_exposure_payloads(self, payloads: list[str]) -> None:
        """Insert exposures from their outbox payloads in one transaction, as
        `append_exposures` does their rows.

        :raises WarehouseFailure: nothing was written.
        """
        if payloads:
            with self._writing(), self.writer() as con:
                insert_exposure_payloads(con, payloads)

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
        """A cursor of its own in a `READ ONLY` transaction, always rolled back: DuckDB itself
        refuses every write. It waits for no lock (`timeout` bounds the statements, see
        :meth:`_run`)."""
        cur = self._open().cursor()
        try:
            cur.execute(f"SET search_path = '{SCHEMA}'")
            cur.execute("BEGIN TRANSACTION READ ONLY")
            yield cur
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            raise WarehouseFailure(f"embedded warehouse unreadable: {exc}") from None
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            with contextlib.suppress(duckdb.Error):
                cur.close()

    @contextlib.contextmanager
    def _limited(self, con: duckdb.DuckDBPyConnection, timeout: float,
                 cancel: Cancel | None) -> Iterator[None]:
        """Interrupt `con`'s statements at `timeout` or once `cancel` is cancelled; say which.

        A watcher polls (every `_POLL` s) and interrupts again until the block ends, so a
        cancel that lands before DuckDB has started the statement is not lost.
        """
        if cancel is not None and cancel.cancelled:
            raise WarehouseFailure("the query was cancelled", cancelled=True)
        done = threading.Event()
        why: list[str] = []
        deadline = time.monotonic() + timeout

        def watch() -> None:
            while not done.wait(_POLL):
                if cancel is not None and cancel.cancelled:
                    why.append("cancelled")
                elif time.monotonic() >= deadline:
                    why.append("timeout")
                else:
                    continue
                con.interrupt()

        watcher = threading.Thread(target=watch, name="levered-duckdb-limit", daemon=True)
        watcher.start()
        try:
            yield
        except duckdb.InterruptException:
            if why and why[0] == "cancelled":
                raise WarehouseFailure("the query was cancelled", cancelled=True) from None
            raise WarehouseFailure(f"query timed out after {timeout:g} s",
                                   timeout=True) from None
        finally:
            done.set()
            watcher.join()

    def _run(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None
             ) -> duckdb.DuckDBPyConnection:
        try:
            return con.execute(sql, params or None)
        except duckdb.InterruptException:
            raise
        except duckdb.PermissionException as exc:
            raise NotReadOnly(None, f"The query was refused: {exc}") from None
        except (duckdb.InvalidInputException, duckdb.TransactionException) as exc:
            if "read-only" in str(exc) or "read only" in str(exc):
                raise NotReadOnly(None, f"The query was refused: {exc}") from None
            raise SqlRejected(str(exc)) from None
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                duckdb.ConversionException, duckdb.NotImplementedException) as exc:
            raise SqlRejected(str(exc)) from None
        except duckdb.Error as exc:
            raise WarehouseFailure(str(exc)) from None

    def ping(self, *, timeout: float) -> None:
        with self.reader(timeout) as con:
            con.execute("SELECT 1").fetchall()

    def check_read_only(self, sql: str) -> None:
        try:
            parsed = statements(sql)
        except duckdb.Error as exc:
            raise SqlRejected(str(exc)) from None
        if len(parsed) != 1:
            raise NotReadOnly(None if len(parsed) > 1 else "nothing")
        kind = parsed[0].type.name
        if kind != "SELECT":
            # DuckDB files INSTALL under LOAD: name the statement by the word the user typed.
            word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            raise NotReadOnly(word if word.isalpha() and word not in ("WITH", "FROM") else kind)
        try:
            writes = writing_node(sql)
        except duckdb.Error as exc:
            raise SqlRejected(str(exc)) from None
        if writes is not None:
            raise NotReadOnly(writes, f"Only a single SELECT or WITH query is allowed; got "
                                      f"{writes} inside the query.")

    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None, cancel: Cancel | None = None) -> ResultSet:
        started = time.perf_counter()
        with self.reader(timeout) as con, self._limited(con, timeout, cancel):
            cur = self._run(con, sql, params)
            desc = cur.description or []
            try:
                raw = cur.fetchmany(limit + 1)
            except duckdb.InterruptException:
                raise
            except duckdb.Error as exc:
                raise WarehouseFailure(str(exc)) from None
        types = [str(d[1]) for d in desc]
        names = unique_names([d[0] for d in desc])
        return ResultSet.of(names, types, raw, limit=limit, started=started)

    def query_columns(self, sql: str, *, limit: int, timeout: float,
                      params: dict[str, Any] | None = None,
                      cancel: Cancel | None = None) -> ColumnSet:
        """The result as numpy columns (``fetchnumpy``): no Python object per value.

        Numbers arrive as arrays (HUGEINT and DECIMAL as float64), text as object arrays,
        NULLs masked. Converting ~10,000 rows to dicts of JSON values held this process's GIL
        for ~0.2 s; this takes a few milliseconds. At most ``limit`` rows (+1 to detect
        truncation) are fetched.
        """
        started = time.perf_counter()
        wrapped = f"SELECT * FROM ({sql}) AS _levered_q LIMIT {int(limit) + 1}"
        with self.reader(timeout) as con, self._limited(con, timeout, cancel):
            cur = self._run(con, wrapped, params)
            names = unique_names([d[0] for d in cur.description or []])
            try:
                raw = list(cur.fetchnumpy().values())
            except duckdb.InterruptException:
                raise
            except duckdb.Error as exc:
                raise WarehouseFailure(str(exc)) from None
        n = len(raw[0]) if raw else 0
        return ColumnSet(columns={name: col[:limit] for name, col in zip(names, raw, strict=True)},
                         n_rows=min(n, limit), truncated=n > limit,
                         elapsed_ms=int((time.perf_counter() - started) * 1000))

    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        wrapped = f"SELECT * FROM ({sql}) AS _levered_q LIMIT 0"
        with self.reader(timeout) as con, self._limited(con, timeout, None):
            desc = self._run(con, wrapped, params).description or []
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
