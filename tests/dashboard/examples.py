"""The example bodies of docs/api.md (6.2 list item, 6.6 results, 8.4 model state)."""

from __future__ import annotations

import copy
import json
from typing import Any

OPT_ID = "699ede80-c94b-4f98-9c79-dd3e07748703"
MODEL_ID = "4754cae0-9a5d-4691-91af-6d15ccc1f82e"
META = {"request_id": "req_9c79dd3e07748703699ede80", "organization_id": "3f1c2a9e-7b4d-4c1e-9a8f-2d6b5e0c1a47"}
LEVELS = [("Ship faster", "Get started"), ("Ship faster", "Try it free"), ("Build better", "Get started"),
          ("Build better", "Try it free"), ("Scale up", "Get started")]
#: number → (exposures, conversions, rate, mean, lo, hi, prob_best, weight, allocation)
NUMBERS = {1: (720, 70, 0.0972, 0.100, 0.081, 0.121, 0.01, 0.009, 0.012),
           2: (410, 42, 0.1024, 0.104, 0.079, 0.131, 0.05, 0.045, 0.048),
           3: (1650, 196, 0.1188, 0.118, 0.103, 0.134, 0.62, 0.558, 0.605),
           4: (1010, 113, 0.1119, 0.112, 0.094, 0.131, 0.30, 0.27, 0.315),
           5: (310, 30, 0.0968, 0.097, 0.068, 0.129, 0.02, 0.018, 0.020)}
IMPORTANCE = [{"factor": "headline", "mean": 0.0172, "q1": 0.0128, "q3": 0.0214, "kind": "design"},
              {"factor": "country", "mean": 0.0081, "q1": 0.0052, "q3": 0.0109, "kind": "context"},
              {"factor": "cta_text", "mean": 0.0046, "q1": 0.0019, "q3": 0.0070, "kind": "design"},
              {"factor": "device_type", "mean": 0.0030, "q1": 0.0012, "q3": 0.0046, "kind": "context"}]


def _key(headline: str, cta: str) -> str:
    return json.dumps({"cta_text": cta, "headline": headline}, separators=(",", ":"))


def _variants(with_counts: bool) -> list[dict[str, Any]]:
    rows = []
    for number, (headline, cta) in enumerate(LEVELS, start=1):
        exp, conv, rate, mean, lo, hi, pbest, weight, alloc = NUMBERS[number]
        row = {"number": number, "variant": {"headline": headline, "cta_text": cta}, "variant_key": _key(headline, cta),
               "exposures": exp, "expected_reward_mean": mean, "expected_reward_lo": lo, "expected_reward_hi": hi,
               "prob_best": pbest, "weight": weight, "allocation": alloc}
        if with_counts:
            row.update(conversions=conv, reward_sum=float(conv), rate=rate)
        rows.append(row)
    return rows


OPTIMIZATION = {
    "id": OPT_ID, "name": "Landing Page Hero", "status": "live", "model_type": "cmab", "model_id": MODEL_ID,
    "model_status": "trained", "holdout_percentage": 10, "reward_metric_id": "8a3b12c4-5678-4def-abcd-1234567890ab",
    "variants_count": 5, "winner": None, "created_at": "2026-11-19T09:00:00Z", "updated_at": "2026-11-21T12:00:05Z",
    "summary": {"variants_count": 5, "lift": 18.0, "confidence": 0.62, "exposures": 4100}}

RESULTS = {
    "optimization_id": OPT_ID, "status": "live", "model_id": MODEL_ID, "model_version": 12,
    "trained_at": "2026-11-21T12:00:00Z", "generated_at": "2026-11-21T12:03:10Z", "reward_type": "bool",
    "holdout_percentage": 10, "conversion_window_hours": 24, "variants": _variants(True),
    "stats": {"estimated_improvement_percent": 14.8, "estimated_improvement_interval": [3.1, 27.4],
              "best_vs_baseline_percent": 18.0, "best_vs_baseline_interval": [4.2, 32.9], "estimated_progress": 0.822},
    "primary_metric_vs_holdout": {"metric_name": "Sign-ups (7d)", "holdout_rate": 0.1, "holdout_exposures": 290,
                                  "optimization_rate": 0.121771, "optimization_exposures": 2710,
                                  "lift_percent": 21.77, "lift_ci": [-22.04, 65.58], "p_value": 0.3301},
    "srm": {"p_value": 0.5428, "expected": {"holdout": 300.0, "optimized": 2700.0},
            "observed": {"holdout": 290, "optimized": 2710}, "ok": True},
    "time_series": [
        {"date": "2026-11-20", "exposures": 1900, "holdout_exposures": 190, "variants": {
            _key("Ship faster", "Get started"): {"exposures": 400, "conversions": 38},
            _key("Ship faster", "Try it free"): {"exposures": 250, "conversions": 25},
            _key("Build better", "Get started"): {"exposures": 600, "conversions": 70},
            _key("Build better", "Try it free"): {"exposures": 450, "conversions": 50},
            _key("Scale up", "Get started"): {"exposures": 200, "conversions": 19}}},
        {"date": "2026-11-21", "exposures": 2200, "holdout_exposures": 190, "variants": {
            _key("Ship faster", "Get started"): {"exposures": 320, "conversions": 32},
            _key("Ship faster", "Try it free"): {"exposures": 160, "conversions": 17},
            _key("Build better", "Get started"): {"exposures": 1050, "conversions": 126},
            _key("Build better", "Try it free"): {"exposures": 560, "conversions": 63},
            _key("Scale up", "Get started"): {"exposures": 110, "conversions": 11}}}],
    "factor_importance": IMPORTANCE,
    "interaction_importance": {"mean": 0.0021, "q1": 0.0011, "q3": 0.0029},
    "context_importance": [], "meta": META}

STATE = {
    "model_id": MODEL_ID, "optimization_id": OPT_ID, "model_type": "cmab", "status": "trained", "version": 12,
    "trained_at": "2026-11-21T12:00:00Z", "observations": 4100, "holdout_percentage": 10, "bias": {},
    "error": None, "last_run": {"started_at": "2026-11-21T11:59:58Z", "finished_at": "2026-11-21T12:00:00Z",
                                "outcome": "succeeded", "trigger": "schedule", "observations": 4100,
                                "rows_scanned": 4612, "error": None},
    "variants": _variants(False), "factor_importance": IMPORTANCE, "meta": META}


def bodies() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Fresh copies of (optimization, results, state)."""
    return copy.deepcopy(OPTIMIZATION), copy.deepcopy(RESULTS), copy.deepcopy(STATE)
