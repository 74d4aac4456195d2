"""Bulk inserts into the embedded DuckDB warehouse's `managed_dw` tables.

The serve path's group commit (`services/serve_log.py`) and ingestion write through these.
"""

from __future__ import annotations

import json
from typing import Any

COLUMNS = ("exposure_id", "anonymous_id", "optimization_id", "variant", "variant_number",
           "context", "in_holdout", "propensity", "model_version", "source", "idempotency_key",
           "timestamp_utc", "organization_id", "created_at")
#: DuckDB's type of each column as an outbox payload carries it: `variant` and `context` are
#: JSON text inside the payload, stored as the JSON columns' text.
PAYLOAD_TYPES = {"exposure_id": "VARCHAR", "anonymous_id": "VARCHAR",
                 "optimization_id": "VARCHAR", "variant": "VARCHAR", "variant_number": "INTEGER",
                 "context": "VARCHAR", "in_holdout": "BOOLEAN", "propensity": "DOUBLE",
                 "model_version": "INTEGER", "source": "VARCHAR", "idempotency_key": "VARCHAR",
                 "timestamp_utc": "TIMESTAMP", "organization_id": "VARCHAR",
                 "created_at": "TIMESTAMP"}
_FROM_PAYLOADS = (f"INSERT INTO managed_dw.exposures ({', '.join(COLUMNS)}) "
                  f"SELECT {', '.join('r.' + c for c in COLUMNS)} "
                  f"FROM (SELECT from_json(unnest($1), '{json.dumps(PAYLOAD_TYPES)}') AS r)")


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


def insert_exposure_payloads(con: Any, payloads: list[str]) -> None:
    """Insert exposures from their outbox payloads (`services/outbox.encode`), parsed by DuckDB.

    The outbox mover's hot loop: decoding each payload in Python and binding the values held
    the GIL ~25 µs per row, in stretches of several milliseconds that the serving event loop
    waited behind (docs/benchmarks.md); DuckDB's `from_json` parses them without it.
    """
    if payloads:
        con.execute(_FROM_PAYLOADS, [payloads])
