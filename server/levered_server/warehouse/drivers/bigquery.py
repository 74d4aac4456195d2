"""BigQuery through `google-cloud-bigquery`, with a service account that may only read.

Read-only: the statement check, then a dry run of every query whose `statement_type` must be
`SELECT` (a script, DML or DDL is refused before it runs), and the service account's roles
(BigQuery Data Viewer and Job User, never Data Editor: docs/warehouse-drivers.md). Timeouts:
`QueryJobConfig(job_timeout_ms=…)` and the client's wait. Cancellation: `job.cancel()`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import importlib
import re
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from levered_server.warehouse.driver_api import (
    HEX_DIGITS,
    Cancel,
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

_JSON_PATH = "__jsonpath"  # suffix of the JSONPath parameter derived from a key parameter
_KEY_PARAM = re.compile(r"^@([A-Za-z_][A-Za-z0-9_]*)$")
# The REST API's legacy type names → GoogleSQL's.
_STANDARD = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


class BigQueryDialect(Dialect):
    """GoogleSQL: backquoted names, `@name` parameters."""

    types: ClassVar[dict[str, str]] = {"text": "STRING", "float": "FLOAT64", "integer": "INT64",
                                       "timestamp": "TIMESTAMP", "boolean": "BOOL"}

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def placeholder(self, name: str) -> str:
        return f"@{name}"

    def literal(self, text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def type_class(self, type_name: str) -> Literal["timestamp", "number", "other"]:
        return super().type_class(_STANDARD.get(type_name.upper(), type_name))

    def json_text(self, json_expr: str, key: str) -> str:
        # JSON_VALUE takes its JSONPath as a literal or a parameter only: a key given as a
        # parameter gets a companion parameter holding `$."key"` (the driver adds it).
        m = _KEY_PARAM.match(key.strip())
        path = f"@{m.group(1)}{_JSON_PATH}" if m else f"CONCAT('$.\"', {key}, '\"')"
        return f"JSON_VALUE({json_expr}, {path})"

    def json_key(self, json_expr: str) -> str:
        # A JSON value's text has its object keys in a canonical order.
        return f"TO_JSON_STRING(PARSE_JSON({json_expr}, wide_number_mode => 'round'))"

    def approx_distinct(self, expr: str) -> str:
        return f"APPROX_COUNT_DISTINCT({expr})"  # HyperLogLog++

    def add_hours(self, timestamp: str, hours: int) -> str:
        return f"TIMESTAMP_ADD({timestamp}, INTERVAL {int(hours)} HOUR)"

    def holdout_bucket(self, prefix: str, text_expr: str) -> str:
        # The first 16 hex digits of SHA-256, mod 10000 digit by digit (INT64 is signed).
        digest = f"TO_HEX(SHA256(CONCAT({self.literal(prefix)}, {text_expr})))"
        return hex_prefix_mod_10000(
            lambda i: f"(STRPOS('{HEX_DIGITS}', SUBSTR({digest}, {i + 1}, 1)) - 1)")


class BigQueryCredentials(BaseModel):
    """`credentials` of a BigQuery connection: a service account key (its JSON file's keys)."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["service_account"] = "service_account"
    project_id: str = Field(min_length=1)
    private_key: str = Field(min_length=1)
    client_email: str = Field(min_length=1)
    location: str | None = Field(None, min_length=1)  # where jobs run (US, EU, …)
    maximum_bytes_billed: int | None = Field(None, ge=1)  # refuse costlier queries


def _parameters(sql: str, params: dict[str, Any] | None) -> list[Any]:
    """Query parameters, typed; a key parameter also as its JSONPath where `json_text` asks."""
    bigquery = importlib.import_module("google.cloud.bigquery")
    out: list[Any] = []
    for name, value in (params or {}).items():
        if isinstance(value, bool):
            kind = "BOOL"
        elif isinstance(value, int):
            kind = "INT64"
        elif isinstance(value, float):
            kind = "FLOAT64"
        elif isinstance(value, dt.datetime):  # naive values are UTC (the server's clock)
            kind = "TIMESTAMP"
            value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        else:
            kind = "STRING"
            if isinstance(value, str) and f"@{name}{_JSON_PATH}" in sql:
                path = '$."' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
                out.append(bigquery.ScalarQueryParameter(name + _JSON_PATH, "STRING", path))
        out.append(bigquery.ScalarQueryParameter(name, kind, value))
    return out


def _type(field: Any) -> str:
    """A schema field's GoogleSQL type name (`ARRAY<INT64>` for a repeated one)."""
    name = _STANDARD.get(field.field_type, field.field_type)
    return f"ARRAY<{name}>" if field.mode == "REPEATED" else name


class BigQueryDriver(VendorClientDriver):
    """A customer's BigQuery dataset; the server never writes to it.

    `options["bigquery_client"]`, when set, builds the client from (project, service-account
    info, location) instead of ``bigquery.Client`` (the tests pass one that runs the
    statements on DuckDB through sqlglot).
    """

    provider = "bigquery"
    dialect: ClassVar[Dialect] = BigQueryDialect()
    credentials_model = BigQueryCredentials
    project_id_use = "required"
    dataset_required = True
    requires = ("google.cloud.bigquery",)
    install_hint = "pip install 'levered-server[bigquery]'"
    client_distribution = "google-cloud-bigquery"

    @property
    def project(self) -> str:
        return self.config.project_id or str(self.config.credentials.get("project_id"))

    def _client(self) -> Any:
        c = self.config.credentials
        factory: Callable[..., Any] | None = self.options.get("bigquery_client")
        try:
            if factory is not None:
                return factory(self.project, dict(c), c.get("location"))
            bigquery = importlib.import_module("google.cloud.bigquery")
            service_account = importlib.import_module("google.oauth2.service_account")
            creds = service_account.Credentials.from_service_account_info(dict(c))
            return bigquery.Client(project=self.project, credentials=creds,
                                   location=c.get("location"))
        except Exception as exc:  # noqa: BLE001 - a key that does not load: report it
            raise WarehouseFailure(f"cannot use the service account: {exc}") from None

    def _config(self, sql: str, params: dict[str, Any] | None, *, dry_run: bool = False,
                timeout: float | None = None) -> Any:
        bigquery = importlib.import_module("google.cloud.bigquery")
        config = bigquery.QueryJobConfig(
            query_parameters=_parameters(sql, params), dry_run=dry_run, use_query_cache=not dry_run,
            default_dataset=f"{self.project}.{self.dataset}", labels={"app": "levered-server"})
        if timeout is not None:
            config.job_timeout_ms = max(1000, int(timeout * 1000))
        if self.config.credentials.get("maximum_bytes_billed"):
            config.maximum_bytes_billed = int(self.config.credentials["maximum_bytes_billed"])
        return config

    @staticmethod
    def _failure(exc: Exception, cancel: Cancel | None = None) -> Exception:
        text = str(getattr(exc, "message", None) or exc).strip()
        if cancel is not None and cancel.cancelled:
            return WarehouseFailure("the query was cancelled", cancelled=True)
        if isinstance(exc, concurrent.futures.TimeoutError) or "timeout" in text.lower() \
                or "timed out" in text.lower():
            return WarehouseFailure(text or "the query timed out", timeout=True)
        code = getattr(exc, "code", None)
        if code in (400, 404):  # invalid query, unknown table or column
            return SqlRejected(text)
        return WarehouseFailure(text)

    def _dry_run(self, client: Any, sql: str, params: dict[str, Any] | None,
                 timeout: float) -> Any:
        """Plan the query without running it; refuse what is not a SELECT."""
        try:
            job = client.query(sql, job_config=self._config(sql, params, dry_run=True),
                               timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - google.api_core's errors, and the network's
            raise self._failure(exc) from None
        if job.statement_type != "SELECT":
            raise NotReadOnly(job.statement_type)
        return job

    def ping(self, *, timeout: float) -> None:
        client = self._client()
        try:
            client.get_dataset(f"{self.project}.{self.dataset}", timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            raise WarehouseFailure(f"dataset {self.dataset!r}: {self._failure(exc)}") from None

    def check_read_only(self, sql: str) -> None:
        check_single_query(sql)

    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None, cancel: Cancel | None = None) -> ResultSet:
        started = time.perf_counter()
        if cancel is not None and cancel.cancelled:  # before it starts: nothing to stop
            raise WarehouseFailure("the query was cancelled", cancelled=True)
        client = self._client()
        self._dry_run(client, sql, params, timeout)
        try:
            job = client.query(sql, job_config=self._config(sql, params, timeout=timeout),
                               timeout=timeout)
            with hooked(cancel, job.cancel):
                result = job.result(max_results=limit + 1, timeout=timeout)
                fields = list(result.schema)
                raw = [tuple(row.values()) for row in result]
        except Exception as exc:  # noqa: BLE001
            failure = self._failure(exc, cancel)
            if isinstance(failure, WarehouseFailure) and "job" in locals():
                with contextlib.suppress(Exception):  # a client-side timeout leaves it running
                    job.cancel()
            raise failure from None
        types = [_type(f) for f in fields]
        names = unique_names([f.name for f in fields])
        return ResultSet.of(names, types, raw, limit=limit, started=started)

    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        job = self._dry_run(self._client(), sql, params, timeout)
        return [{"name": f.name, "type": _type(f)} for f in job.schema or []]

    def _catalog(self, schema: str, timeout: float) -> list[Any]:
        try:
            return list(self._client().list_tables(f"{self.project}.{schema}", timeout=timeout))
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc) from None

    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        # Row counts cost a request per table (get_table): left out, as the contract allows.
        items = sorted(self._catalog(self.dataset, timeout), key=lambda t: t.table_id)
        return [{"name": t.table_id, "type": "view" if "VIEW" in (t.table_type or "") else "table",
                 "row_count": None} for t in items]

    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        schema, _, table = name.rpartition(".")
        schema = schema or self.dataset
        rows = [(schema, t.table_id) for t in self._catalog(schema, timeout)
                if t.table_id.lower() == table.lower()]
        return pick_table(rows, schema, table, name)

    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        try:
            found = self._client().get_table(f"{self.project}.{schema}.{table}", timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc) from None
        return [{"name": f.name, "type": _type(f), "nullable": f.mode != "REQUIRED"}
                for f in found.schema]
