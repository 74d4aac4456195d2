"""The training query: attributed exposures grouped to the engine's cell statistics (API.md 2.5).

One statement per run, in the driver's dialect, built on the exposure (`e`), metric (`m`) and
reward (`r`) CTEs of :mod:`levered_server.services.attribution`. It returns one row per
(variant, context cell, holdout flag) with the columns of :mod:`levered_server.engine.stats`;
raw events never leave the warehouse.

Shape (close to a join and a GROUP BY, no window over all exposures):

- ``rr``: reward rows summed per (user, time): rewards at the same instant go to the same
  exposure.
- ``j``/``cred``: one hash join of ``rr`` to the user's exposures inside the window; of each
  reward time's candidates the latest exposure wins (ties on time: the greatest
  ``exposure_id``, NULL last, then the rest of the row so the choice is deterministic). The
  window runs over the join's few rows only. ``cred`` sums the rewards credited to each
  exposure (``n``, ``total``).
- ``cx``: each distinct context text, its factor values (the JSON parsed once per distinct
  text, not once per exposure) and ``cell``, an integer per distinct tuple of values (key
  order and extra keys do not matter), so the grouping keys stay narrow.
- ``cells``: every exposure grouped to its cell (``exposures``, ``users``, propensity sums) UNION ALL the credited exposures grouped to theirs (the
  reward sums); every column is a sum, so the final GROUP BY adds the two parts (an exposure
  without credit has r = 0 and adds nothing to the reward sums), and ``named`` turns the cell
  back into its ``ctx_j`` values.

``users`` is the dialect's ``approx_distinct``: DuckDB's HyperLogLog ``approx_count_distinct``,
an exact ``count(DISTINCT anonymous_id)`` where the warehouse has no sketch (PostgreSQL): no
model reads it, and the exact count was the largest single cost of the statement (about a third
of its CPU time at 10M exposures). The user counts that results show come from their own exact
per-user query.

Everything that differs between warehouses (JSON, casts, placeholders, hints, intervals) comes
from the driver's :class:`~levered_server.warehouse.driver_api.Dialect`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from levered_server.engine.stats import CellStats
from levered_server.errors import WarehouseError
from levered_server.services.attribution import prepare_sources, sources_for, window_hours
from levered_server.services.warehouse_calls import server_query_limit, translated
from levered_server.warehouse.driver_api import Dialect

MAX_CELLS = 1_000_000
# The exposure columns that identify a row for attribution's tie-break and grouping.
_EXPOSURE = ("anonymous_id", "exposed_at", "exposure_id", "variant_number", "context",
             "in_holdout", "propensity")
_REWARD_SUMS = ("reward_count", "reward_sum", "reward_sum_sq", "ipw_reward_sum",
                "ipw_reward_sq_sum", "ipw_reward_w2_sum", "ipw_reward_sq_w2_sum")
_EXPOSURE_SUMS = ("exposures", "users", "propensity_count", "ipw_weight_sum",
                  "ipw_weight_sq_sum")


def _weight(alias: str) -> str:
    # w = 1/π; holdout rows carry π = 1; NULL (left out of every ipw_* sum) without π > 0.
    return (f"1.0 / CASE WHEN coalesce({alias}.in_holdout, FALSE) THEN 1.0 "
            f"WHEN {alias}.propensity > 0 THEN {alias}.propensity END")


def cells_sql(dialect: Dialect, context_factors: list[str], reward_type: str, hours: int
              ) -> tuple[str, dict[str, Any]]:
    """The CTEs and SELECT appended to `WITH e, m, r`, and their extra parameters."""
    params = {f"ctx_name_{j}": name for j, name in enumerate(context_factors)}
    ctx_names = [f"ctx_{j}" for j in range(len(context_factors))]
    # Each factor's JSON member as text (booleans as 'true'/'false', null as NULL).
    extract = "".join(
        f", {dialect.json_text('cx.k', dialect.placeholder(f'ctx_name_{j}'))} AS ctx_{j}"
        for j in range(len(context_factors)))
    rv = "1.0" if reward_type == "bool" else dialect.cast("coalesce(c.total, 0)", "float")
    materialized = dialect.cte_hint(True)
    # users: a sketch where the warehouse has one (see the module docstring).
    users = dialect.approx_distinct("e.anonymous_id")
    desc = ", ".join(f"e.{c} DESC NULLS LAST" for c in _EXPOSURE[1:])
    # Named: after a join ClickHouse calls a qualified column `e.anonymous_id`, not `anonymous_id`.
    exposure_cols = ", ".join(f"e.{c} AS {c}" for c in _EXPOSURE)
    exposure_key = ", ".join(_EXPOSURE)
    zero_rewards = ", ".join(f"0 AS {c}" for c in _REWARD_SUMS)
    zero_exposures = ", ".join(f"0 AS {c}" for c in _EXPOSURE_SUMS)

    def context_key(alias: str) -> str:
        return f"coalesce({dialect.cast(f'{alias}.context', 'text')}, {dialect.literal('{}')})"

    # One integer per cell (the context texts giving the same factor values), so that the
    # grouping (and the distinct count of users) runs on narrow keys.
    rank = (f"dense_rank() OVER (ORDER BY {', '.join(f'd.{c}' for c in ctx_names)})"
            if ctx_names else "1")
    sql = f""",
