"""ClickHouse through `clickhouse-connect` (HTTP): every query runs with `readonly=1`.

Read-only: the statement check (one SELECT/WITH, no `INTO OUTFILE`) and the `readonly=1`
setting sent with every query, last, so the query cannot change a setting back (nor use
`file()`, `url()`, temporary tables). Timeouts: `max_execution_time`. Cancellation: a
`KILL QUERY` matching the statement's marker comment (a query id does not reach chDB, on
which the tests run the same client: ``get_client(interface="chdb")``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from levered_server.warehouse.driver_api import (
    Cancel,
    Dialect,
    NotReadOnly,
    ResultSet,
    SqlRejected,
    WarehouseFailure,
    hooked,
    pick_table,
)
from levered_server.warehouse.drivers import VendorClientDriver
from levered_server.warehouse.drivers.statements import check_single_query
from levered_server.warehouse.values import unique_names

# ClickHouse error codes (src/Common/ErrorCodes.cpp) that mean "the SQL is wrong".
_REJECTED = {6, 27, 36, 41, 42, 43, 44, 46, 47, 48, 53, 60, 62, 70, 81, 170, 179, 184, 215,
             352, 386, 456, 457}
_READONLY, _TIMEOUT, _CANCELLED = 164, 159, 394
_CODE = re.compile(r"Code: (\d+)")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):String\}")
_ZONED = re.compile(r"^DateTime(64)?\(.*'")  # DateTime('UTC'), DateTime64(6, 'Europe/Paris')
_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")


class ClickHouseDialect(Dialect):
    """ClickHouse SQL: backquoted names, `{name:Type}` parameters bound by the server."""

    types: ClassVar[dict[str, str]] = {
        "text": "Nullable(String)", "float": "Nullable(Float64)", "integer": "Nullable(Int64)",
        "timestamp": "Nullable(DateTime64(6))", "boolean": "Nullable(Bool)"}

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def placeholder(self, name: str) -> str:
        # Typed String here; the driver retypes it from the value it binds (a timestamp…).
        return "{" + name + ":String}"

    def literal(self, text: str) -> str:
        # Backslash is an escape character in ClickHouse string literals.
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def json_text(self, json_expr: str, key: str) -> str:
        # JSONExtractString gives '' for null and a missing key, and raw JSON for the rest.
        return (f"if(JSONType({json_expr}, {key}) = 'Null', NULL, "
                f"JSONExtractString({json_expr}, {key}))")

    def json_key(self, json_expr: str) -> str:
        # (An array cannot be Nullable: a NULL object is the empty one here.)
        return f"arraySort(JSONExtractKeysAndValuesRaw(ifNull({json_expr}, '')))"

    def approx_distinct(self, expr: str) -> str:
        return f"uniq({expr})"  # an adaptive sample, exact up to 65,536 values

    def add_hours(self, timestamp: str, hours: int) -> str:
        return f"({timestamp} + INTERVAL {int(hours)} HOUR)"

    def holdout_bucket(self, prefix: str, text_expr: str) -> str:
        digest = f"SHA256(concat({self.literal(prefix)}, {text_expr}))"
        return f"(reinterpretAsUInt64(reverse(substring({digest}, 1, 8))) % 10000)"


class ClickHouseCredentials(BaseModel):
    """`credentials` of a ClickHouse connection (HTTP interface)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535)  # None: 8443 with TLS, else 8123
    username: str = Field("default", min_length=1)
    password: str | None = None
    database: str = Field("default", min_length=1)
    secure: bool = True
    verify: bool = True  # check the server's TLS certificate


def _utc(value: Any) -> Any:
    """A value of a column with a time zone: the client gives it naive, in UTC."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _type_name(name: str) -> str:
    """`Nullable(DateTime64(6))` → `DateTime64(6)`: nullability is reported on its own."""
    while (m := _WRAPPER.match(name)) is not None:
        name = m.group(1)
    return name


def _bind_type(value: Any) -> str | None:
    """The ClickHouse type of a parameter value, when not String."""
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, dt.datetime):
        return "DateTime64(6)"
    if isinstance(value, dt.date):
        return "Date"
    if value is None:
        return "Nullable(String)"
    return None


def _bound(sql: str, params: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Retype each `{name:String}` from its value; timestamps become naive UTC."""
    params = dict(params or {})
    for name, value in params.items():
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            params[name] = value.astimezone(dt.UTC).replace(tzinfo=None)

    def retype(m: re.Match[str]) -> str:
        kind = _bind_type(params.get(m.group(1), ""))
        return m.group(0) if kind is None else "{" + m.group(1) + ":" + kind + "}"

    return _PARAM.sub(retype, sql), params


