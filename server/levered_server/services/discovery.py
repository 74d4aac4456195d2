"""Tables, columns, previews and read-only queries (API.md 10.6–10.8)."""

from __future__ import annotations

import json
from typing import Any

from levered_server.services.warehouse_calls import driver_for, translated, user_query_limit
from levered_server.warehouse.driver_api import Cancel, ResultSet

MAX_RESPONSE_BYTES = 10 * 1024 * 1024


def _cap(result: ResultSet) -> ResultSet:
    # Keep responses under 10 MiB: cut rows and report `truncated`.
    size = 0
    kept: list[dict[str, Any]] = []
    for row in result.rows:
        size += len(json.dumps(row, default=str))
        if size > MAX_RESPONSE_BYTES:
            return ResultSet(result.columns, kept, True, result.elapsed_ms)
        kept.append(row)
    return result


def tables(*, runtime: Any, org_id: str) -> dict[str, Any]:
    """Tables and views of the connection's dataset, sorted by name."""
    driver = driver_for(runtime, org_id)
    with translated(driver.api_provider):
        found = driver.tables(timeout=runtime.settings.query_timeout_seconds)
    return {"dataset_id": driver.dataset, "tables": found}


def columns(*, runtime: Any, org_id: str, table: str) -> dict[str, Any]:
    """Columns of one table, in table order."""
    driver = driver_for(runtime, org_id)
    timeout = runtime.settings.query_timeout_seconds
    with translated(driver.api_provider, table=table, dataset=driver.dataset):
        schema, name = driver.resolve_table(table, timeout=timeout)
        cols = driver.columns(schema, name, timeout=timeout)
    return {"table": name, "columns": cols}


def preview(*, runtime: Any, org_id: str, table: str, limit: int,
            cancel: Cancel | None = None) -> dict[str, Any]:
    """The first rows of a table; the name is resolved in the catalog, then quoted (a user
    query: its time limit, stopped through `cancel`)."""
    driver = driver_for(runtime, org_id)
    limited = user_query_limit(runtime)
    with translated(driver.api_provider, table=table, dataset=driver.dataset, limit=limited):
        schema, name = driver.resolve_table(table, timeout=limited.seconds)
        sql = f"SELECT * FROM {driver.quote(schema)}.{driver.quote(name)} LIMIT {limit + 1}"
        result = _cap(driver.query(sql, limit=limit, timeout=limited.seconds, cancel=cancel))
    return {"table": name, "columns": result.columns, "rows": result.rows,
            "row_count": len(result.rows), "truncated": result.truncated}


def query(*, runtime: Any, org_id: str, sql: str, limit: int,
          cancel: Cancel | None = None) -> dict[str, Any]:
    """One read-only query: statement check, then a connection that cannot write, under the
    users' time limit and stopped through `cancel`."""
    driver = driver_for(runtime, org_id)
    limited = user_query_limit(runtime)
    with translated(driver.api_provider, limit=limited):
        driver.check_read_only(sql)
        result = _cap(driver.query(sql, limit=limit, timeout=limited.seconds, cancel=cancel))
    return {"columns": result.columns, "rows": result.rows, "row_count": len(result.rows),
            "truncated": result.truncated, "elapsed_ms": result.elapsed_ms}
