"""A property-style run: random bodies and parameters on every endpoint never give a 5xx.

Seeded (reproducible) and bounded; the number of cases tried is printed (`-s`) and asserted.
"""

from __future__ import annotations

import json
import random

from tests.server.factories import HERO, make_optimization

CASES_PER_ENDPOINT = 25
ATOMS = [None, True, False, 0, -1, 1, 51, 10**20, 1.5, float("1e308"), "", "x", "é" * 300,
         "699ede80-c94b-4f98-9c79-dd3e07748703", "2026-11-21T11:58:02Z", "SELECT 1",
         "DROP TABLE rewards", "'; --", "@start_date", [], {}, [1, "a"], {"a": None},
         # Found by the audit: lone surrogates (not UTF-8) and timestamps that overflow in UTC.
         "bad\ud800id", "\udfff", {"k\ud800": "v"}, "0001-01-01T00:00:00+05:00",
         "9999-12-31T23:59:59-14:00"]


def _value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and roll < 0.4:
        return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return json.loads(json.dumps(rng.choice(ATOMS)))  # a fresh copy: bodies get mutated


KEYS = ["name", "sql", "column_mapping", "anonymous_id", "timestamp", "value", "reward_type",
        "model_type", "reward_metric_id", "holdout_percentage", "excluded_combinations",
        "training_data_config", "design_factors", "levels", "dtype", "context", "dry_run",
        "status", "bias", "events", "optimization_id", "variant", "provider", "credentials",
        "limit", "optimizationId", "idempotency_key", "properties", "headline"]


def _mutate(rng: random.Random, base: dict) -> dict:
    body = json.loads(json.dumps(base))
    for _ in range(rng.randint(1, 4)):
        target = body
        path = []
        while isinstance(target, dict) and target and rng.random() < 0.6:
            key = rng.choice(list(target))
            if not isinstance(target[key], (dict, list)):
                break
            path.append(key)
            target = target[key] if isinstance(target[key], dict) else target
            if not isinstance(target, dict):
                break
        if isinstance(target, dict):
            target[rng.choice(list(target) + KEYS)] = _value(rng)
    return body


def _nested(rng: random.Random) -> str:
    """A body nested thousands of levels deep, bare or inside an object (was a 500)."""
    depth = rng.choice([65, 3000, 100_000])
    inner = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
    return inner if rng.random() < 0.5 else '{"events": ' + inner + "}"


def _endpoints(org):
    opt = make_optimization(org)
    oid, mid = opt["id"], opt["model_id"]
    base_hero = {**HERO, "reward_metric_id": opt["reward_metric_id"]}
    endpoints = [
        ("POST", "/api/v2/api-keys", {"name": "k"}),
        ("POST", "/api/v2/warehouse/metrics", {"name": "m", "sql": "SELECT 1 AS a",
                                               "column_mapping": {"anonymous_id": "a",
                                                                  "timestamp": "a"}}),
        ("POST", "/api/v2/optimizations", base_hero),
        ("PATCH", f"/api/v2/optimizations/{oid}", {"name": "n"}),
        ("POST", f"/api/v2/optimizations/{oid}/serve", {"anonymous_id": "u",
                                                        "context": {"country": "US"}}),
        ("POST", "/api/v2/optimizations/best-variant", {"optimization_id": oid}),
        ("POST", f"/api/v2/models/{mid}/train", {"bias": {"headline": 1}}),
        ("POST", "/api/v2/warehouse/query", {"sql": "SELECT 1", "limit": 5}),
        ("POST", "/api/v2/warehouse/connections/test", {"provider": "duckdb"}),
        ("POST", "/api/v2/ingest/exposures", {"events": [{"anonymous_id": "a",
                                                          "optimization_id": oid}]}),
        ("POST", "/api/v2/ingest/rewards", {"events": [{"anonymous_id": "a", "name": "x"}]}),
    ]
    return opt, endpoints


def test_no_server_errors_on_generated_input(org, server):
    rng = random.Random(20261125)
    opt, endpoints = _endpoints(org)
    oid = opt["id"]
    gets = ["/api/v2/optimizations", f"/api/v2/optimizations/{oid}/observations",
            "/api/v2/models", "/api/v2/warehouse/tables/rewards/preview",
            f"/api/v2/warehouse/metrics/{opt['reward_metric_id']}/preview"]
    tried = 0
    for method, path, base in endpoints:
        for _ in range(CASES_PER_ENDPOINT):
            body = _mutate(rng, base)
            resp = org.request(method, path, content=json.dumps(body),
                               headers={"Content-Type": "application/json"})
            assert resp.status_code < 500, (method, path, body, resp.text)
            assert "Traceback" not in resp.text
            tried += 1
    for path in gets:
        for _ in range(CASES_PER_ENDPOINT):
            params = {k: rng.choice(["0", "-1", "1", "x", "true", "100001", "2026-01-01", ""])
                      for k in rng.sample(["limit", "page", "size", "offset", "order_by",
                                           "include_archived", "start_date"], 3)}
            resp = org.get(path, params=params)
            assert resp.status_code < 500, (path, params, resp.text)
            tried += 1
    print(f"fuzz: {tried} generated requests, no 5xx")
    assert tried == CASES_PER_ENDPOINT * (len(endpoints) + len(gets))


HOSTILE = ["bad\ud800id", {"p\udfff": 1}, "0001-01-01T00:00:00+05:00",
           "9999-12-31T23:59:59-14:00"]


def test_no_server_errors_on_hostile_json(org, server):
    """Deep nesting and hostile values in every field of valid events (each was a 5xx)."""
    rng = random.Random(20261126)
    _opt, endpoints = _endpoints(org)
    tried = 0
    for method, path, base in endpoints:
        for _ in range(CASES_PER_ENDPOINT // 5):
            body = json.loads(json.dumps(base))
            target = body["events"][0] if "events" in body else body
            target[rng.choice([*target, "timestamp"])] = rng.choice(HOSTILE)
            # json.dumps escapes a lone surrogate as \ud800, as a JavaScript client would.
            text = _nested(rng) if rng.random() < 0.3 else json.dumps(body)
            resp = org.request(method, path, content=text,
                               headers={"Content-Type": "application/json"})
            assert resp.status_code < 500, (method, path, text[:200], resp.text)
            tried += 1
    print(f"fuzz: {tried} hostile requests, no 5xx")
    assert tried == CASES_PER_ENDPOINT // 5 * len(endpoints)
