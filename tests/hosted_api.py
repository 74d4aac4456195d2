"""A test server that answers with exactly what the hosted Levered API documents, and nothing more.

The hosted documentation guarantees fewer fields than our server returns: list items without
``model_type`` or ``variants_count``, the nested ``{optimization, model_config}`` body of
``GET /api/v2/optimizations/:id``, serve answers with only the variant, models without
``optimization_id``, request and organization ids like ``req_abc123`` and ``org_xyz``. The bodies
below hold those fields and no others (values from the documentation's own examples).

Endpoints the hosted documentation does not describe (results, observations, model state,
warehouse discovery, metric preview and delete, updates, ``/me``, API keys) are served in one of
two ways: ``absent`` answers 404 as a server without them would; ``bare`` answers 200 with
nothing but ``meta``, the least such an endpoint could send.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from levered_core.testing import NO_SITE_CONFIG, CliRun
from tests.stub_api import StubAPI

OID = "699ede80-c94b-4f98-9c79-dd3e07748703"
OID2 = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
MID = "4754cae0-9a5d-4691-91af-6d15ccc1f82e"
METRIC = "8a3b12c4-5678-4def-abcd-1234567890ab"
KEY = "3f1c2a9e-7b4d-4c1e-9a8f-2d6b5e0c1a47"
META = {"request_id": "req_abc123", "organization_id": "org_xyz"}
FACTORS = [{"name": "headline", "levels": ["Ship faster", "Build better", "Scale up", "Go live today", "Start free"]},
           {"name": "cta_text", "levels": ["Get started", "Try it free"]}]
SUMMARY = {"variants_count": 10, "lift": 8.2, "confidence": 0.91, "exposures": 4100}

OPTIMIZATIONS = {"optimizations": [
    {"id": OID, "name": "Landing Page Hero", "status": "live", "model_status": "trained", "model_id": MID,
     "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-21T12:00:00Z", "summary": SUMMARY},
    {"id": OID2, "name": "Pricing page", "status": "completed", "model_status": "untrained", "model_id": None,
     "created_at": "2026-11-18T09:00:00Z", "updated_at": "2026-11-19T09:00:00Z", "summary": None},
], "meta": META}

NESTED = {"optimization": {
    "id": OID, "name": "Landing Page Hero", "status": "live", "model_id": MID, "model_status": "trained",
    "holdout_percentage": 10, "excluded_combinations": [], "reward_metric_id": METRIC, "reward_conversion_window": 24,
    "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-21T12:00:00Z", "summary": SUMMARY,
}, "model_config": {
    "model_type": "cmab", "design_factors": FACTORS, "context_factors": [{"name": "country"}, {"name": "device_type"}],
    "reward": {"name": "signup", "type": "bool"}, "attribution": {"type": "last_touch"},
}, "meta": META}

FLAT = {"id": OID, "name": "Landing Page Hero", "status": "live", "model_type": "cmab", "model_id": MID,
        "model_status": "trained", "reward_metric_id": METRIC, "holdout_percentage": 10,
        "training_data_config": {"design_factors": FACTORS}, "excluded_combinations": [],
        "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-21T12:00:00Z", "summary": None, "meta": META}

SERVED = {"optimization_id": OID, "anonymous_id": "user-42", "variant": {"headline": "Build better",
                                                                        "cta_text": "Get started"}}

MODELS = {"models": [{"id": MID, "model_type": "cmab", "status": "trained",
                      "training_data_config": {"design_factors": FACTORS},
                      "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-21T12:00:00Z"}], "meta": META}
TRAINED = {"model_id": MID, "status": "trained", "in_sample_metrics": {
    "historic_reward": 0.24, "expected_reward": {"mean": 0.27, "ci_lower": 0.25, "ci_upper": 0.29}}, "meta": META}
DELETED = {"meta": META}  # "soft delete": the documentation promises a 2xx, no fields

METRIC_SQL = "SELECT anonymous_id, signed_up_at FROM analytics.sign_ups WHERE signed_up_at >= CURRENT_DATE - 7"
MAPPING = {"anonymous_id": "anonymous_id", "timestamp": "signed_up_at"}
METRIC_CREATED = {"id": METRIC, "name": "Sign-ups (7d)", "sql": METRIC_SQL, "column_mapping": MAPPING,
                  "created_at": "2026-11-20T09:00:00Z", "updated_at": None, "meta": META}
METRICS = {"metrics": [{"id": METRIC, "name": "Sign-ups (7d)", "sql": METRIC_SQL, "column_mapping": MAPPING}],
           "meta": META}

NOT_FOUND = {"error": {"code": "not_found", "message": "Not found"}}  # no request_id, no meta: both may be absent
BARE = {"meta": META}

#: (method, path) → body of every documented endpoint the CLI calls.
DOCUMENTED: dict[tuple[str, str], Any] = {
    ("GET", "/api/v2/optimizations"): OPTIMIZATIONS,
    ("GET", f"/api/v2/optimizations/{OID}"): NESTED,
    ("POST", "/api/v2/optimizations"): NESTED,
    ("POST", f"/api/v2/optimizations/{OID}/serve"): SERVED,
    ("GET", "/api/v2/models"): MODELS,
    ("POST", f"/api/v2/models/{MID}/train"): TRAINED,
    ("DELETE", f"/api/v2/models/{MID}"): DELETED,
    ("GET", "/api/v2/warehouse/metrics"): METRICS,
    ("POST", "/api/v2/warehouse/metrics"): METRIC_CREATED,
}
CREATED_STATUS = {("POST", "/api/v2/optimizations"): 201, ("POST", "/api/v2/warehouse/metrics"): 201}

#: Endpoints the CLI calls that the hosted documentation does not describe.
UNDOCUMENTED = [
    ("PATCH", f"/api/v2/optimizations/{OID}"), ("GET", f"/api/v2/optimizations/{OID}/results"),
    ("GET", f"/api/v2/optimizations/{OID}/observations"), ("POST", f"/api/v2/optimizations/{OID}/model"),
    ("GET", f"/api/v2/optimizations/{OID}/progress"), ("GET", f"/api/v2/optimizations/{OID}/lift-history"),
    ("GET", f"/api/v2/optimizations/{OID}/guardrails"), ("GET", f"/api/v2/optimizations/{OID}/report-data"),
    ("GET", f"/api/v2/warehouse/metrics/{METRIC}/usage"),
    ("GET", f"/api/v2/models/{MID}"), ("GET", f"/api/v2/models/{MID}/state"),
    ("GET", f"/api/v2/warehouse/metrics/{METRIC}"), ("GET", f"/api/v2/warehouse/metrics/{METRIC}/preview"),
    ("DELETE", f"/api/v2/warehouse/metrics/{METRIC}"), ("GET", "/api/v2/warehouse/status"),
    ("GET", "/api/v2/warehouse/tables"), ("GET", "/api/v2/warehouse/tables/events/columns"),
    ("GET", "/api/v2/warehouse/tables/events/preview"), ("POST", "/api/v2/warehouse/query"),
    ("GET", "/api/v2/me"), ("GET", "/api/v2/api-keys"), ("POST", "/api/v2/api-keys"),
    ("DELETE", f"/api/v2/api-keys/{KEY}"),
]


@contextlib.contextmanager
def hosted_api(undocumented: str = "absent") -> Iterator[StubAPI]:
    """Serve the documented shapes; ``undocumented`` is ``absent`` (404) or ``bare`` (only ``meta``)."""
    with StubAPI() as api:
        for (method, path), body in DOCUMENTED.items():
            api.add(method, path, CREATED_STATUS.get((method, path), 200), body)
        for method, path in UNDOCUMENTED:
            if undocumented == "absent":
                api.add(method, path, 404, NOT_FOUND)
            else:
                api.add(method, path, 200, BARE)
        yield api


#: Runs each command line through ``levered_core.main.main``, the console script's entry point, in
#: one process: a hundred command lines take a second instead of a minute of interpreter start-ups.
RUNNER = r"""
import contextlib, io, json, logging, sys
from levered_core.main import main

results = []
for argv in json.load(sys.stdin):
    logging.getLogger().handlers.clear()  # cliff adds a console handler per run, bound to that run's stderr
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    results.append([argv, code, out.getvalue(), err.getvalue()])
sys.__stdout__.write(json.dumps(results))
"""


def run_many(commands: Sequence[Sequence[str]], env: dict[str, str]) -> list[CliRun]:
    """Run several ``levered`` command lines in one fresh interpreter; stdin is empty (no terminal)."""
    full_env = {key: value for key, value in os.environ.items()
                if key not in ("LEVERED_API_KEY", "LEVERED_API_URL", "LEVERED_ENV")}
    full_env.update({"LEVERED_SITE_CONFIG": NO_SITE_CONFIG, **env})
    done = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps([list(c) for c in commands]),
                          capture_output=True, text=True, env=full_env, timeout=300, check=True)
    return [CliRun(tuple(argv), code, out, err) for argv, code, out, err in json.loads(done.stdout)]
