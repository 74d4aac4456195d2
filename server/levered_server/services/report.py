"""Report data (extension): one JSON pack of an optimization for analysis elsewhere.

Design, daily exposures and attributed rewards per variant and for the holdout (last touch,
API.md 2.5, as results count them), the current model state, the guardrails (evaluated) and the
lift history. Every field is described in docs/report-data.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from levered_server.clock import iso_s, utcnow
from levered_server.errors import WarehouseError
from levered_server.services import design, guardrails, lift_history
from levered_server.services.attribution import prepare
from levered_server.services.optimizations import current_model, get_row, public
from levered_server.services.warehouse_calls import server_query_limit, translated
from levered_server.store.models import Metric, Model

FORMAT = "levered-report-data/1"
MAX_DAYS = 366


def report_data(*, runtime: Any, org_id: str, optimization_id: str) -> dict[str, Any]:
    """``GET /api/v2/optimizations/:id/report-data``."""
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        model = current_model(s, opt)
        optimization = public(opt, model)
        metric = s.get(Metric, opt.reward_metric_id)
        assert metric is not None
        reward_metric = {"id": metric.id, "name": metric.name, "reward_type": metric.reward_type}
        trained = model is not None and model.version > 0
        variants_state = (s.scalar(select(Model.state["variants"]).where(Model.id == model.id))
                          if trained and model is not None else None) or []
        stats = (s.scalar(select(Model.state["stats"]).where(Model.id == model.id))
                 if trained and model is not None else None) or {}
        history = lift_history.points(s, opt.id)
    daily = _daily(runtime, org_id, opt.id, metric.reward_type == "bool")
    checks = guardrails.report(runtime=runtime, org_id=org_id, optimization_id=opt.id)
    factors = opt.training_data_config["design_factors"]
    return {
        "format": FORMAT, "generated_at": iso_s(utcnow()),
        "optimization": {k: optimization[k] for k in (
            "id", "name", "model_type", "holdout_percentage", "training_data_config",
            "excluded_combinations", "variants_count", "created_at")},
        "reward_metric": reward_metric,
        "variants": [{"number": n, "variant": v, "variant_key": design.variant_key(v)}
                     for n, v in design.servable_variants(factors, opt.excluded_combinations)],
        "daily": daily,
        "state": {"status": checks["status"], "winner": optimization["winner"],
                  "model_id": optimization["model_id"],
                  "model_status": optimization["model_status"],
                  "model_version": model.version if model is not None else 0,
                  "trained_at": iso_s(model.trained_at) if trained and model else None,
                  "stats": stats or None,
                  "variants": [{k: v.get(k) for k in (
                      "number", "exposures", "expected_reward_mean", "expected_reward_lo",
                      "expected_reward_hi", "prob_best", "allocation")} for v in variants_state]},
        "guardrails": {k: checks[k] for k in ("auto_stop", "stop_reason", "test", "alpha",
                                              "guardrails")},
        "lift_history": history,
    }


def _daily(runtime: Any, org_id: str, optimization_id: str, boolean: bool
           ) -> list[dict[str, Any]]:
    """Per UTC day, variant and arm: exposures, conversions and the attributed reward sum."""
    driver, _opt, _metric, sql, params = prepare(runtime, org_id, optimization_id)
    reward = "CASE WHEN att.n > 0 THEN 1 ELSE 0 END" if boolean else "coalesce(att.total, 0)"
    limited = server_query_limit(runtime)
    with translated(driver.api_provider, rejected=WarehouseError,
                    rejected_prefix="The report query failed", limit=limited):
        rows = driver.query(sql + f"""
SELECT CAST(e.exposed_at AS DATE) AS day, e.variant_number,
       coalesce(e.in_holdout, FALSE) AS in_holdout, count(*) AS exposures,
       sum(CASE WHEN att.total > 0 THEN 1 ELSE 0 END) AS conversions, sum({reward}) AS reward_sum
FROM e LEFT JOIN att ON att.exp_row = e.exp_row
GROUP BY 1, 2, 3""", limit=1_000_000, params=params, timeout=limited.seconds).rows
    out = [{"date": str(r["day"])[:10], "arm": "holdout" if r["in_holdout"] else "optimized",
            "variant_number": int(r["variant_number"]), "exposures": int(r["exposures"]),
            "conversions": int(r["conversions"] or 0), "reward_sum": float(r["reward_sum"] or 0)}
           for r in rows]
    out.sort(key=lambda r: (r["date"], r["arm"] == "holdout", r["variant_number"]))
    return out[-MAX_DAYS * 1000:]
