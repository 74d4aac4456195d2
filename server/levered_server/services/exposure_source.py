"""Where an optimization's exposures come from, as the `e` CTE of the attribution SQL.

Managed: `managed_dw.exposures` as the server writes it. Bring-your-own: the connection's
`exposures_table`, whose optional columns may be missing (API.md 10.3). Both in the driver's
dialect.
"""

from __future__ import annotations

from typing import Any

from levered_server.services import design
from levered_server.store.models import Optimization
from levered_server.warehouse.driver_api import (
    Dialect,
    TableNotFound,
    TypeKind,
    WarehouseDriver,
    WarehouseFailure,
)


def _row_number(numbered: bool) -> str:
    # `exp_row` identifies a row for per-exposure queries; a window over every exposure, so
    # the training query (which never needs it) goes without.
    return "row_number() OVER () AS exp_row, " if numbered else ""


def _managed(driver: WarehouseDriver, opt: Optimization, numbers: list[int],
             numbered: bool) -> str:
    return f"""
  SELECT {_row_number(numbered)}exposure_id, anonymous_id, variant_number,
         {driver.dialect.cast('context', 'text')} AS context, in_holdout, propensity,
         timestamp_utc AS exposed_at
  FROM managed_dw.exposures
  WHERE optimization_id = {driver.placeholder('optimization_id')}
    AND variant_number IN ({', '.join(str(n) for n in numbers)})"""


def _byo(driver: WarehouseDriver, opt: Optimization, servable: list[tuple[int, Any]],
         timeout: float, numbered: bool) -> str:
    d = driver.dialect
    q = d.quote
    name = driver.config.exposures_table or "levered_exposures"
    try:
        schema, table = driver.resolve_table(name, timeout=timeout)
    except TableNotFound:
        raise WarehouseFailure(f"the exposures table {name} does not exist") from None
    cols = {c["name"].lower(): c["name"] for c in driver.columns(schema, table, timeout=timeout)}

    def col(name: str, kind: TypeKind | None = None) -> str:
        if name not in cols:
            return d.cast("NULL", kind or "text")
        return d.cast(q(cols[name]), kind) if kind else q(cols[name])

    ts = cols.get("timestamp") or cols.get("timestamp_utc")
    if ts is None or "variant" not in cols:
        raise WarehouseFailure(f"exposures table {schema}.{table} needs the columns anonymous_id, "
                          "optimization_id, variant and timestamp")
    # Variants may be stored as JSON or text with any key order: compare the dialect's JSON
    # keys (a simple CASE, so the column is converted once per row, not once per variant).
    cases = " ".join(f"WHEN {d.json_key(d.literal(design.variant_key(v)))} THEN {n}"
                     for n, v in servable)
    anon = d.cast(q(cols["anonymous_id"]), "text")
    holdout = holdout_condition(d, anon, opt)
    return f"""
  SELECT * FROM (
    SELECT {_row_number(numbered)}{col('exposure_id', 'text')} AS exposure_id,
           {anon} AS anonymous_id,
           CASE {d.json_key(q(cols['variant']))} {cases} END AS variant_number, {col('context', 'text')} AS context,
           coalesce({col('in_holdout', 'boolean')}, {holdout})
             AS in_holdout,
           {col('propensity', 'float')} AS propensity,
           {d.cast(q(ts), 'timestamp')} AS exposed_at
    FROM {q(schema)}.{q(table)}
    WHERE {d.cast(q(cols['optimization_id']), 'text')} = {d.placeholder('optimization_id')}
  ) AS byo WHERE variant_number IS NOT NULL"""


def holdout_condition(dialect: Dialect, anon_text: str, opt: Any) -> str:
    """Whether the user (SQL text of type text) is in the optimization's holdout: the hash of
    API.md 2.4 in the dialect, for rows that lack `in_holdout`."""
    return f"({dialect.holdout_bucket(f'{opt.id}:', anon_text)} < {opt.holdout_percentage * 100})"


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
