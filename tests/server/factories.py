"""Request bodies used across the server tests (the contract's own examples)."""

from __future__ import annotations

import copy
from typing import Any

SIGNUP_SQL = ("SELECT anonymous_id, timestamp_utc FROM managed_dw.rewards "
              "WHERE name = 'signup_completed' AND timestamp_utc >= @start_date")
REVENUE_SQL = ("SELECT anonymous_id, timestamp_utc, value FROM rewards "
               "WHERE name = 'purchase' AND timestamp_utc >= @start_date")

HERO: dict[str, Any] = {
    "name": "Landing Page Hero",
    "model_type": "cmab",
    "training_data_config": {
        "reward": {"name": "signup", "type": "bool"},
        "design_factors": [
            {"name": "headline", "dtype": "str",
             "levels": ["Ship faster", "Build better", "Scale up"]},
            {"name": "cta_text", "levels": ["Get started", "Try it free"]},
        ],
        "context_factors": [{"name": "country", "levels": ["US", "DE"]},
                            {"name": "device_type"}],
        "attribution": {"type": "last_touch", "conversion_window_hours": 24},
    },
    "holdout_percentage": 10,
    "excluded_combinations": [{"cta_text": "Try it free", "headline": "Scale up"}],
}


def metric_body(name: str = "Sign-ups (7d)", sql: str = SIGNUP_SQL, **mapping: Any
                ) -> dict[str, Any]:
    cm = {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc", **mapping}
    return {"name": name, "sql": sql, "column_mapping": cm}


def make_metric(org: Any, **kw: Any) -> dict[str, Any]:
    resp = org.post("/api/v2/warehouse/metrics", json=metric_body(**kw))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def connect_postgres(org: Any, schema: str) -> dict[str, Any]:
    """Connect the organization to a schema of the test PostgreSQL (bring-your-own warehouse)."""
    resp = org.post("/api/v2/warehouse/connections", json={
        "provider": "postgres", "dataset_id": schema, "credentials": {
            "host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres",
            "sslmode": "disable"}})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def hero(metric_id: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(HERO)
    body["reward_metric_id"] = metric_id
    body.update(changes)
    return body


def make_optimization(org: Any, metric_id: str | None = None, **changes: Any) -> dict[str, Any]:
    if metric_id is None:
        metric_id = make_metric(org)["id"]
    resp = org.post("/api/v2/optimizations", json=hero(metric_id, **changes))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())