class ClickHouseDriver(VendorClientDriver):
    """A customer's ClickHouse (or ClickHouse Cloud); the server never writes to it.

    `options["clickhouse_client"]`, when set, builds the client instead of
    ``clickhouse_connect.get_client`` (the tests pass one on chDB).
    """

    provider = "clickhouse"
    dialect: ClassVar[Dialect] = ClickHouseDialect()
    credentials_model = ClickHouseCredentials
    requires = ("clickhouse_connect",)
    install_hint = "pip install 'levered-server[clickhouse]'"
    client_distribution = "clickhouse-connect"

    @classmethod
    def default_dataset(cls, credentials: dict[str, Any]) -> str | None:
        return str(credentials.get("database") or "default")

    @property
    def dataset(self) -> str:
        return self.config.dataset_id or str(self.config.credentials.get("database") or "default")

    def _client(self, timeout: float) -> Any:
        factory: Callable[..., Any] | None = self.options.get("clickhouse_client")
        if factory is None:
            # Imported here: the extra may be missing (then `missing()` names it).
            factory = importlib.import_module("clickhouse_connect").get_client
        c = self.config.credentials
        secure = bool(c.get("secure", True))
        try:
            return factory(host=c.get("host"), port=c.get("port") or (8443 if secure else 8123),
                           username=c.get("username") or "default",
                           password=c.get("password") or "", database=self.dataset,
                           secure=secure, verify=bool(c.get("verify", True)),
                           connect_timeout=max(1, int(timeout)),
                           send_receive_timeout=int(timeout) + 10,
                           client_name="levered-server")
        except Exception as exc:  # noqa: BLE001 - connecting failed: report, whatever the cause
            raise self._failure(exc) from None

    @staticmethod
    def _settings(timeout: float, limit: int | None = None) -> dict[str, Any]:
        settings: dict[str, Any] = {"session_timezone": "UTC", "join_use_nulls": 1,
                                    "max_execution_time": max(1, round(timeout))}
        if limit is not None:  # stop reading once the rows are there (a block or so more)
            settings.update(max_result_rows=limit + 1, result_overflow_mode="break")
        settings["readonly"] = 1  # last: every setting before it is applied first
        return settings

    def _failure(self, exc: Exception, cancel: Cancel | None = None) -> Exception:
        text = str(exc).strip()
        m = _CODE.search(text)
        code = int(m.group(1)) if m else None
        if code == _READONLY:
            return NotReadOnly(None, f"The query was refused: {text}")
        if code == _TIMEOUT:
            return WarehouseFailure(text, timeout=True)
        if code == _CANCELLED or (cancel is not None and cancel.cancelled):
            return WarehouseFailure("the query was cancelled", cancelled=True)
        if code in _REJECTED:
            return SqlRejected(text)
        return WarehouseFailure(text)

    def _run(self, sql: str, params: dict[str, Any] | None, *, timeout: float,
             limit: int | None = None, cancel: Cancel | None = None) -> Any:
        """One statement on a new client (settings never leak between statements)."""
        if cancel is not None and cancel.cancelled:  # before it starts: nothing to stop
            raise WarehouseFailure("the query was cancelled", cancelled=True)
        marker = uuid.uuid4().hex
        text, bound = _bound(sql, params)
        client = self._client(timeout)
        try:
            with hooked(cancel, lambda: self._kill(marker)):
                return client.query(f"/* levered {marker} */\n{text}", parameters=bound,
                                    settings=self._settings(timeout, limit))
        except (NotReadOnly, SqlRejected, WarehouseFailure):
            raise
        except Exception as exc:  # noqa: BLE001 - the client's errors have no common base
            raise self._failure(exc, cancel) from None
        finally:
            client.close()

    def _kill(self, marker: str) -> None:
        # Users may stop their own queries; the parameter keeps the marker out of this
        # statement's own text.
        client = self._client(10)
        try:
            for _ in range(20):  # the statement may not have reached the server yet
                killed = client.query("KILL QUERY WHERE position(query, {m:String}) > 0 ASYNC",
                                      parameters={"m": f"levered {marker}"},
                                      settings={"readonly": 1}).result_rows
                if killed:
                    return
                time.sleep(0.1)
        finally:
            client.close()

    def ping(self, *, timeout: float) -> None:
        found = self._run("SELECT count() FROM system.databases WHERE name = {d:String}",
                          {"d": self.dataset}, timeout=timeout).result_rows
        if not found or not found[0][0]:
            raise WarehouseFailure(f"database {self.dataset!r} does not exist")

    def check_read_only(self, sql: str) -> None:
        check_single_query(sql, refuse_pairs=(("INTO", "OUTFILE"),))

    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None, cancel: Cancel | None = None) -> ResultSet:
        started = time.perf_counter()
        result = self._run(sql, params, timeout=timeout, limit=limit, cancel=cancel)
        types = [_type_name(t.name) for t in result.column_types]
        names = unique_names(list(result.column_names))
        raw = result.result_rows
        if not names:  # no rows, no block, no header: the columns of the plan
            described = self.describe(sql, timeout=timeout, params=params)
            names = unique_names([c["name"] for c in described])
            types = [c["type"] for c in described]
        zoned = {t for t in types if _ZONED.match(t)}
        return ResultSet.of(names, types, raw, limit=limit, started=started,
                            value=lambda v, t: _utc(v) if t in zoned else v)

    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        result = self._run(f"SELECT * FROM (\n{sql}\n) AS _levered_q LIMIT 0", params,
                           timeout=timeout)
        return [{"name": n, "type": _type_name(t.name)}
                for n, t in zip(result.column_names, result.column_types, strict=False)]

    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        rows = self._run("SELECT name, engine, total_rows FROM system.tables "
                         "WHERE database = {d:String} ORDER BY name", {"d": self.dataset},
                         timeout=timeout).result_rows
        return [{"name": n, "type": "view" if engine.endswith("View") else "table",
                 "row_count": None if count is None else int(count)}
                for n, engine, count in rows]

    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        schema, _, table = name.rpartition(".")
        schema = schema or self.dataset
        rows = self._run("SELECT database, name FROM system.tables "
                         "WHERE lower(database) = lower({s:String}) "
                         "AND lower(name) = lower({t:String})", {"s": schema, "t": table},
                         timeout=timeout).result_rows
        return pick_table([tuple(r) for r in rows], schema, table, name)

    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        rows = self._run("SELECT name, type FROM system.columns WHERE database = {s:String} "
                         "AND table = {t:String} ORDER BY position", {"s": schema, "t": table},
                         timeout=timeout).result_rows
        return [{"name": n, "type": _type_name(t), "nullable": t.startswith("Nullable(")
                 or t.startswith("LowCardinality(Nullable(")} for n, t in rows]
