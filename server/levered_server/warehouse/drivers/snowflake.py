"""Snowflake through `snowflake-connector-python`, under a role that may only read.

Read-only: Snowflake has no read-only session, so the layers are the statement check (one
SELECT/WITH, no data-modifying word after WITH), the connector's one-statement-per-call default
(`MULTI_STATEMENT_COUNT` = 1) and the connection's role, which should hold USAGE and SELECT
grants only (docs/warehouse-drivers.md). Timeouts: the session's `STATEMENT_TIMEOUT_IN_SECONDS`
and the connector's `timeout=`. Cancellation: `SYSTEM$CANCEL_QUERY` of the statement's id.
"""

from __future__ import annotations

import datetime as dt
import importlib
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from levered_server.warehouse.driver_api import (
    HEX_DIGITS,
    Cancel,
    CredentialProblem,
    Dialect,
    NotReadOnly,
    ResultSet,
    SqlRejected,
    WarehouseFailure,
    hex_prefix_mod_10000,
    hooked,
    pick_table,
)
from levered_server.warehouse.drivers import VendorClientDriver
from levered_server.warehouse.drivers.statements import check_single_query
from levered_server.warehouse.values import unique_names

# Snowflake error numbers: 604 = statement cancelled, 630 = timeout (STATEMENT_TIMEOUT).
# 3001 = insufficient privileges.
_CANCELLED, _TIMEOUT, _NO_PRIVILEGE = 604, 630, 3001
# SQLSTATE classes of a statement the warehouse rejected: syntax, names, data.
_REJECTED_STATES = ("42", "22")


class SnowflakeDialect(Dialect):
    """Snowflake SQL as the connector sends it: `%(name)s` parameters, so `%` is doubled."""

    types: ClassVar[dict[str, str]] = {"text": "VARCHAR", "float": "DOUBLE", "integer": "BIGINT",
                                       "timestamp": "TIMESTAMP_NTZ", "boolean": "BOOLEAN"}

    def placeholder(self, name: str) -> str:
        return f"%({name})s"

    def escape_text(self, sql: str) -> str:
        return sql.replace("%", "%%")

    def type_class(self, type_name: str) -> Literal["timestamp", "number", "other"]:
        if type_name.upper().startswith(("NUMBER", "FIXED")):  # NUMBER(p, s) is Snowflake's
            return "number"
        return super().type_class(type_name)

    def json_text(self, json_expr: str, key: str) -> str:
        # Strings unquoted, other scalars as JSON text, JSON null and a missing member NULL.
        return f"JSON_EXTRACT_PATH_TEXT({json_expr}, {key})"

    def json_key(self, json_expr: str) -> str:
        # VARIANT equality compares the objects (fakesnow, on DuckDB, compares their text).
        return f"PARSE_JSON({json_expr})"

    def approx_distinct(self, expr: str) -> str:
        return f"APPROX_COUNT_DISTINCT({expr})"  # HyperLogLog

    def add_hours(self, timestamp: str, hours: int) -> str:
        return f"DATEADD(hour, {int(hours)}, {timestamp})"

    def holdout_bucket(self, prefix: str, text_expr: str) -> str:
        # The first 16 hex digits of SHA-256, mod 10000 digit by digit (16^k mod 10000 each),
        # so no 64-bit unsigned integer is needed.
        digest = f"SHA2({self.literal(prefix)} || {text_expr}, 256)"
        return hex_prefix_mod_10000(
            lambda i: f"(POSITION(SUBSTR({digest}, {i + 1}, 1), '{HEX_DIGITS}') - 1)")


class SnowflakeCredentials(BaseModel):
    """`credentials` of a Snowflake connection (API.md 10.1): a password or a key pair."""

    model_config = ConfigDict(extra="forbid", strict=True)

    account: str = Field(min_length=1)
    username: str = Field(min_length=1)
    warehouse: str = Field(min_length=1)
    database: str = Field(min_length=1)
    schema_: str = Field(alias="schema", min_length=1)
    role: str | None = Field(None, min_length=1)
    password: str | None = None
    private_key: str | None = None  # PEM, unencrypted

    @model_validator(mode="after")
    def _one_secret(self) -> SnowflakeCredentials:
        if (self.password is None) == (self.private_key is None):
            raise CredentialProblem("password", "required",
                                    "give exactly one of password or private_key")
        return self


