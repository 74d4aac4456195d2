"""An example warehouse driver written outside the server: SQLite files, read-only.

It uses only the public contract (:mod:`levered_server.warehouse.driver_api`) and the value
conversion the contract names (:mod:`levered_server.warehouse.values`), and registers under the
``levered.warehouse.v1`` entry points (setup.cfg). Read-only: a statement check, then a
connection opened ``mode=ro`` with ``PRAGMA query_only`` and an authorizer that refuses ATTACH
and every write. Timeouts: a progress handler; cancellation: ``Connection.interrupt``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import pathlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from levered_server.warehouse.driver_api import (
    Cancel,
    Dialect,
    NotReadOnly,
    ResultSet,
    SqlRejected,
    WarehouseDriver,
    WarehouseFailure,
    hooked,
    pick_table,
)
from levered_server.warehouse.values import unique_names

__version__ = "0.1.0"
_COMMENT = re.compile(r"--[^\n]*|/\*.*?(\*/|\Z)", re.S)
_TS = "%Y-%m-%d %H:%M:%f"  # SQLite's own timestamp text (milliseconds): compares as text
# Authorizer actions a read-only query may take (sqlite3.SQLITE_*): reading, functions, and
# the SELECT/transaction bookkeeping; anything else (writes, ATTACH, PRAGMA …) is denied.
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            sqlite3.SQLITE_RECURSIVE}


def _authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    # Table-valued functions (json_each, pragma_table_info) register themselves in the
    # in-memory schema this way; the file itself stays read-only (mode=ro, query_only).
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" \
            or action == sqlite3.SQLITE_PRAGMA and arg1 == "table_info":
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _timestamp(text: bytes) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.decode())
    except ValueError:
        return None


# Columns declared BOOLEAN or TIMESTAMP come back as bool and datetime (PARSE_DECLTYPES).
sqlite3.register_converter("BOOLEAN", lambda b: bool(int(b)))
sqlite3.register_converter("TIMESTAMP", _timestamp)


def _bucket(text: str | None) -> int | None:
    """API.md 2.4's holdout bucket: SHA-256's first 8 bytes, big-endian, mod 10000."""
    if text is None:
        return None
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 10000


class SQLiteDialect(Dialect):
    """SQLite: `:name` parameters, timestamps as text, JSON through the JSON1 functions."""

    types: ClassVar[dict[str, str]] = {"text": "TEXT", "float": "REAL", "integer": "INTEGER",
                                       "timestamp": "TEXT", "boolean": "INTEGER"}

    def placeholder(self, name: str) -> str:
        return f":{name}"

    def cast(self, expr: str, kind: Any) -> str:
        if kind == "timestamp":  # one spelling, so that timestamps compare as text
            return f"strftime('{_TS}', {expr})"
        return super().cast(expr, kind)

    def json_text(self, json_expr: str, key: str) -> str:
        path = f"'$.\"' || {key} || '\"'"
        # json_extract gives booleans as 1/0: spell them as JSON does.
        return (f"CASE json_type({json_expr}, {path}) WHEN 'true' THEN 'true' "
                f"WHEN 'false' THEN 'false' ELSE CAST(json_extract({json_expr}, {path}) AS TEXT) END")

    def json_key(self, json_expr: str) -> str:
        return (f"(SELECT json_group_object(key, value) FROM "
                f"(SELECT key, value FROM json_each({json_expr}) ORDER BY key))")

    def add_hours(self, timestamp: str, hours: int) -> str:
        return f"strftime('{_TS}', {timestamp}, '+{int(hours)} hours')"

    def holdout_bucket(self, prefix: str, text_expr: str) -> str:
        return f"levered_bucket({self.literal(prefix)} || {text_expr})"  # a Python function


class SQLiteCredentials(BaseModel):
    """`credentials` of a SQLite connection: the database file on the server's disk."""

    model_config = ConfigDict(extra="forbid", strict=True)

    path: str = Field(min_length=1)


