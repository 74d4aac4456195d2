"""Metrics: named SQL over the warehouse plus a column mapping (API.md 9)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from levered_server.clock import canonical_uuid, iso_s, new_id, utcnow
from levered_server.errors import FieldErrors, InvalidMetricSql, MetricInUse, NotFound
from levered_server.schemas.metrics import MetricCreate
from levered_server.services.warehouse_calls import driver_for, translated, user_query_limit
from levered_server.store.models import Guardrail, Metric, Optimization
from levered_server.warehouse.driver_api import Cancel, WarehouseDriver
from levered_server.warehouse.sqltext import bind_start_date, strip_trailing_semicolon


def public(m: Metric) -> dict[str, Any]:
    """The metric object."""
    return {"id": m.id, "name": m.name, "sql": m.sql,
            "column_mapping": {"anonymous_id": m.anonymous_id_column,
                               "timestamp": m.timestamp_column, "value": m.value_column,
                               "reward_type": m.reward_type},
            "created_at": iso_s(m.created_at), "updated_at": iso_s(m.updated_at)}


def bound_sql(driver: WarehouseDriver, sql: str, start: dt.datetime, *,
              more_params: bool = False) -> tuple[str, dict[str, Any] | None]:
    """The metric SQL ready to run: `@start_date` a TIMESTAMP parameter (naive UTC).

    :param more_params: the caller adds parameters of its own (the dialect's `escape_text`
        then applies even when `@start_date` does not occur).
    """
    dialect = driver.dialect
    text, found = bind_start_date(strip_trailing_semicolon(sql), dialect.placeholder("start_date"),
                                  escape=dialect.escape_text)
    if more_params and not found:
        text = dialect.escape_text(text)
    naive = start.astimezone(dt.UTC).replace(tzinfo=None)
    return text, ({"start_date": naive} if found else None)


def _check_columns(columns: list[dict[str, str]], mapping: dict[str, Any],
                   driver: WarehouseDriver) -> None:
    provider = driver.api_provider
    by_name = {c["name"].lower(): c for c in columns}
    wanted = [mapping["anonymous_id"], mapping["timestamp"]] + \
        ([mapping["value"]] if mapping.get("value") else [])
    missing = [w for w in wanted if w.lower() not in by_name]
    available = [c["name"] for c in columns]
    if missing:
        raise InvalidMetricSql(f"The metric SQL does not return the mapped column(s) "
                               f"{', '.join(missing)}.",
                               details={"provider": provider, "warehouse_message": None,
                                        "missing_columns": missing,
                                        "available_columns": available})
    ts_type = by_name[mapping["timestamp"].lower()]["type"].upper()
    problems = []
    if driver.dialect.type_class(ts_type) != "timestamp":
        problems.append(f"column {mapping['timestamp']} is {ts_type}, not a timestamp or date")
    if mapping.get("value"):
        v_type = by_name[mapping["value"].lower()]["type"].upper()
        if driver.dialect.type_class(v_type) != "number":
            problems.append(f"column {mapping['value']} is {v_type}, not numeric")
    if problems:
        raise InvalidMetricSql(f"The metric SQL has a column of the wrong type: {problems[0]}.",
                               details={"provider": provider, "warehouse_message": None,
                                        "available_columns": available})


def create(*, runtime: Any, org_id: str, body: MetricCreate) -> dict[str, Any]:
    """Validate, dry-run against the warehouse, then save."""
    mapping = body.column_mapping.model_dump()
    errors = FieldErrors()
    if mapping["reward_type"] is None:
        mapping["reward_type"] = "numeric" if mapping["value"] else "bool"
    if mapping["reward_type"] == "numeric" and not mapping["value"]:
        errors.add("column_mapping.value", "required", "numeric metrics need a value column")
    if mapping["reward_type"] == "bool" and mapping["value"]:
        errors.add("column_mapping.value", "invalid_value", "bool metrics take no value column")
    errors.raise_if_any()
    driver = driver_for(runtime, org_id)
    start = utcnow() - dt.timedelta(days=1)
    with translated(driver.api_provider, rejected=InvalidMetricSql,
                    rejected_prefix="The warehouse rejected the metric SQL",
                    limit=user_query_limit(runtime)):
        driver.check_read_only(body.sql)
        sql, params = bound_sql(driver, body.sql, start)
        columns = driver.describe(sql, params=params, timeout=user_query_limit(runtime).seconds)
    _check_columns(columns, mapping, driver)
    metric = Metric(id=new_id(), name=body.name, sql=body.sql,
                    anonymous_id_column=mapping["anonymous_id"],
                    timestamp_column=mapping["timestamp"], value_column=mapping["value"],
                    reward_type=mapping["reward_type"], created_at=utcnow())
    with runtime.store.session(org_id) as s:
        s.add(metric)
    return public(metric)


def get_row(session: Any, metric_id: str, *, include_deleted: bool = False) -> Metric:
    """A metric of the session's organization, or 404."""
    mid = canonical_uuid(metric_id)
    q = select(Metric).where(Metric.id == mid)
    if not include_deleted:
        q = q.where(Metric.deleted_at.is_(None))
    metric: Metric | None = session.scalars(q).first() if mid else None
    if metric is None:
        raise NotFound("Metric not found.")
    return metric


