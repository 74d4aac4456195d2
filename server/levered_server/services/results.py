"""Results of an optimization (API.md 6.6): counts from the warehouse, posterior from the model.

Counts, time series, measured lift and the SRM check are aggregated inside the warehouse.
Posterior fields come from the current model version's state (null/uniform while untrained).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from levered_server.clock import iso_s, utcnow
from levered_server.engine.holdout import ArmStats, measured_lift, sample_ratio
from levered_server.errors import WarehouseError
from levered_server.services import design
from levered_server.services.attribution import prepare
from levered_server.services.optimizations import current_model, get_row
from levered_server.services.warehouse_calls import translated
from levered_server.store.models import StatusChange

MAX_DAYS = 366
STATS_FIELDS = ("estimated_improvement_percent", "estimated_improvement_interval",
                "best_vs_baseline_percent", "best_vs_baseline_interval", "estimated_progress",
                "best_vs_baseline_weighted_percent", "best_vs_baseline_weighted_interval")


def live_condition(changes: list[StatusChange], now: dt.datetime) -> str:
    # Periods while the optimization was live, as literal timestamps we format ourselves.
    periods, start = [], None
    for c in sorted(changes, key=lambda c: c.changed_at):
        if c.to_status == "live" and start is None:
            start = c.changed_at
        elif c.to_status != "live" and start is not None:
            periods.append((start, c.changed_at))
            start = None
    if start is not None:
        periods.append((start, now + dt.timedelta(days=3650)))
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    parts = [f"(f.first_at >= TIMESTAMP '{a.strftime(fmt)}' AND "
             f"f.first_at < TIMESTAMP '{b.strftime(fmt)}')" for a, b in periods]
    return " OR ".join(parts) or "FALSE"


def results(*, runtime: Any, org_id: str, optimization_id: str) -> dict[str, Any]:
    """Lifetime results of one optimization, in any status."""
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        model = current_model(s, opt)
        changes = list(s.scalars(select(StatusChange).where(
            StatusChange.optimization_id == opt.id)).all())
    driver, opt, metric, sql, params = prepare(runtime, org_id, opt.id)
    boolean = metric.reward_type == "bool"
    window = int(opt.training_data_config["attribution"]["conversion_window_hours"])
    reward = "CASE WHEN att.n > 0 THEN 1 ELSE 0 END" if boolean else "coalesce(att.total, 0)"
    timeout = runtime.settings.query_timeout_seconds
    now = utcnow()
    y = "CASE WHEN u.hits > 0 THEN 1 ELSE 0 END" if boolean else "coalesce(u.first_value, 0)"
    with translated(driver.api_provider, rejected=WarehouseError,
                    rejected_prefix="The results query failed"):
        per_variant = driver.query(sql + f"""
SELECT e.variant_number, count(*) AS exposures,
       sum(CASE WHEN att.total > 0 THEN 1 ELSE 0 END) AS conversions,
       sum({reward}) AS reward_sum
FROM e LEFT JOIN att ON att.exp_row = e.exp_row GROUP BY e.variant_number""",
                                   limit=10_000, params=params, timeout=timeout).rows
        daily = driver.query(sql + f"""
SELECT CAST(e.exposed_at AS DATE) AS day, e.variant_number, e.in_holdout, count(*) AS n,
       sum(CASE WHEN att.total > 0 THEN 1 ELSE 0 END) AS conversions
FROM e LEFT JOIN att ON att.exp_row = e.exp_row
WHERE e.exposed_at >= CAST(now() AS DATE) - INTERVAL '{MAX_DAYS + 1} days'
GROUP BY 1, 2, 3""", limit=1_000_000, params=params, timeout=timeout).rows
        arms = driver.query(sql + f""",
f AS (SELECT anonymous_id, min(exposed_at) AS first_at,
             (array_agg(coalesce(in_holdout, FALSE) ORDER BY exposed_at))[1] AS holdout
      FROM e GROUP BY anonymous_id),
u AS (SELECT f.anonymous_id, f.holdout, count(r.reward_row) AS hits,
             (array_agg(r.value ORDER BY r.ts))[1] AS first_value
      FROM f LEFT JOIN r ON r.anonymous_id = f.anonymous_id AND r.ts >= f.first_at
                         AND r.ts <= f.first_at + INTERVAL '{window} hours'
      WHERE {live_condition(changes, now)}
      GROUP BY f.anonymous_id, f.holdout)
