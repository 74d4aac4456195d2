"""Guardrails (extension): bandit traffic versus the holdout on metrics it must not harm.

Per guardrail, one warehouse query takes the users of API.md 16.2 (first exposure while live,
arm = the ``in_holdout`` of that exposure) and each user's value of the guardrail metric inside
the conversion window (bool metrics: converted or not; numeric: the sum of values). The lift and
its 95 % interval are the delta method of 16.2; the decision and ``p_value`` are the always-valid
mixture SPRT of :mod:`levered_server.engine.sequential`, so looking at every training run or every
request does not inflate false alarms. With ``auto_stop`` a violation completes the optimization
with the baseline (variant #1, what the holdout sees) as the winner, and records why.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from levered_server.clock import canonical_uuid, iso_s, new_id, utcnow
from levered_server.engine.holdout import MIN_USERS, ArmStats, measured_lift
from levered_server.engine.sequential import Arm, harmed
from levered_server.errors import ApiError, NotFound, WarehouseError
from levered_server.services import attribution, guardrail_specs
from levered_server.services.optimizations import get_row
from levered_server.services.results import live_condition
from levered_server.services.warehouse_calls import driver_for, server_query_limit, translated
from levered_server.store.models import Guardrail, Metric, Optimization, StatusChange

log = logging.getLogger("levered_server.guardrails")
ALPHA = 0.05
TEST = "msprt"
BASELINE = 1  # the holdout's variant: what everyone is served after an automatic stop


def _config(g: Guardrail, metric: Metric | None) -> dict[str, Any]:
    return {"metric_id": g.metric_id, "metric_name": metric.name if metric else None,
            "direction": g.direction, "tolerance": g.tolerance}


def report(*, runtime: Any, org_id: str, optimization_id: str, evaluate: bool = True
           ) -> dict[str, Any]:
    """``GET /api/v2/optimizations/:id/guardrails``: each guardrail and, evaluated, its status.

    Evaluating may stop the optimization (``auto_stop``); without ``evaluate`` only the
    configuration and the recorded stop are returned (no warehouse query).
    """
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        rows = guardrail_specs.of(s, opt.id)
        metrics = {m.id: m for m in s.scalars(select(Metric).where(
            Metric.id.in_([g.metric_id for g in rows]))).all()} if rows else {}
        changes = list(s.scalars(select(StatusChange).where(
            StatusChange.optimization_id == opt.id)).all())
        s.expunge_all()
    now = utcnow()
    items = []
    for g in rows:
        item = {**_config(g, metrics.get(g.metric_id)), "status": None, "holdout": None,
                "optimized": None, "lift_percent": None, "lift_ci": None, "p_value": None,
                "window": None}
        if evaluate:
            item.update(_evaluate(runtime, org_id, opt, g, metrics[g.metric_id], changes, now))
        items.append(item)
    if evaluate and opt.auto_stop and opt.status == "live":
        violated = next((i for i in items if i["status"] == "violated"), None)
        if violated is not None:
            _stop(runtime, org_id, opt.id, violated, now)
            with runtime.store.session(org_id) as s:
                opt = get_row(s, opt.id)
                s.expunge(opt)
    return {"optimization_id": opt.id, "status": opt.status, "auto_stop": opt.auto_stop,
            "stop_reason": opt.stop_reason, "test": TEST, "alpha": ALPHA,
            "generated_at": iso_s(now), "guardrails": items}


def _evaluate(runtime: Any, org_id: str, opt: Optimization, g: Guardrail, metric: Metric,
              changes: list[StatusChange], now: Any) -> dict[str, Any]:
    arms = _arms(runtime, org_id, opt, metric, changes, now)
    holdout = arms.get(True, {"n": 0, "total": 0.0, "total_sq": 0.0, "first": None, "last": None})
    optimized = arms.get(False, {"n": 0, "total": 0.0, "total_sq": 0.0, "first": None,
                                 "last": None})
    boolean = metric.reward_type == "bool"
    m = measured_lift(ArmStats(holdout["n"], holdout["total"], holdout["total_sq"]),
                      ArmStats(optimized["n"], optimized["total"], optimized["total_sq"]),
                      boolean=boolean)
    firsts = [a["first"] for a in (holdout, optimized) if a["first"]]
    window = {"from": min(firsts) if firsts else None, "to": iso_s(now),
              "conversion_window_hours": attribution.window_hours(opt)}
    out: dict[str, Any] = {
        "holdout": {"users": holdout["n"], "mean": m.holdout_rate},
        "optimized": {"users": optimized["n"], "mean": m.optimization_rate},
        "lift_percent": m.lift_percent, "lift_ci": list(m.lift_ci) if m.lift_ci else None,
        "p_value": None, "status": "pending", "window": window}
    if holdout["n"] < MIN_USERS or optimized["n"] < MIN_USERS:
        return out
    violated, p = harmed(Arm(optimized["n"], optimized["total"], optimized["total_sq"]),
                         Arm(holdout["n"], holdout["total"], holdout["total_sq"]),
                         g.direction, g.tolerance, ALPHA)
    out.update(p_value=p, status="violated" if violated else "ok")
    return out


def _arms(runtime: Any, org_id: str, opt: Optimization, metric: Metric,
          changes: list[StatusChange], now: Any) -> dict[bool, dict[str, Any]]:
    """Users, Σy, Σy² and the first exposure time per arm (holdout: True)."""
    driver = driver_for(runtime, org_id)
    if driver.managed:
        runtime.exposures.flush(org_id)  # recent serves become visible (as results do)
    limited = server_query_limit(runtime)
    with translated(driver.api_provider, rejected=WarehouseError,
                    rejected_prefix="The guardrail query failed", limit=limited):
        sources, params = attribution.sources_for(driver, opt, metric, limited.seconds,
                                                  numbered=False)
        y = ("CASE WHEN u.hits > 0 THEN 1 ELSE 0 END" if metric.reward_type == "bool"
             else "coalesce(u.total, 0)")
        end = driver.dialect.add_hours("f.first_at", attribution.window_hours(opt))
        rows = driver.query(f"""WITH {sources},
