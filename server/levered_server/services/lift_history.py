"""Lift history (extension): the model's daily lift estimates, kept by every training run.

Each published version writes the day's row (UTC date of the run; a later run the same day
replaces it), so the history is one point per day however often the model trains. The numbers
are those of the version's results ``stats`` (API.md 16.1), read back from the stored state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from levered_server.clock import iso_s, new_id, utcnow
from levered_server.services.optimizations import get_row
from levered_server.store.models import LiftEstimate, Model

MAX_DAYS = 366


def record(runtime: Any, org_id: str, model_id: str) -> None:
    """Store the current version's lift estimates as today's point of its optimization."""
    with runtime.store.session(org_id) as s:
        model = s.get(Model, model_id)
        if model is None or model.version == 0 or model.trained_at is None:
            return
        # Only these members: the whole state is ~1 MB of JSON.
        stats = s.scalar(select(Model.state["stats"]).where(Model.id == model_id)) or {}
        variants = s.scalar(select(Model.state["variants"]).where(Model.id == model_id)) or []
        best = max(variants, key=lambda v: (v.get("prob_best") or 0, -v["number"]), default=None)
        estimate = {
            "policy_lift_percent": stats.get("estimated_improvement_percent"),
            "policy_lift_interval": stats.get("estimated_improvement_interval"),
            "best_number": best["number"] if best else None,
            "best_lift_percent": stats.get("best_vs_baseline_percent"),
            "best_lift_interval": stats.get("best_vs_baseline_interval"),
            "best_prob": best.get("prob_best") if best else None,
            "estimated_progress": stats.get("estimated_progress"),
        }
        observations = int(s.scalar(select(Model.state["observations"])
                                    .where(Model.id == model_id)) or 0)
        day = model.trained_at.date().isoformat()
        row = s.scalars(select(LiftEstimate).where(LiftEstimate.optimization_id == model.optimization_id,
                                                   LiftEstimate.day == day)).first()
        if row is None:
            row = LiftEstimate(id=new_id(), organization_id=org_id,
                               optimization_id=model.optimization_id, day=day)
            s.add(row)
        row.model_id, row.model_version = model.id, model.version
        row.trained_at, row.observations = model.trained_at, observations
        row.estimate = estimate


def points(session: Any, optimization_id: str, days: int = MAX_DAYS) -> list[dict[str, Any]]:
    """The stored points of an optimization, oldest first (at most ``days``)."""
    rows = session.scalars(select(LiftEstimate).where(LiftEstimate.optimization_id == optimization_id)
                           .order_by(LiftEstimate.day.desc()).limit(days)).all()
    return [{"date": r.day, "model_id": r.model_id, "model_version": r.model_version,
             "trained_at": iso_s(r.trained_at), "observations": r.observations, **r.estimate}
            for r in reversed(rows)]


def history(*, runtime: Any, org_id: str, optimization_id: str, days: int = MAX_DAYS
            ) -> dict[str, Any]:
    """``GET /api/v2/optimizations/:id/lift-history``."""
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        return {"optimization_id": opt.id, "generated_at": iso_s(utcnow()),
                "points": points(s, opt.id, days)}
