"""Lift history (extension): the model's daily lift estimates, kept by every training run.

Each published version writes the day's row (UTC date of the run; a later run the same day
replaces it), so the history is one point per day however often the model trains. The numbers
are those of the version's results ``stats`` (API.md 16.1), taken from its state by the fit
worker (`lift_estimate.py`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from levered_server.clock import iso_s, new_id, utcnow
from levered_server.services.optimizations import get_row
from levered_server.store.models import LiftEstimate

MAX_DAYS = 366


def record(runtime: Any, org_id: str, optimization_id: str, model_id: str, version: int,
           trained_at: dt.datetime, observations: int, estimate: dict[str, Any]) -> None:
    """Store a published version's lift estimates (`lift_estimate.py`, worked out in the
    fit worker) as the day's point of its optimization."""
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