def list_all(*, runtime: Any, org_id: str) -> list[dict[str, Any]]:
    """Non-deleted metrics, newest first."""
    with runtime.store.session(org_id) as s:
        rows = s.scalars(select(Metric).where(Metric.deleted_at.is_(None))
                         .order_by(Metric.created_at.desc(), Metric.id.desc())).all()
        return [public(m) for m in rows]


def get(*, runtime: Any, org_id: str, metric_id: str) -> dict[str, Any]:
    """One metric."""
    with runtime.store.session(org_id) as s:
        return public(get_row(s, metric_id))


def delete(*, runtime: Any, org_id: str, metric_id: str) -> str:
    """Soft-delete a metric unless a live optimization uses it (as its reward or as a
    guardrail)."""
    with runtime.store.session(org_id) as s:
        metric = get_row(s, metric_id)
        guarded = select(Guardrail.optimization_id).where(Guardrail.metric_id == metric.id)
        live = s.scalars(select(Optimization).where(
            (Optimization.reward_metric_id == metric.id) | Optimization.id.in_(guarded),
            Optimization.status == "live").order_by(Optimization.created_at)).all()
        if live:
            n = len(live)
            guardrail = any(o.reward_metric_id != metric.id for o in live)
            raise MetricInUse(f"Metric is used by {n} live optimization{'s' if n > 1 else ''}"
                              f"{' (as a guardrail)' if guardrail else ''}; complete or archive "
                              f"it first{', or remove the guardrail' if guardrail else ''}.",
                              details={"optimizations": [{"id": o.id, "name": o.name,
                                                          "status": o.status} for o in live]})
        metric.deleted_at = utcnow()
        return metric.id


def preview(*, runtime: Any, org_id: str, metric_id: str, limit: int,
            start_date: dt.datetime, cancel: Cancel | None = None) -> dict[str, Any]:
    """Run the metric's SQL with `@start_date` bound and return a sample (a user query: its
    time limit, stopped through `cancel`)."""
    with runtime.store.session(org_id) as s:
        metric = public(get_row(s, metric_id))
    driver = driver_for(runtime, org_id)
    limited = user_query_limit(runtime)
    with translated(driver.api_provider, rejected=InvalidMetricSql,
                    rejected_prefix="The metric SQL no longer runs", limit=limited):
        sql, params = bound_sql(driver, metric["sql"], start_date)
        result = driver.query(sql, limit=limit, params=params, timeout=limited.seconds,
                              cancel=cancel)
    return {"metric_id": metric["id"], "start_date": iso_s(start_date),
            "column_mapping": metric["column_mapping"], "columns": result.columns,
            "rows": result.rows, "row_count": len(result.rows), "truncated": result.truncated}