def _param(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    return value


class SQLiteDriver(WarehouseDriver):
    """A SQLite file, read through a connection that cannot write."""

    provider = "sqlite"
    driver_name = "levered-warehouse-sqlite"
    driver_version = __version__
    dialect: ClassVar[Dialect] = SQLiteDialect()
    credentials_model = SQLiteCredentials

    @classmethod
    def default_dataset(cls, credentials: dict[str, Any]) -> str | None:
        return "main"

    @property
    def dataset(self) -> str:
        return "main"

    @contextlib.contextmanager
    def _connect(self, timeout: float, cancel: Cancel | None = None) -> Iterator[sqlite3.Connection]:
        path = pathlib.Path(str(self.config.credentials.get("path", "")))
        if not path.is_file():
            raise WarehouseFailure(f"no SQLite database at {path}")
        try:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                  timeout=timeout, check_same_thread=False,
                                  detect_types=sqlite3.PARSE_DECLTYPES)
        except sqlite3.Error as exc:
            raise WarehouseFailure(str(exc)) from None
        try:
            con.execute("PRAGMA query_only = ON")
            con.create_function("levered_bucket", 1, _bucket, deterministic=True)
            con.set_authorizer(_authorize)
            deadline = time.monotonic() + timeout
            timed_out = threading.Event()

            def past_deadline() -> int:
                if time.monotonic() > deadline:
                    timed_out.set()
                    return 1  # non-zero: SQLite interrupts the statement
                # (a cancel before the statement started finds nothing to interrupt)
                return 1 if cancel is not None and cancel.cancelled else 0

            con.set_progress_handler(past_deadline, 10_000)
            with hooked(cancel, con.interrupt):
                try:
                    yield con
                except sqlite3.Error as exc:
                    raise self._failure(exc, timed_out.is_set(), cancel) from None
        finally:
            con.close()

    @staticmethod
    def _failure(exc: sqlite3.Error, timed_out: bool, cancel: Cancel | None) -> Exception:
        text = str(exc)
        if cancel is not None and cancel.cancelled:
            return WarehouseFailure("the query was cancelled", cancelled=True)
        if timed_out or "interrupted" in text:
            return WarehouseFailure("the query timed out", timeout=True)
        if "not authorized" in text or "readonly" in text or "read-only" in text:
            return NotReadOnly(None, f"The query was refused: {text}")
        if isinstance(exc, sqlite3.OperationalError | sqlite3.ProgrammingError):
            return SqlRejected(text)  # syntax, names, several statements
        return WarehouseFailure(text)

    def ping(self, *, timeout: float) -> None:
        with self._connect(timeout) as con:
            con.execute("SELECT 1").fetchall()

    def check_read_only(self, sql: str) -> None:
        statements = _statements(sql)
        if len(statements) != 1:
            raise NotReadOnly(None if statements else "nothing")
        words = _COMMENT.sub(" ", statements[0]).replace("(", " ").split()
        word = words[0].upper() if words else "nothing"
        if word not in ("SELECT", "WITH", "VALUES"):
            raise NotReadOnly(word)
        if word == "WITH":  # SQLite has no data-modifying CTE, but WITH … DELETE is a delete
            for w in words:
                if w.upper() in ("INSERT", "UPDATE", "DELETE"):
                    raise NotReadOnly(w.upper())

    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None, cancel: Cancel | None = None) -> ResultSet:
        started = time.perf_counter()
        bound = {k: _param(v) for k, v in (params or {}).items()}
        with self._connect(timeout, cancel) as con:
            cur = con.execute(sql, bound)
            names = unique_names([d[0] for d in cur.description or []])
            raw = cur.fetchmany(limit + 1)
        types = [_type_of([r[i] for r in raw]) for i in range(len(names))]
        return ResultSet.of(names, types, raw, limit=limit, started=started)

    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        # SQLite types values, not columns: a row shows them (the column's declared type
        # when it is a plain column of a table is not reported by the library).
        result = self.query(sql, limit=1, timeout=timeout, params=params)
        return result.columns

    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        with self._connect(timeout) as con:
            rows = con.execute("SELECT name, type FROM sqlite_schema WHERE type IN "
                               "('table', 'view') AND name NOT LIKE 'sqlite_%' "
                               "ORDER BY name").fetchall()
        return [{"name": n, "type": kind, "row_count": None} for n, kind in rows]

    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        schema, _, table = name.rpartition(".")
        schema = schema or "main"
        with self._connect(timeout) as con:
            rows = con.execute("SELECT 'main', name FROM sqlite_schema WHERE type IN "
                               "('table', 'view') AND lower(name) = lower(?)",
                               (table,)).fetchall() if schema.lower() == "main" else []
        return pick_table(rows, schema, table, name)

    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        with self._connect(timeout) as con:
            rows = con.execute("SELECT name, type, \"notnull\" FROM pragma_table_info(?)",
                               (table,)).fetchall()
        return [{"name": n, "type": (t or "").upper(), "nullable": not notnull}
                for n, t, notnull in rows]


def _statements(sql: str) -> list[str]:
    """Split where SQLite says a statement is complete; drop empty and comment-only parts."""
    out, current = [], ""
    for ch in sql:
        current += ch
        if ch == ";" and sqlite3.complete_statement(current):
            out.append(current)
            current = ""
    out.append(current)
    return [p for p in out if _COMMENT.sub("", p).strip(" \t\r\n;")]


def _type_of(values: list[Any]) -> str:
    """A result column's type, from its first non-NULL value (SQLite types values)."""
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return "BOOLEAN"
        if isinstance(v, dt.datetime):
            return "TIMESTAMP"
        if isinstance(v, int):
            return "INTEGER"
        if isinstance(v, float):
            return "REAL"
        if isinstance(v, bytes):
            return "BLOB"
        return "TEXT"
    return "NULL"