def _private_key_der(pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(column: str) -> str:
    """Snowflake upper-cases unquoted names: give `N` back as `n` (quoted `"Mixed"` stays)."""
    return column.lower() if column.upper() == column else column


class SnowflakeDriver(VendorClientDriver):
    """A customer's Snowflake; the server never writes to it.

    `options["snowflake_connect"]`, when set, replaces ``snowflake.connector.connect`` (the
    tests pass fakesnow's).
    """

    provider = "snowflake"
    dialect: ClassVar[Dialect] = SnowflakeDialect()
    credentials_model = SnowflakeCredentials
    project_id_use = "required"  # the account identifier (API.md 10.1)
    requires = ("snowflake.connector",)
    install_hint = "pip install 'levered-server[snowflake]'"
    client_distribution = "snowflake-connector-python"

    @classmethod
    def default_dataset(cls, credentials: dict[str, Any]) -> str | None:
        schema = credentials.get("schema")
        return str(schema) if schema else None

    @property
    def dataset(self) -> str:
        return self.config.dataset_id or str(self.config.credentials.get("schema") or "PUBLIC")

    def _connect(self, timeout: float) -> Any:
        connect: Callable[..., Any] | None = self.options.get("snowflake_connect")
        if connect is None:
            # Imported here: the extra may be missing (then `missing()` names it).
            connect = importlib.import_module("snowflake.connector").connect
        c = self.config.credentials
        login: dict[str, Any] = {
            "account": c.get("account"), "user": c.get("username"),
            "warehouse": c.get("warehouse"), "database": c.get("database"),
            "schema": self.dataset, "application": "levered-server",
            "login_timeout": max(1, int(timeout)), "network_timeout": int(timeout) + 10,
            "session_parameters": {"STATEMENT_TIMEOUT_IN_SECONDS": max(1, round(timeout)),
                                   "TIMEZONE": "UTC", "QUERY_TAG": "levered-server"}}
        if c.get("role"):
            login["role"] = c["role"]
        if c.get("private_key"):
            login["private_key"] = _private_key_der(str(c["private_key"]))
        else:
            login["password"] = c.get("password")
        try:
            return connect(**login)
        except Exception as exc:  # noqa: BLE001 - refused or unreachable: report it
            raise WarehouseFailure(str(exc).strip()) from None

    @staticmethod
    def _failure(exc: Exception, cancel: Cancel | None) -> Exception:
        text = str(exc).strip()
        errno = getattr(exc, "errno", None)
        state = str(getattr(exc, "sqlstate", None) or "")
        if errno == _CANCELLED or (cancel is not None and cancel.cancelled):
            return WarehouseFailure("the query was cancelled", cancelled=True)
        if errno == _TIMEOUT or "timeout" in text.lower():
            return WarehouseFailure(text, timeout=True)
        if state == "42501" or errno == _NO_PRIVILEGE:  # the role refused (a write)
            return NotReadOnly(None, f"The query was refused: {text}")
        # SQL compilation errors (syntax, names, types) are the connector's ProgrammingError.
        if state[:2] in _REJECTED_STATES or type(exc).__name__ == "ProgrammingError":
            return SqlRejected(text)
        return WarehouseFailure(text)

    def _execute(self, sql: str, params: dict[str, Any] | None, *, timeout: float,
                 cancel: Cancel | None = None, fetch: int | None = None
                 ) -> tuple[list[Any], list[Any]]:
        """Run one statement on a new connection: (description, at most `fetch` rows)."""
        conn = self._connect(timeout)
        try:
            cur = conn.cursor()
            with hooked(cancel, lambda: self._cancel(conn, cur)):
                try:
                    cur.execute(sql, _bindable(params) if params else None,
                                timeout=max(1, round(timeout)))
                    desc = list(cur.description or [])
                    rows = list(cur.fetchmany(fetch) if fetch is not None else cur.fetchall())
                except Exception as exc:  # noqa: BLE001 - the connector's and fakesnow's
                    raise self._failure(exc, cancel) from None
            return desc, rows
        finally:
            conn.close()

    @staticmethod
    def _cancel(conn: Any, cur: Any) -> None:
        query_id = getattr(cur, "sfqid", None)
        if query_id:
            conn.cursor().execute("SELECT SYSTEM$CANCEL_QUERY(%(q)s)", {"q": query_id})

    def ping(self, *, timeout: float) -> None:
        _, rows = self._execute("SELECT count(*) FROM information_schema.schemata "
                                "WHERE schema_name = %(s)s", {"s": self.dataset.upper()},
                                timeout=timeout)
        if not rows or not rows[0][0]:
            raise WarehouseFailure(f"schema {self.dataset!r} does not exist")

    def check_read_only(self, sql: str) -> None:
        check_single_query(sql)

    @staticmethod
    def _types(desc: list[Any]) -> list[str]:
        names = importlib.import_module("snowflake.connector.constants").FIELD_ID_TO_NAME
        out = []
        for d in desc:
            name = names.get(d.type_code, "UNKNOWN")
            if name == "FIXED":  # NUMBER(p, s) in Snowflake's own words
                name = f"NUMBER({d.precision},{d.scale})" if d.precision is not None else "NUMBER"
            out.append(name)
        return out

    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None, cancel: Cancel | None = None) -> ResultSet:
        started = time.perf_counter()
        desc, raw = self._execute(sql, params, timeout=timeout, cancel=cancel, fetch=limit + 1)
        types = self._types(desc)
        names = unique_names([_name(d.name) for d in desc])
        return ResultSet.of(names, types, raw, limit=limit, started=started, value=_value)

    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        desc, _ = self._execute(f"SELECT * FROM (\n{sql}\n) AS _levered_q LIMIT 0", params,
                                timeout=timeout, fetch=0)
        return [{"name": _name(d.name), "type": t} for d, t in zip(desc, self._types(desc),
                                                                  strict=False)]

    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        _, rows = self._execute("SELECT table_name, table_type, row_count "
                                "FROM information_schema.tables WHERE table_schema = %(s)s "
                                "ORDER BY table_name", {"s": self.dataset.upper()},
                                timeout=timeout)
        return [{"name": n, "type": "view" if "VIEW" in kind else "table",
                 "row_count": None if count is None else int(count)} for n, kind, count in rows]

    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        schema, _, table = name.rpartition(".")
        schema = schema or self.dataset
        _, rows = self._execute("SELECT table_schema, table_name FROM information_schema.tables "
                                "WHERE lower(table_schema) = lower(%(s)s) "
                                "AND lower(table_name) = lower(%(t)s)",
                                {"s": schema, "t": table}, timeout=timeout)
        return pick_table([tuple(r) for r in rows], schema, table, name)

    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        _, rows = self._execute("SELECT column_name, data_type, is_nullable "
                                "FROM information_schema.columns WHERE table_schema = %(s)s "
                                "AND table_name = %(t)s ORDER BY ordinal_position",
                                {"s": schema, "t": table}, timeout=timeout)
        return [{"name": n, "type": str(t).upper(), "nullable": x == "YES"} for n, t, x in rows]


def _bindable(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the connector binds them: timestamps naive UTC (TIMESTAMP_NTZ)."""
    out = dict(params)
    for key, value in out.items():
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            out[key] = value.astimezone(dt.UTC).replace(tzinfo=None)
    return out


def _value(value: Any, type_name: str) -> Any:
    """VARIANT, OBJECT and ARRAY values arrive as JSON text: parse them like JSON columns."""
    if isinstance(value, str) and type_name in ("VARIANT", "OBJECT", "ARRAY"):
        import json

        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
