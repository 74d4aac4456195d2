"""The training query: attributed exposures grouped to the engine's cell statistics (API.md 2.5).

One statement per run, in the driver's dialect, built on the attribution SQL of
:mod:`levered_server.services.attribution`. It returns one row per (variant, context cell,
holdout flag) with the columns of :mod:`levered_server.engine.stats`; raw events never leave
the warehouse.
"""

from __future__ import annotations

from typing import Any

from levered_server.engine.stats import CellStats
from levered_server.errors import WarehouseError
from levered_server.services.attribution import prepare
from levered_server.services.warehouse_calls import translated

MAX_CELLS = 1_000_000


def _context_expr(provider: str, placeholder: str) -> str:
    # Both dialects extract a JSON member as text (booleans as 'true'/'false', null as NULL).
    cast = "JSON" if provider == "duckdb" else "jsonb"
    return f"CAST(e.context AS {cast}) ->> {placeholder}"


def cells_sql(provider: str, placeholder: Any, context_factors: list[str],
              reward_type: str) -> tuple[str, dict[str, Any]]:
    """The SELECT appended to the attribution CTEs, and its extra parameters."""
    params = {f"ctx_name_{j}": name for j, name in enumerate(context_factors)}
    ctx = [f"{_context_expr(provider, placeholder(f'ctx_name_{j}'))} AS ctx_{j}"
           for j in range(len(context_factors))]
    reward = ("CASE WHEN att.n > 0 THEN 1.0 ELSE 0.0 END" if reward_type == "bool"
              else "CAST(coalesce(att.total, 0) AS DOUBLE PRECISION)")
    group = ", ".join(str(i) for i in range(1, len(ctx) + 3))
    sql = f""",
x AS (
  SELECT e.variant_number, {''.join(c + ', ' for c in ctx)}coalesce(e.in_holdout, FALSE) AS in_holdout,
         e.anonymous_id, {reward} AS rv,
         1.0 / CASE WHEN coalesce(e.in_holdout, FALSE) THEN 1.0
                    WHEN e.propensity > 0 THEN e.propensity END AS w
  FROM e LEFT JOIN att ON att.exp_row = e.exp_row
),
scanned AS (SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM r) AS rows_scanned)
SELECT x.variant_number, {''.join(f'x.ctx_{j}, ' for j in range(len(ctx)))}x.in_holdout,
       count(*) AS exposures, count(DISTINCT x.anonymous_id) AS users,
       sum(CASE WHEN x.rv > 0 THEN 1 ELSE 0 END) AS reward_count, sum(x.rv) AS reward_sum,
       sum(x.rv * x.rv) AS reward_sum_sq, count(x.w) AS propensity_count,
       sum(x.w) AS ipw_weight_sum, sum(x.w * x.w) AS ipw_weight_sq_sum,
       sum(x.rv * x.w) AS ipw_reward_sum, sum(x.rv * x.rv * x.w) AS ipw_reward_sq_sum,
       sum(x.rv * x.w * x.w) AS ipw_reward_w2_sum,
       sum(x.rv * x.rv * x.w * x.w) AS ipw_reward_sq_w2_sum,
       max(scanned.rows_scanned) AS rows_scanned
FROM x CROSS JOIN scanned
GROUP BY {group}"""
    return sql, params


def cell_stats(*, runtime: Any, org_id: str, optimization_id: str
               ) -> tuple[CellStats, int | None, str]:
    """Run the training query: the cells, the rows the warehouse scanned, the reward type."""
    driver, opt, metric, sql, params = prepare(runtime, org_id, optimization_id)
    factors = [f["name"] for f in opt.training_data_config["context_factors"]]
    tail, extra = cells_sql(driver.provider, driver.placeholder, factors, metric.reward_type)
    with translated(driver.provider, rejected=WarehouseError,
                    rejected_prefix="The training query failed"):
        rows = driver.query(sql + tail, limit=MAX_CELLS, params={**params, **extra},
                            timeout=runtime.settings.query_timeout_seconds).rows
    scanned = max((int(r["rows_scanned"] or 0) for r in rows), default=None)
    return CellStats.from_rows(rows, factors), scanned, metric.reward_type
