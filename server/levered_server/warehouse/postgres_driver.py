"""Bring-your-own PostgreSQL: read-only sessions, `BEGIN READ ONLY … ROLLBACK`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

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
from levered_server.warehouse.sqltext import first_keyword, split_statements
from levered_server.warehouse.values import unique_names


class PostgresDialect(Dialect):
    """PostgreSQL as psycopg sends it: `%(name)s` parameters, so a literal `%` is doubled."""

    def placeholder(self, name: str) -> str:
        return f"%({name})s"

    def escape_text(self, sql: str) -> str:
        return sql.replace("%", "%%")

    def json_text(self, json_expr: str, key: str) -> str:
        return f"CAST({json_expr} AS jsonb) ->> {key}"

    def json_key(self, json_expr: str) -> str:
        return f"CAST({json_expr} AS jsonb)"

    def approx_distinct(self, expr: str) -> str:
        # Exact (PostgreSQL has no built-in sketch), over the bytes: under the "C" collation
        # the sort behind count(DISTINCT) compares with memcmp instead of the database's
        # collation, 34-36 → 19-21 ms for 60,000 ids (docs/benchmarks.md, "Sixth pass"); a
        # deterministic collation's equal values are equal bytes, so the count is the same.
        return f'count(DISTINCT CAST({expr} AS TEXT) COLLATE "C")'

    def holdout_bucket(self, prefix: str, text_expr: str) -> str:
        digest = f"sha256(convert_to({self.literal(prefix)} || {text_expr}, 'UTF8'))"
        big = " + ".join(f"get_byte({digest}, {i})::numeric * {256 ** (7 - i)}" for i in range(8))
        return f"mod({big}, 10000)"


class PostgresCredentials(BaseModel):
    """`credentials` of a PostgreSQL connection (API.md 10.1)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    host: str = Field(min_length=1)
    port: int = Field(5432, ge=1, le=65535)
    database: str = Field(min_length=1)
    username: str = Field(min_length=1)
    password: str | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