x AS (SELECT anonymous_id, exposed_at, coalesce(in_holdout, FALSE) AS holdout,
             row_number() OVER (PARTITION BY anonymous_id ORDER BY exposed_at) AS rn FROM e),
f AS (SELECT anonymous_id, exposed_at AS first_at, holdout FROM x WHERE rn = 1),
u AS (SELECT f.anonymous_id, f.holdout, f.first_at, count(r.anonymous_id) AS hits,
             sum(r.value) AS total
      FROM f LEFT JOIN r ON r.anonymous_id = f.anonymous_id AND r.ts >= f.first_at
                         AND r.ts <= {end}
      WHERE {live_condition(changes, now)}
      GROUP BY f.anonymous_id, f.holdout, f.first_at)
SELECT u.holdout, count(*) AS n, sum({y}) AS total, sum(({y}) * ({y})) AS total_sq,
       min(u.first_at) AS first_at
FROM u GROUP BY u.holdout""", limit=10, params=params, timeout=limited.seconds).rows
    return {bool(r["holdout"]): {"n": int(r["n"]), "total": float(r["total"] or 0),
                                 "total_sq": float(r["total_sq"] or 0),
                                 "first": _iso(r["first_at"]), "last": None} for r in rows}


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).replace(" ", "T")
    return text if text.endswith("Z") or "+" in text else text.split(".")[0] + "Z"


def _stop(runtime: Any, org_id: str, optimization_id: str, violated: dict[str, Any],
          now: Any) -> None:
    """Complete the optimization with the baseline as winner and record the violation."""
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        if opt.status != "live":  # stopped meanwhile (another request, a person)
            return
        opt.stop_reason = {
            "reason": "guardrail_violated", "metric_id": violated["metric_id"],
            "metric_name": violated["metric_name"], "direction": violated["direction"],
            "tolerance": violated["tolerance"], "lift_percent": violated["lift_percent"],
            "p_value": violated["p_value"], "test": TEST, "alpha": ALPHA,
            "action": "completed; every user is served the baseline (variant #1)",
            "stopped_at": iso_s(now)}
        s.add(StatusChange(id=new_id(), optimization_id=opt.id,
                           from_status=opt.status, to_status="completed", changed_at=now))
        opt.status, opt.winner_number, opt.updated_at = "completed", BASELINE, now
    log.warning("optimization %s stopped: guardrail %s violated (p=%.4g)", optimization_id,
                violated["metric_id"], violated["p_value"])
    runtime.serve_cache.invalidate(optimization_id)


def after_training(runtime: Any, org_id: str, optimization_id: str) -> None:
    """Check the guardrails of a live auto-stop optimization after a training run.

    A failure here never fails the training: the next run or request looks again.
    """
    with runtime.store.session(org_id) as s:
        opt = s.get(Optimization, optimization_id)
        wanted = (opt is not None and opt.auto_stop and opt.status == "live"
                  and bool(guardrail_specs.of(s, optimization_id)))
    if not wanted:
        return
    try:
        report(runtime=runtime, org_id=org_id, optimization_id=optimization_id)
    except ApiError as exc:
        log.warning("guardrails of %s not checked: %s", optimization_id, exc)


def usage(*, runtime: Any, org_id: str, metric_id: str) -> dict[str, Any]:
    """``GET /api/v2/warehouse/metrics/:id/usage``: optimizations that use a metric, and how."""
    mid = canonical_uuid(metric_id)
    with runtime.store.session(org_id) as s:
        metric = s.scalars(select(Metric).where(Metric.id == mid, Metric.deleted_at.is_(None))
                           ).first() if mid else None
        if metric is None:
            raise NotFound("Metric not found.")
        reward = s.scalars(select(Optimization).where(Optimization.reward_metric_id == metric.id)
                           .order_by(Optimization.created_at)).all()
        guarded = s.execute(select(Guardrail, Optimization).join(
            Optimization, Optimization.id == Guardrail.optimization_id).where(
            Guardrail.metric_id == metric.id).order_by(Optimization.created_at)).all()
        return {"metric_id": metric.id, "metric_name": metric.name,
                "reward_of": [{"id": o.id, "name": o.name, "status": o.status} for o in reward],
                "guardrail_of": [{"id": o.id, "name": o.name, "status": o.status,
                                  "direction": g.direction, "tolerance": g.tolerance}
                                 for g, o in guarded]}
