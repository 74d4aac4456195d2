"""Bulk inserts into the embedded DuckDB warehouse's `managed_dw` tables.

The serve path's group commit (`services/serve_log.py`) and ingestion write through these.
"""

from __future__ import annotations

from typing import Any

COLUMNS = ("exposure_id", "anonymous_id", "optimization_id", "variant", "variant_number",
           "context", "in_holdout", "propensity", "model_version", "source", "idempotency_key",
           "timestamp_utc", "organization_id", "created_at")


def insert_rows(con: Any, table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]
                ) -> None:
    """Insert rows in one statement: one list parameter per column, `unnest`ed.

    (DuckDB's `executemany` binds row by row and is ~40× slower.)
    """
    if not rows:
        return
    selects = ", ".join(f"unnest(${i + 1})" for i in range(len(columns)))
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selects}",
                [[r.get(c) for r in rows] for c in columns])


def insert_exposures(con: Any, rows: list[dict[str, Any]]) -> None:
    """Insert exposure rows (dicts keyed by column) on a writer connection."""
    insert_rows(con, "managed_dw.exposures", COLUMNS, rows)
