"""Last-touch attribution pushed down to the warehouse as SQL (API.md 2.5, 6.7).

One query joins the optimization's exposures to the metric's reward rows inside the
conversion window; only observation rows (or totals) come back. Observations and results use
the per-exposure CTEs of :func:`prepare`; the training query builds on :func:`prepare_sources`
(see :mod:`levered_server.services.training_sql`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from levered_server.clock import as_utc, iso_ms, utcnow
from levered_server.errors import WarehouseError
from levered_server.services import design
from levered_server.services.exposure_source import exposures_cte
from levered_server.services.metrics import bound_sql
from levered_server.services.optimizations import get_row as get_optimization
from levered_server.services.warehouse_calls import driver_for, server_query_limit, translated
from levered_server.store.models import Metric, Optimization
from levered_server.warehouse.driver_api import WarehouseDriver


def _load(runtime: Any, org_id: str, optimization_id: str) -> tuple[Optimization, Metric]:
    with runtime.store.session(org_id) as s:
        opt = get_optimization(s, optimization_id)
        metric = s.scalars(select(Metric).where(Metric.id == opt.reward_metric_id)).one()
        return opt, metric


def _sources(driver: WarehouseDriver, opt: Optimization, metric: Metric,
             metric_columns: list[str], timeout: float, *, numbered: bool
             ) -> tuple[str, dict[str, Any]]:
    """The CTEs `e` (exposures), `m` (metric SQL) and `r` (reward rows), without `WITH`.

    `numbered` adds `exp_row`/`reward_row` (row numbers over all rows) for the per-exposure
    queries; the training query does without them. Training marks `e` not materialized where
    the dialect has the hint (DuckDB: scanning the columnar table again is cheaper than
    buffering it).
    """
    d = driver.dialect
    q, ph = d.quote, d.placeholder
    by_lower = {c.lower(): c for c in metric_columns}
    anon = q(by_lower[metric.anonymous_id_column.lower()])
    ts = q(by_lower[metric.timestamp_column.lower()])
    value = (d.cast(f"m.{q(by_lower[metric.value_column.lower()])}", "float")
             if metric.value_column else "1.0")
    pin = ""
    if "optimization_id" in by_lower:  # rewards pinned to an optimization: this one, or none
        pinned = f"m.{q(by_lower['optimization_id'])}"
        pin = f"WHERE {pinned} IS NULL OR {d.cast(pinned, 'text')} = {ph('optimization_id')}"
    metric_sql, params = bound_sql(driver, metric.sql, opt.created_at, more_params=True)
    hint = "" if numbered else d.cte_hint(False)
    number = "row_number() OVER () AS reward_row, " if numbered else ""
    sql = f"""e AS{hint} ({exposures_cte(driver, opt, timeout, numbered=numbered)}
),
m AS ({metric_sql}),
r AS (
  SELECT {number}{d.cast(f"m.{anon}", "text")} AS anonymous_id,
         {d.cast(f"m.{ts}", "timestamp")} AS ts, {value} AS value
  FROM m {pin}
)"""
    return sql, {**(params or {}), "optimization_id": opt.id}


def window_hours(opt: Optimization) -> int:
    """The last-touch conversion window W of the optimization, in hours."""
    return int(opt.training_data_config["attribution"]["conversion_window_hours"])


def _attributed_sql(driver: WarehouseDriver, opt: Optimization, metric: Metric,
                    metric_columns: list[str], timeout: float) -> tuple[str, dict[str, Any]]:
    """SQL of `e` (exposures), `r` (reward rows) and `att` (credited rewards per exposure)."""
    sources, params = _sources(driver, opt, metric, metric_columns, timeout, numbered=True)
    sql = f"""
