"""Lift history (extension): the model's daily lift estimates, kept by every training run.

Each published version writes the day's row (UTC date of the run; a later run the same day
replaces it), so the history is one point per day however often the model trains. The numbers
are those of the version's results ``stats`` (API.md 16.1), read back from the stored state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from levered_server.clock import iso_s, new_id, utcnow
from levered_server.services.optimizations import get_row
from levered_server.store.models import LiftEstimate, Model

MAX_DAYS = 366


def record(runtime: Any, org_id: str, model_id: str) -> None:
    """Store the current version's lift estimates as today's point of its optimization."""
    with runtime.store.session(org_id) as s:  # reads only
        model = s.get(Model, model_id)
        if model is None or model.version == 0 or model.trained_at is None:
            return
        # Only these members: the whole state is ~1 MB of JSON.
        stats = s.scalar(select(Model.state["stats"]).where(Model.id == model_id)) or {}
        variants = s.scalar(select(Model.state["variants"]).where(Model.id == model_id)) or []
        observations = int(s.scalar(select(Model.state["observations"])
                                    .where(Model.id == model_id)) or 0)
        optimization_id, version, trained_at = model.optimization_id, model.version, model.trained_at
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
    point = {"model_id": model_id, "model_version": version, "trained_at": trained_at,
             "observations": observations, "estimate": estimate}
    insert = (pg_insert if runtime.store.engine.dialect.name == "postgresql" else sqlite_insert)
    # One upsert statement rather than a session's flush: training runs beside serving, and
    # serve commits wait for SQLite's write lock (`Store.write_at_once`).
    statement = insert(LiftEstimate).values(
        id=new_id(), organization_id=org_id, optimization_id=optimization_id,
        day=trained_at.date().isoformat(), **point)
    runtime.store.write_at_once(statement.on_conflict_do_update(
        index_elements=[LiftEstimate.optimization_id, LiftEstimate.day], set_=point))


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
