"""Where an optimization's exposures come from, as the `e` CTE of the attribution SQL.

Managed DuckDB: `managed_dw.exposures` as the server writes it. Bring-your-own: the
connection's `exposures_table`, whose optional columns may be missing (API.md 10.3).
"""

from __future__ import annotations

from typing import Any

from levered_server.services import design
from levered_server.store.models import Optimization
from levered_server.warehouse.base import TableNotFound, WarehouseDriver, WarehouseFailure


def _row_number(numbered: bool) -> str:
    # `exp_row` identifies a row for per-exposure queries; a window over every exposure, so
    # the training query (which never needs it) goes without.
    return "row_number() OVER () AS exp_row, " if numbered else ""


def _managed(driver: WarehouseDriver, opt: Optimization, numbers: list[int],
             numbered: bool) -> str:
    return f"""
  SELECT {_row_number(numbered)}exposure_id, anonymous_id, variant_number,
         CAST(context AS VARCHAR) AS context, in_holdout, propensity, timestamp_utc AS exposed_at
  FROM managed_dw.exposures
  WHERE optimization_id = {driver.placeholder('optimization_id')}
    AND variant_number IN ({', '.join(str(n) for n in numbers)})"""


def _byo(driver: WarehouseDriver, opt: Optimization, servable: list[tuple[int, Any]],
         timeout: float, numbered: bool) -> str:
    q = driver.quote
    name = driver.config.exposures_table or "levered_exposures"
    try:
        schema, table = driver.resolve_table(name, timeout=timeout)
    except TableNotFound:
        raise WarehouseFailure(f"the exposures table {name} does not exist") from None
    cols = {c["name"].lower(): c["name"] for c in driver.columns(schema, table, timeout=timeout)}

    def col(name: str, cast: str | None = None) -> str:
        if name not in cols:
            return f"CAST(NULL AS {cast or 'VARCHAR'})"
        return f"CAST({q(cols[name])} AS {cast})" if cast else q(cols[name])

    ts = cols.get("timestamp") or cols.get("timestamp_utc")
    if ts is None or "variant" not in cols:
        raise WarehouseFailure(f"exposures table {schema}.{table} needs the columns anonymous_id, "
                          "optimization_id, variant and timestamp")
    # Variants may be stored as JSON or text with any key order: compare as jsonb (a simple
    # CASE, so the column is cast once per row, not once per variant).
    cases = " ".join(f"WHEN CAST({_literal(design.variant_key(v))} AS jsonb) THEN {n}"
                     for n, v in servable)
    return f"""
  SELECT * FROM (
    SELECT {_row_number(numbered)}{col('exposure_id', 'VARCHAR')} AS exposure_id,
           CAST({q(cols['anonymous_id'])} AS VARCHAR) AS anonymous_id,
           CASE CAST({q(cols['variant'])} AS jsonb) {cases} END AS variant_number, {col('context', 'VARCHAR')} AS context,
           coalesce({col('in_holdout', 'BOOLEAN')}, {_holdout_sql(q(cols['anonymous_id']), opt)})
             AS in_holdout,
           {col('propensity', 'DOUBLE PRECISION')} AS propensity,
           CAST({q(ts)} AS TIMESTAMP) AS exposed_at
    FROM {q(schema)}.{q(table)}
    WHERE CAST({q(cols['optimization_id'])} AS VARCHAR) = {driver.placeholder('optimization_id')}
  ) AS byo WHERE variant_number IS NOT NULL"""


def _literal(text: str) -> str:
    # A SQL string literal for psycopg with parameters: quotes doubled, `%` doubled.
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _holdout_sql(anon: str, opt: Optimization) -> str:
    """The holdout hash of API.md 2.4 in PostgreSQL, for rows that lack `in_holdout`."""
    digest = f"sha256(convert_to('{opt.id}:' || CAST({anon} AS VARCHAR), 'UTF8'))"
    big = " + ".join(f"get_byte({digest}, {i})::numeric * {256 ** (7 - i)}" for i in range(8))
    return f"(mod({big}, 10000) < {opt.holdout_percentage * 100})"


def exposures_cte(driver: WarehouseDriver, opt: Optimization, timeout: float, *,
                  numbered: bool = True) -> str:
    """SELECT of ([exp_row,] exposure_id, anonymous_id, variant_number, context, in_holdout,
    propensity, exposed_at) for the optimization's servable exposures (`exp_row` with
    `numbered`)."""
    servable = design.servable_variants(opt.training_data_config["design_factors"],
                                        opt.excluded_combinations)
    if driver.managed:
        return _managed(driver, opt, [n for n, _ in servable], numbered)
    return _byo(driver, opt, servable, timeout, numbered)