WITH {sources},
credit AS (
  SELECT r.reward_row, r.ts, r.value, e.exp_row,
         row_number() OVER (PARTITION BY r.reward_row
                            ORDER BY e.exposed_at DESC, e.exposure_id DESC NULLS LAST,
                                     e.exp_row DESC) AS rn
  FROM r JOIN e ON e.anonymous_id = r.anonymous_id AND e.exposed_at <= r.ts
                AND r.ts <= {driver.dialect.add_hours('e.exposed_at', window_hours(opt))}
),
att AS (
  SELECT exp_row, count(*) AS n, sum(value) AS total, min(ts) AS rewarded_at
  FROM credit WHERE rn = 1 GROUP BY exp_row
)"""
    return sql, params


def _metric_columns(driver: WarehouseDriver, opt: Optimization, metric: Metric,
                    timeout: float) -> list[str]:
    metric_sql, params = bound_sql(driver, metric.sql, opt.created_at)
    return [c["name"] for c in driver.describe(metric_sql, params=params, timeout=timeout)]


def sources_for(driver: WarehouseDriver, opt: Any, metric: Any, timeout: float, *,
                numbered: bool) -> tuple[str, dict[str, Any]]:
    """The CTEs `e`, `m`, `r` (no `WITH`) of an optimization and metric on a driver, its
    metric columns read with a dry run (driver failures are not translated)."""
    columns = _metric_columns(driver, opt, metric, timeout)
    return _sources(driver, opt, metric, columns, timeout, numbered=numbered)


def _driver(runtime: Any, org_id: str) -> WarehouseDriver:
    driver = driver_for(runtime, org_id)
    if driver.managed:
        runtime.exposures.flush(org_id)  # recent serves become visible
    return driver


def prepare(runtime: Any, org_id: str, optimization_id: str
             ) -> tuple[WarehouseDriver, Optimization, Metric, str, dict[str, Any]]:
    """`WITH e, m, r, credit, att` for per-exposure queries (observations, results)."""
    return _prepared(runtime, org_id, optimization_id, _attributed_sql)


def prepare_sources(runtime: Any, org_id: str, optimization_id: str
                    ) -> tuple[WarehouseDriver, Optimization, Metric, str, dict[str, Any]]:
    """The CTEs `e`, `m`, `r` (no row numbers, no `WITH`) for the training query."""
    return _prepared(runtime, org_id, optimization_id,
                     functools.partial(_sources, numbered=False))


def _prepared(runtime: Any, org_id: str, optimization_id: str,
              build: Callable[..., tuple[str, dict[str, Any]]]
              ) -> tuple[WarehouseDriver, Optimization, Metric, str, dict[str, Any]]:
    opt, metric = _load(runtime, org_id, optimization_id)
    driver = _driver(runtime, org_id)
    limited = server_query_limit(runtime)
    timeout = limited.seconds
    with translated(driver.api_provider, rejected=WarehouseError,
                    rejected_prefix="The metric SQL failed", limit=limited):
        columns = _metric_columns(driver, opt, metric, timeout)
        sql, params = build(driver, opt, metric, columns, timeout)
    return driver, opt, metric, sql, params


def observations(*, runtime: Any, org_id: str, optimization_id: str, page: int,
                 size: int) -> dict[str, Any]:
    """One page of observations, newest exposure first."""
    driver, opt, metric, sql, params = prepare(runtime, org_id, optimization_id)
    limited = server_query_limit(runtime)
    timeout = limited.seconds
    with translated(driver.api_provider, rejected=WarehouseError,
                    rejected_prefix="The observation query failed", limit=limited):
        total = driver.query(sql + " SELECT count(*) AS n FROM e", limit=1, params=params,
                             timeout=timeout).rows[0]["n"]
        offset = (page - 1) * size
        rows = [] if offset >= total else driver.query(
            sql + f"""
SELECT e.exposure_id, e.anonymous_id, e.variant_number, e.context, e.in_holdout,
       e.propensity, e.exposed_at, att.n, att.total, att.rewarded_at FROM e LEFT JOIN att ON att.exp_row = e.exp_row
ORDER BY e.exposed_at DESC, e.exposure_id DESC, e.exp_row DESC LIMIT {size} OFFSET {offset}""",
            limit=size, params=params, timeout=timeout).rows
    window = dt.timedelta(hours=opt.training_data_config["attribution"]
                          ["conversion_window_hours"])
    now = utcnow()
    out = []
    for r in rows:
        exposed = as_utc(dt.datetime.fromisoformat(r["exposed_at"]))
        if r["n"]:
            reward: float | int | None = 1 if metric.reward_type == "bool" else r["total"]
        elif exposed + window > now:
            reward = None
        else:
            reward = 0
        rewarded = r["rewarded_at"]
        out.append({
            "exposure_id": r["exposure_id"] or _derived_id(opt, r, exposed),
            "anonymous_id": r["anonymous_id"],
            "variant": design.variant_of(opt.training_data_config["design_factors"],
                                         r["variant_number"]),
            "variant_number": r["variant_number"],
            "context": json.loads(r["context"]) if r["context"] else {},
            "in_holdout": bool(r["in_holdout"]) if r["in_holdout"] is not None else
            design.in_holdout(opt.id, r["anonymous_id"], opt.holdout_percentage),
            "propensity": r["propensity"], "exposed_at": iso_ms(exposed),
            "reward": reward,
            "rewarded_at": iso_ms(as_utc(dt.datetime.fromisoformat(rewarded)))
            if rewarded else None})
    return {"observations": out, "page": page, "size": size, "total": total}


def _derived_id(opt: Optimization, row: dict[str, Any], exposed: dt.datetime) -> str:
    """UUIDv5 of a bring-your-own row without `exposure_id` (API.md 6.7)."""
    variant = design.variant_of(opt.training_data_config["design_factors"],
                                row["variant_number"])
    name = f"{opt.id}|{row['anonymous_id']}|{iso_ms(exposed)}|{design.variant_key(variant)}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))
