"""The managed warehouse's tables, shared by its engines (DuckDB, PostgreSQL)."""

from __future__ import annotations

from typing import Any

from levered_server.warehouse.exposure_writer import COLUMNS as EXPOSURE_COLUMNS

SCHEMA = "managed_dw"
EXPOSURES = f"{SCHEMA}.exposures"
REWARDS = f"{SCHEMA}.rewards"
REWARD_COLUMNS = ("reward_id", "anonymous_id", "name", "value", "timestamp_utc",
                  "organization_id", "optimization_id", "properties", "idempotency_key",
                  "created_at")
KINDS = {"exposures": (EXPOSURES, EXPOSURE_COLUMNS), "rewards": (REWARDS, REWARD_COLUMNS)}


def table_of(kind: str) -> tuple[str, tuple[str, ...]]:
    """The table and columns of an ingested kind (`exposures` or `rewards`).

    :raises ValueError: another kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of event: {kind!r}")
    return KINDS[kind]


def fresh_rows(rows: list[dict[str, Any]], seen_keys: set[str], seen_ids: set[str]
               ) -> list[dict[str, Any]]:
    """The rows whose idempotency key and explicit exposure id (`_explicit_id`) are new.

    The first of several rows of the batch with the same key or id wins; the sets are
    updated with what is kept.
    """
    fresh = []
    for r in rows:
        key, rid, explicit = r.get("idempotency_key"), r.get("exposure_id"), r.get("_explicit_id")
        if (key and key in seen_keys) or (explicit and rid in seen_ids):
            continue
        if key:
            seen_keys.add(key)
        if explicit and rid is not None:
            seen_ids.add(rid)
        fresh.append(r)
    return fresh