class PostgresDriver(WarehouseDriver):
    """A customer's PostgreSQL; the server never writes to it."""

    provider = "postgres"
    managed = False
    dialect: ClassVar[Dialect] = PostgresDialect()
    credentials_model: ClassVar[type[BaseModel] | None] = PostgresCredentials

    @classmethod
    def default_dataset(cls, credentials: dict[str, Any]) -> str | None:
        return "public"

    @property
    def dataset(self) -> str:
        return self.config.dataset_id or "public"

    def _login(self) -> dict[str, Any]:
        """libpq parameters of the session: host, database, user… (the credentials')."""
        c = self.config.credentials
        return {"host": c.get("host"), "port": int(c.get("port") or 5432),
                "dbname": c.get("database"), "user": c.get("username"),
                "password": c.get("password") or None, "sslmode": c.get("sslmode") or "prefer"}

    def _refused(self, exc: Exception) -> WarehouseFailure:
        """The failure to report when connecting fails."""
        return WarehouseFailure(str(exc).strip())

    @contextlib.contextmanager
    def _connect(self, timeout: float) -> Iterator[Any]:
        import psycopg

        ms = max(1, int(timeout * 1000))
        login = self._login()
        try:
            conn = psycopg.connect(
                **login, connect_timeout=max(1, int(timeout)), application_name="levered-server",
                # Read-only for the whole session, and a statement timeout, so even a
                # data-modifying CTE that passes the statement check cannot write.
                options=f"-c default_transaction_read_only=on -c statement_timeout={ms} "
                        "-c TimeZone=UTC")
        except psycopg.Error as exc:
            raise self._refused(exc) from None
        try:
            conn.read_only = True
            # Unqualified names resolve in the connection's schema.
            conn.execute("SELECT set_config('search_path', %s, false)",
                         (f'"{self.dataset}", public',))
            conn.commit()
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
            conn.close()

    def _failure(self, state: str, text: str) -> Exception:
        """The driver's exception for a statement that failed with SQLSTATE `state`."""
        if state == "25006":  # read_only_sql_transaction
            return NotReadOnly(None, f"The query was refused: {text}")
        if state == "57014":  # query_canceled (statement_timeout)
            return WarehouseFailure(text, timeout=True)
        if state[:2] in ("42", "22") and state != "42501":  # syntax, names, data
            return SqlRejected(text)
        return WarehouseFailure(text)

    def _execute(self, conn: Any, sql: str, params: Any = None, *,
                 cancel: Cancel | None = None) -> Any:
        import psycopg

        cur = conn.cursor()
        try:
            cur.execute(sql, params)
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None) or ""
            if state == "57014" and cancel is not None and cancel.cancelled:
                raise WarehouseFailure("the query was cancelled", cancelled=True) from None
            raise self._failure(state, str(exc).strip()) from None
        return cur

    def ping(self, *, timeout: float) -> None:
        with self._connect(timeout) as conn:
            self._execute(conn, "SELECT 1").fetchall()
            found = self._execute(conn, "SELECT 1 FROM information_schema.schemata "
                                  "WHERE schema_name = %s", (self.dataset,)).fetchall()
            if not found:
                raise WarehouseFailure(f"schema {self.dataset!r} does not exist")

    def check_read_only(self, sql: str) -> None:
        statements = split_statements(sql)
        if len(statements) != 1:
            raise NotReadOnly(None if statements else "nothing")
        kind = first_keyword(statements[0])
        if kind not in ("SELECT", "WITH"):
            raise NotReadOnly(kind)

    def _types(self, conn: Any, desc: Any) -> list[str]:
        """Type names of the result columns (`INT4`, `INT4[]`, `VOID`…), never raw OIDs."""
        names: dict[int, str] = {}
        for d in desc:
            info = conn.adapters.types.get(d.type_code)
            if info is not None:  # psycopg knows the built-in types, and their arrays
                names[d.type_code] = info.name + ("[]" if info.oid != d.type_code else "")
        unknown = sorted({d.type_code for d in desc} - set(names))
        if unknown:
            # Types psycopg has no adapter for (void, enums, domains, extensions): ask PostgreSQL.
            with conn.cursor() as cur:
                cur.execute("SELECT oid::int8, format_type(oid, NULL) FROM pg_catalog.pg_type "
                            "WHERE oid = ANY(%s)", ([int(o) for o in unknown],))
                names.update({int(oid): str(name) for oid, name in cur.fetchall()})
        return [names.get(d.type_code, "UNKNOWN").upper() for d in desc]

    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None, cancel: Cancel | None = None) -> ResultSet:
        started = time.perf_counter()
        with self._connect(timeout) as conn:
            # The session's statement_timeout stops it at `timeout`; a cancel sends
            # PostgreSQL's cancel request (the statement fails with query_canceled).
            with hooked(cancel, conn.cancel):
                cur = self._execute(conn, sql, params, cancel=cancel)
                desc = cur.description or []
                types = self._types(conn, desc)
                raw = cur.fetchmany(limit + 1)
        names = unique_names([d.name for d in desc])
        return ResultSet.of(names, types, raw, limit=limit, started=started)

    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        with self._connect(timeout) as conn:
            cur = self._execute(conn, f"SELECT * FROM ({sql}) AS _levered_q LIMIT 0", params)
            desc = cur.description or []
            types = self._types(conn, desc)
        return [{"name": d.name, "type": t} for d, t in zip(desc, types, strict=False)]

    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        with self._connect(timeout) as conn:
            rows = self._execute(conn, """
                SELECT t.table_name, t.table_type, c.reltuples
                FROM information_schema.tables t
                LEFT JOIN pg_namespace n ON n.nspname = t.table_schema
                LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
                WHERE t.table_schema = %s ORDER BY t.table_name""", (self.dataset,)).fetchall()
        return [{"name": n, "type": "view" if "VIEW" in kind else "table",
                 "row_count": int(r) if r is not None and r >= 0 else None}
                for n, kind, r in rows]

    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        schema, _, table = name.rpartition(".")
        schema = schema or self.dataset
        with self._connect(timeout) as conn:
            rows = self._execute(conn, "SELECT table_schema, table_name "
                                 "FROM information_schema.tables WHERE lower(table_schema) = "
                                 "lower(%s) AND lower(table_name) = lower(%s)",
                                 (schema, table)).fetchall()
        return pick_table(rows, schema, table, name)

    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        with self._connect(timeout) as conn:
            rows = self._execute(conn, "SELECT column_name, data_type, is_nullable "
                                 "FROM information_schema.columns WHERE table_schema = %s "
                                 "AND table_name = %s ORDER BY ordinal_position",
                                 (schema, table)).fetchall()
        return [{"name": n, "type": t.upper(), "nullable": x == "YES"} for n, t, x in rows]
