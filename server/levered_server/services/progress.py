"""Progress of an optimization (extension): how long it ran, who saw what, how close to a decision.

Exposures and distinct users per variant are counted in the warehouse (one small query over the
optimization's exposures, no rewards). The current best and its traffic share come from the
current model version. ``estimated_progress`` measures how far the model is from calling a
winner by Levered's documented rule (the highest ``weight``, clear from 0.7): with w_b the best
variant's weight, w₀ = (1 − holdout share) / K its value before any data (K servable variants),

    estimated_progress = clip((w_b − w₀) / (0.7 − w₀), 0, 1)

0 while the model cannot tell the variants apart, 1 once the leader is a clear winner. (The
results' ``stats.estimated_progress``, API.md 16.1, is a different number: the share of the
best variant's estimated gain the policy already captures; it is here as ``policy_progress``.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from levered_server.clock import iso_s, utcnow
from levered_server.errors import WarehouseError
from levered_server.services import design
from levered_server.services.exposure_source import exposures_cte
from levered_server.services.optimizations import current_model, get_row
from levered_server.services.warehouse_calls import driver_for, server_query_limit, translated
from levered_server.store.models import Model, Optimization, StatusChange

#: The weight from which Levered calls the leader a clear winner (the CLI's results say so too).
WINNER_WEIGHT = 0.7


def live_time(changes: list[StatusChange], now: dt.datetime) -> tuple[dt.datetime | None, float]:
    """(first time live, days spent live in total) from the status changes."""
    first = start = None
    seconds = 0.0
    for c in sorted(changes, key=lambda c: c.changed_at):
        if c.to_status == "live" and start is None:
            start = c.changed_at
            first = first or start
        elif c.to_status != "live" and start is not None:
            seconds += (c.changed_at - start).total_seconds()
            start = None
    if start is not None:
        seconds += (now - start).total_seconds()
    return first, seconds / 86_400


def counts(runtime: Any, org_id: str, opt: Optimization) -> list[dict[str, Any]]:
    """Rows (variant_number, in_holdout, exposures, users) from the warehouse."""
    driver = driver_for(runtime, org_id)
    if driver.managed:
        runtime.exposures.flush(org_id)  # recent serves become visible
    limited = server_query_limit(runtime)
    with translated(driver.api_provider, rejected=WarehouseError,
                    rejected_prefix="The progress query failed", limit=limited):
        e = exposures_cte(driver, opt, limited.seconds, numbered=False)
        return driver.query(f"""WITH e AS ({e}
)
SELECT variant_number, coalesce(in_holdout, FALSE) AS in_holdout, count(*) AS exposures,
       count(DISTINCT anonymous_id) AS users
FROM e GROUP BY variant_number, coalesce(in_holdout, FALSE)""", limit=100_000,
                            params={"optimization_id": opt.id}, timeout=limited.seconds).rows


def progress(*, runtime: Any, org_id: str, optimization_id: str) -> dict[str, Any]:
    """``GET /api/v2/optimizations/:id/progress``."""
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        model = current_model(s, opt)
        changes = list(s.scalars(select(StatusChange).where(
            StatusChange.optimization_id == opt.id)).all())
        posterior, stats = _posterior(s, model)
        s.expunge_all()
    now = utcnow()
    rows = counts(runtime, org_id, opt)
    first, days = live_time(changes, now)
    factors = opt.training_data_config["design_factors"]
    optimized = [r for r in rows if not r["in_holdout"]]
    held = [r for r in rows if r["in_holdout"]]
    total_optimized = sum(int(r["exposures"]) for r in optimized)
    by_number: dict[int, dict[str, int]] = {}
    for r in optimized:
        slot = by_number.setdefault(int(r["variant_number"]), {"exposures": 0, "users": 0})
        slot["exposures"] += int(r["exposures"])
        slot["users"] += int(r["users"])
    best = max(posterior.values(), key=lambda v: (v.get("prob_best") or 0, -v["number"]),
               default=None)
    variants = []
    for number, variant in design.servable_variants(factors, opt.excluded_combinations):
        c = by_number.get(number, {"exposures": 0, "users": 0})
        p = posterior.get(number, {})
        variants.append({"number": number, "variant_key": design.variant_key(variant),
                         "exposures": c["exposures"], "users": c["users"],
                         "traffic_share": c["exposures"] / total_optimized if total_optimized else None,
                         "prob_best": p.get("prob_best"), "allocation": p.get("allocation")})
    best_number = best["number"] if best else None
    share = by_number.get(best_number or 0, {"exposures": 0})["exposures"]
    return {
        "optimization_id": opt.id, "status": opt.status, "generated_at": iso_s(now),
        "started_at": iso_s(first), "days_running": round(days, 2),
        "model_version": model.version if model is not None else 0,
        "trained_at": iso_s(model.trained_at) if model is not None else None,
        "exposures": sum(int(r["exposures"]) for r in rows),
        "users": sum(int(r["users"]) for r in rows),
        "holdout": {"exposures": sum(int(r["exposures"]) for r in held),
                    "users": sum(int(r["users"]) for r in held)},
        "variants": variants,
        "current_best": None if best is None else {
            "number": best["number"], "variant_key": design.variant_key(
                design.variant_of(factors, best["number"])), "prob_best": best.get("prob_best"),
            "allocation": best.get("allocation")},
        "best_traffic_share": share / total_optimized if best and total_optimized else None,
        "estimated_progress": decision_progress(best, len(variants), opt.holdout_percentage),
        "policy_progress": stats.get("estimated_progress"),
    }


def decision_progress(best: dict[str, Any] | None, k: int, holdout_percentage: int) -> float | None:
    """clip((w_b − w₀) / (0.7 − w₀), 0, 1); None before the first training."""
    if best is None or best.get("weight") is None or k < 1:
        return None
    start = (1 - holdout_percentage / 100) / k
    if start >= WINNER_WEIGHT:  # so few variants that the rule is met from the start
        return 1.0
    return min(1.0, max(0.0, (float(best["weight"]) - start) / (WINNER_WEIGHT - start)))


def _posterior(s: Any, model: Model | None) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """The current version's variants (by number) and stats, read without the whole state."""
    if model is None or model.version == 0:
        return {}, {}
    variants = s.scalar(select(Model.state["variants"]).where(Model.id == model.id)) or []
    stats = s.scalar(select(Model.state["stats"]).where(Model.id == model.id)) or {}
    return {int(v["number"]): v for v in variants}, stats