SELECT u.holdout, count(*) AS n, sum({y}) AS total, sum(({y}) * ({y})) AS total_sq
FROM u GROUP BY u.holdout""", limit=10, params=params, timeout=timeout).rows
    return _shape(opt, model, metric, per_variant, daily, arms, now)


def _shape(opt: Any, model: Any, metric: Any, per_variant: list[dict[str, Any]],
           daily: list[dict[str, Any]], arms: list[dict[str, Any]], now: dt.datetime
           ) -> dict[str, Any]:
    factors = opt.training_data_config["design_factors"]
    servable = design.servable_variants(factors, opt.excluded_combinations)
    k, keep = len(servable), 1 - opt.holdout_percentage / 100
    counts = {r["variant_number"]: r for r in per_variant}
    trained = model is not None and model.version > 0
    saved = (model.state or {}) if trained else {}
    posterior = {v["number"]: v for v in saved.get("variants", [])}
    variants = []
    for number, variant in servable:
        c = counts.get(number, {})
        n, conv, total = c.get("exposures", 0), c.get("conversions") or 0, c.get("reward_sum")
        p = posterior.get(number, {})
        variants.append({
            "number": number, "variant": variant, "variant_key": design.variant_key(variant),
            "exposures": n, "conversions": int(conv), "reward_sum": float(total or 0),
            "rate": float(total or 0) / n if n else None,
            "expected_reward_mean": p.get("expected_reward_mean"),
            "expected_reward_lo": p.get("expected_reward_lo"),
            "expected_reward_hi": p.get("expected_reward_hi"),
            "prob_best": p.get("prob_best", 1 / k), "weight": p.get("weight", keep / k),
            "allocation": p.get("allocation", 1 / k),
            "propensity_weighted": p.get("propensity_weighted")})
    by_arm = {bool(r["holdout"]): ArmStats(int(r["n"]), float(r["total"] or 0),
                                           float(r["total_sq"] or 0)) for r in arms}
    holdout = by_arm.get(True, ArmStats(0, 0, 0))
    optimized = by_arm.get(False, ArmStats(0, 0, 0))
    m = measured_lift(holdout, optimized, boolean=metric.reward_type == "bool")
    lift = {"holdout_rate": m.holdout_rate, "holdout_exposures": m.holdout_exposures,
            "optimization_rate": m.optimization_rate,
            "optimization_exposures": m.optimization_exposures, "lift_percent": m.lift_percent,
            "lift_ci": list(m.lift_ci) if m.lift_ci is not None else None, "p_value": m.p_value}
    srm = sample_ratio(holdout.users, optimized.users, opt.holdout_percentage / 100)
    return {
        "optimization_id": opt.id, "status": opt.status,
        "model_id": model.id if trained else None,
        "model_version": model.version if model is not None else 0,
        "trained_at": iso_s(model.trained_at) if trained else None,
        "generated_at": iso_s(now), "reward_type": metric.reward_type,
        "holdout_percentage": opt.holdout_percentage,
        "conversion_window_hours": opt.training_data_config["attribution"][
            "conversion_window_hours"],
        "variants": variants,
        "stats": {**dict.fromkeys(STATS_FIELDS), **saved.get("stats", {})},
        "primary_metric_vs_holdout": {"metric_name": metric.name, **lift},
        "srm": {"p_value": srm.p_value, "ok": srm.ok,
                "expected": {"holdout": srm.expected_holdout, "optimized": srm.expected_optimized},
                "observed": {"holdout": srm.observed_holdout,
                             "optimized": srm.observed_optimized}},
        "time_series": _series(daily, factors),
        "factor_importance": saved.get("factor_importance", []),
        "interaction_importance": saved.get("interaction_importance"),
        "context_importance": saved.get("context_importance", []),
    }


def _series(daily: list[dict[str, Any]], factors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not daily:
        return []
    days: dict[str, dict[str, Any]] = {}
    for r in daily:
        day = days.setdefault(r["day"], {"exposures": 0, "holdout_exposures": 0, "variants": {}})
        day["exposures"] += r["n"]
        if r["in_holdout"]:
            day["holdout_exposures"] += r["n"]
        key = design.variant_key(design.variant_of(factors, r["variant_number"]))
        slot = day["variants"].setdefault(key, {"exposures": 0, "conversions": 0})
        slot["exposures"] += r["n"]
        slot["conversions"] += int(r["conversions"] or 0)
    first, last = dt.date.fromisoformat(min(days)), dt.date.fromisoformat(max(days))
    first = max(first, last - dt.timedelta(days=MAX_DAYS - 1))
    out = []
    d = first
    while d <= last:
        entry = days.get(d.isoformat(), {"exposures": 0, "holdout_exposures": 0, "variants": {}})
        out.append({"date": d.isoformat(), **entry})
        d += dt.timedelta(days=1)
    return out