rr AS{materialized} (
  SELECT anonymous_id, ts, count(*) AS n, sum(value) AS total FROM r GROUP BY anonymous_id, ts
),
j AS (
  SELECT rr.n, rr.total, {exposure_cols},
         row_number() OVER (PARTITION BY rr.anonymous_id, rr.ts ORDER BY {desc}) AS rn
  FROM rr JOIN e ON e.anonymous_id = rr.anonymous_id AND e.exposed_at <= rr.ts
                AND rr.ts <= {dialect.add_hours('e.exposed_at', hours)}
),
cred AS (
  SELECT {exposure_key}, sum(n) AS n, sum(total) AS total
  FROM j WHERE rn = 1 GROUP BY {exposure_key}
),
cx AS (
  SELECT d.*, {rank} AS cell
  FROM (SELECT cx.k{extract}
        FROM (SELECT DISTINCT {context_key("e")} AS k FROM e) AS cx) AS d
),
cells AS (
  SELECT e.variant_number, cx.cell, coalesce(e.in_holdout, FALSE) AS in_holdout,
         count(*) AS exposures, {users} AS users,
         count({_weight('e')}) AS propensity_count, sum({_weight('e')}) AS ipw_weight_sum,
         sum(({_weight('e')}) * ({_weight('e')})) AS ipw_weight_sq_sum, {zero_rewards}
  FROM e JOIN cx ON cx.k = {context_key('e')}
  GROUP BY 1, 2, 3
  UNION ALL
  SELECT x.variant_number, x.cell, x.in_holdout, {zero_exposures},
         sum(CASE WHEN x.rv > 0 THEN 1 ELSE 0 END) AS reward_count, sum(x.rv) AS reward_sum,
         sum(x.rv * x.rv) AS reward_sum_sq, sum(x.rv * x.w) AS ipw_reward_sum,
         sum(x.rv * x.rv * x.w) AS ipw_reward_sq_sum, sum(x.rv * x.w * x.w) AS ipw_reward_w2_sum,
         sum(x.rv * x.rv * x.w * x.w) AS ipw_reward_sq_w2_sum
  FROM (SELECT c.variant_number, cx.cell, coalesce(c.in_holdout, FALSE) AS in_holdout,
               {rv} AS rv, {_weight('c')} AS w
        FROM cred AS c JOIN cx ON cx.k = {context_key('c')}) AS x
  GROUP BY 1, 2, 3
),
named AS (
  SELECT DISTINCT cell{''.join(f', {c}' for c in ctx_names)} FROM cx
)
SELECT cells.variant_number{''.join(f', named.{c}' for c in ctx_names)}, cells.in_holdout,
       {', '.join(f'sum(cells.{c}) AS {c}' for c in (*_EXPOSURE_SUMS, *_REWARD_SUMS))},
       {dialect.cast("sum(sum(cells.exposures)) OVER () + (SELECT coalesce(sum(n), 0) FROM rr)",
                     "integer")} AS rows_scanned
FROM cells JOIN named ON named.cell = cells.cell
GROUP BY cells.variant_number, cells.cell{''.join(f', named.{c}' for c in ctx_names)}, cells.in_holdout"""
    return sql, params


def training_statement(driver: Any, opt: Any, metric: Any, timeout: float
                       ) -> tuple[str, dict[str, Any]]:
    """The whole training statement of an optimization and its metric on a driver, and its
    parameters (what :func:`cell_columns` runs; the driver conformance suite runs it too).

    :param opt: an `Optimization` (or any object with its `id`, `created_at`,
        `holdout_percentage`, `excluded_combinations`, `training_data_config`).
    :param metric: a `Metric` (or any object with its `sql`, column names and `reward_type`).
    """
    sources, params = sources_for(driver, opt, metric, timeout, numbered=False)
    factors = [f["name"] for f in opt.training_data_config["context_factors"]]
    tail, extra = cells_sql(driver.dialect, factors, metric.reward_type, window_hours(opt))
    return "WITH " + sources + tail, {**params, **extra}


def cell_columns(*, runtime: Any, org_id: str, optimization_id: str
                 ) -> tuple[dict[str, Any], list[str], int | None, str]:
    """Run the training query: its result by column, the context factors, the rows the
    warehouse scanned and the reward type (:func:`cell_stats` builds the cells from them)."""
    driver, opt, metric, sources, params = prepare_sources(runtime, org_id, optimization_id)
    factors = [f["name"] for f in opt.training_data_config["context_factors"]]
    tail, extra = cells_sql(driver.dialect, factors, metric.reward_type, window_hours(opt))
    limited = server_query_limit(runtime)
    with translated(driver.api_provider, rejected=WarehouseError,
                    rejected_prefix="The training query failed", limit=limited):
        # By column: the embedded warehouse hands back numpy arrays, so this thread does not
        # hold the server's GIL building a Python object per value while requests wait.
        result = driver.query_columns("WITH " + sources + tail, limit=MAX_CELLS,
                                      params={**params, **extra}, timeout=limited.seconds)
    scanned = _rows_scanned(result.columns.get("rows_scanned", []))
    return result.columns, factors, scanned, metric.reward_type


def cell_stats(*, runtime: Any, org_id: str, optimization_id: str
               ) -> tuple[CellStats, int | None, str]:
    """Run the training query: the cells, the rows the warehouse scanned, the reward type."""
    columns, factors, scanned, reward_type = cell_columns(
        runtime=runtime, org_id=org_id, optimization_id=optimization_id)
    return CellStats.from_columns(columns, factors), scanned, reward_type


def _rows_scanned(column: Any) -> int | None:
    """The largest ``rows_scanned`` (every row carries the total), None without rows."""
    if isinstance(column, np.ndarray):
        if column.size == 0:
            return None
        return int(np.ma.getdata(column)[~np.ma.getmaskarray(column)].max(initial=0))
    return max((int(v or 0) for v in column), default=None)
