"""Sticky locks in the state store: one indexed lookup per first visit, batched inserts.

Writes come from the serve log's group commit (`services/serve_log.py`), which commits them
before the serve is acknowledged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from levered_server.store.db import Store
from levered_server.store.models import Lock

Key = tuple[str, str]
_COLUMNS = ("organization_id", "optimization_id", "anonymous_id", "variant_number",
            "propensity", "model_version", "assigned_at")
_READ_BACK = 500  # keys per read-back statement (SQLite's variable limit is far above 2×)


def _naive(value: Any) -> Any:
    # Stored as naive UTC, as `UTCDateTime` does for ORM writes.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


class LockStore:
    """Reads and inserts sticky locks by (optimization_id, anonymous_id), raw SQL."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._mark = "%s" if store.engine.dialect.name == "postgresql" else "?"
        self._lookup = (f"SELECT variant_number, propensity FROM {Lock.__tablename__} "
                        f"WHERE optimization_id = {self._mark} AND anonymous_id = {self._mark}")
        self._insert = (f"INSERT INTO {Lock.__tablename__} ({', '.join(_COLUMNS)}) VALUES "
                        f"({', '.join(self._mark for _ in _COLUMNS)}) ON CONFLICT DO NOTHING")

    def get(self, optimization_id: str, anonymous_id: str) -> tuple[int, float] | None:
        """The user's stored lock."""
        # Raw SQL: building the ORM select cost more Python than the indexed lookup itself,
        # on the event loop, for every first visit of a user.
        with self.store.engine.connect() as conn:
            found = conn.exec_driver_sql(self._lookup, (optimization_id, anonymous_id)).first()
        return (found[0], found[1]) if found else None

    def insert(self, rows: list[dict[str, Any]]) -> dict[Key, tuple[int, float]]:
        """Insert new locks (an existing row wins) in one transaction; return the lock that
        holds for every key, as stored."""
        if not rows:
            return {}
        # Raw executemany: the ORM insert costs ~10× more Python per row.
        params = [tuple(_naive(r[c]) for c in _COLUMNS) for r in rows]
        keys = list({(r["optimization_id"], r["anonymous_id"]) for r in rows})
        held: dict[Key, tuple[int, float]] = {}
        with self.store.engine.begin() as conn:
            conn.exec_driver_sql(self._insert, params)
            for i in range(0, len(keys), _READ_BACK):
                chunk = keys[i:i + _READ_BACK]
                values = ", ".join(f"({self._mark}, {self._mark})" for _ in chunk)
                flat = tuple(x for key in chunk for x in key)
                for oid, anon, number, p in conn.exec_driver_sql(
                        f"SELECT optimization_id, anonymous_id, variant_number, propensity "
                        f"FROM {Lock.__tablename__} WHERE (optimization_id, anonymous_id) "
                        f"IN (VALUES {values})", flat):
                    held[(oid, anon)] = (int(number), float(p))
        return held
