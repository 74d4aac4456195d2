"""Sticky locks on the serve path: read-through, written behind in batches.

A new lock is visible to this process at once (pending map) and reaches the database
within one flush interval (~200 ms). What a crash can lose: locks of users first served
in the last interval; those users may be assigned again (and get a new propensity).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from levered_server.store.db import Store
from levered_server.store.models import Lock

Key = tuple[str, str]
_COLUMNS = ("organization_id", "optimization_id", "anonymous_id", "variant_number",
            "propensity", "model_version", "assigned_at")


def _naive(value: Any) -> Any:
    # Stored as naive UTC, as `UTCDateTime` does for ORM writes.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


class LockBuffer:
    """Pending locks by (optimization_id, anonymous_id), flushed with INSERT … DO NOTHING."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._mark = "%s" if store.engine.dialect.name == "postgresql" else "?"
        self._lookup = (f"SELECT variant_number, propensity FROM {Lock.__tablename__} "
                        f"WHERE optimization_id = {self._mark} AND anonymous_id = {self._mark}")

    def get(self, optimization_id: str, anonymous_id: str) -> tuple[int, float] | None:
        """The user's lock: pending first, then the database."""
        with self._lock:
            row = self._pending.get((optimization_id, anonymous_id))
        if row is not None:
            return row["variant_number"], row["propensity"]
        # Raw SQL: building the ORM select cost more Python than the indexed lookup itself,
        # on the event loop, for every first visit of a user.
        with self.store.engine.connect() as conn:
            found = conn.exec_driver_sql(self._lookup, (optimization_id, anonymous_id)).first()
        return (found[0], found[1]) if found else None

    def put(self, row: dict[str, Any]) -> tuple[int, float]:
        """Queue a new lock unless one is pending already; return the lock that holds."""
        key = (row["optimization_id"], row["anonymous_id"])
        with self._lock:
            held = self._pending.setdefault(key, row)
        return held["variant_number"], held["propensity"]

    def flush(self) -> None:
        """Write pending locks; an existing row (another worker was first) wins."""
        with self._flush_lock:
            with self._lock:
                rows = list(self._pending.values())
            if not rows:
                return
            # Raw executemany: the ORM insert costs ~10× more Python per row, and this
            # runs beside the serve path.
            sql = (f"INSERT INTO locks ({', '.join(_COLUMNS)}) VALUES "
                   f"({', '.join(self._mark for _ in _COLUMNS)}) ON CONFLICT DO NOTHING")
            params = [tuple(_naive(r[c]) for c in _COLUMNS) for r in rows]
            with self.store.engine.begin() as conn:
                conn.exec_driver_sql(sql, params)
            with self._lock:
                for r in rows:
                    key = (r["optimization_id"], r["anonymous_id"])
                    if self._pending.get(key) is r:
                        del self._pending[key]
