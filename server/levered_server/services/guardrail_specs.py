"""Guardrails as configured (extension): check the metrics named and store them.

The checks run in the organization's session, so a metric of another organization is simply
not found (the same ``not_found`` as an unknown ID: nothing about it leaks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from levered_server.clock import canonical_uuid, new_id, utcnow
from levered_server.errors import FieldErrors
from levered_server.schemas.optimizations import GuardrailIn
from levered_server.store.models import Guardrail, Metric, Optimization


def check(session: Session, specs: Sequence[GuardrailIn], *, reward_metric_id: str | None,
          holdout_percentage: int, errors: FieldErrors) -> list[dict[str, Any]]:
    """Return the guardrails normalized (canonical metric IDs), recording every problem."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    if specs and holdout_percentage == 0:
        errors.add("guardrails", "needs_holdout",
                   "guardrails compare the bandit's traffic with the holdout: "
                   "holdout_percentage must be above 0")
    for i, spec in enumerate(specs):
        field = f"guardrails[{i}].metric_id"
        mid = canonical_uuid(spec.metric_id)
        if mid is None:
            errors.add(field, "format", "must be a UUID")
            continue
        if mid in seen:
            errors.add(field, "duplicate", "this metric is already a guardrail")
            continue
        seen.add(mid)
        if mid == reward_metric_id:
            errors.add(field, "is_reward_metric",
                       "the reward metric cannot be its own guardrail")
            continue
        found = session.scalars(select(Metric.id).where(Metric.id == mid,
                                                        Metric.deleted_at.is_(None))).first()
        if found is None:
            errors.add(field, "not_found", "no such metric")
            continue
        out.append({"metric_id": mid, "direction": spec.direction,
                    "tolerance": float(spec.tolerance)})
    return out


def replace(session: Session, opt: Optimization, guardrails: list[dict[str, Any]]) -> None:
    """Make ``guardrails`` the optimization's whole list, in order."""
    for row in session.scalars(select(Guardrail).where(Guardrail.optimization_id == opt.id)).all():
        session.delete(row)
    session.flush()
    now = utcnow()
    session.add_all([Guardrail(id=new_id(), organization_id=opt.organization_id,
                               optimization_id=opt.id, metric_id=g["metric_id"],
                               direction=g["direction"], tolerance=g["tolerance"], position=i,
                               created_at=now) for i, g in enumerate(guardrails)])


def of(session: Session, optimization_id: str) -> list[Guardrail]:
    """An optimization's guardrails, in the order given."""
    return list(session.scalars(select(Guardrail).where(Guardrail.optimization_id == optimization_id)
                                .order_by(Guardrail.position)).all())
