"""Optimizations: create with full validation, list, show, status and name changes (API.md 6)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from levered_server.clock import canonical_uuid, iso_s, new_id, utcnow
from levered_server.errors import BadRequest, FieldErrors, MetricDeleted, NotFound, ValidationFailed
from levered_server.schemas.common import validate
from levered_server.schemas.optimizations import OptimizationCreate, OptimizationUpdate
from levered_server.services import design, guardrail_specs
from levered_server.store.models import Metric, Model, Optimization, StatusChange

IMMUTABLE = ("training_data_config", "model_type", "reward_metric_id", "holdout_percentage",
             "excluded_combinations")


def winner_of(opt: Optimization) -> dict[str, Any] | None:
    """`{"variant_number", "variant", "variant_key"}` while completed."""
    if opt.status != "completed" or opt.winner_number is None:
        return None
    variant = design.variant_of(opt.training_data_config["design_factors"], opt.winner_number)
    return {"variant_number": opt.winner_number, "variant": variant,
            "variant_key": design.variant_key(variant)}


def public(opt: Optimization, model: Model | None) -> dict[str, Any]:
    """The optimization object (6.1)."""
    summary = (model.state or {}).get("summary") if model is not None else None
    return {
        "id": opt.id, "name": opt.name, "status": opt.status, "model_type": opt.model_type,
        "model_id": model.id if model else None, "model_status": model.status if model else None,
        "holdout_percentage": opt.holdout_percentage, "reward_metric_id": opt.reward_metric_id,
        "training_data_config": opt.training_data_config,
        "excluded_combinations": opt.excluded_combinations,
        "variants_count": opt.variants_count, "winner": winner_of(opt),
        "created_at": iso_s(opt.created_at), "updated_at": iso_s(opt.updated_at),
        "summary": summary,
    }


def current_model(session: Session, opt: Optimization) -> Model | None:
    """The optimization's live (non-deleted) model."""
    if opt.model_id is None:
        return None
    return session.scalars(select(Model).where(Model.id == opt.model_id,
                                               Model.deleted_at.is_(None))).first()


def get_row(session: Session, optimization_id: str) -> Optimization:
    """An optimization of the session's organization, or 404."""
    oid = canonical_uuid(optimization_id)
    opt = session.scalars(select(Optimization).where(Optimization.id == oid)).first() \
        if oid else None
    if opt is None:
        raise NotFound("Optimization not found.")
    return opt


def new_model(opt: Optimization, now: Any) -> Model:
    """A fresh untrained model (version 0) for an optimization."""
    return Model(id=new_id(), organization_id=opt.organization_id, optimization_id=opt.id,
                 model_type=opt.model_type, status="untrained", version=0, bias={},
                 trained_at=None, error=None, last_run=None, state=None, created_at=now,
                 updated_at=now)


def create_from_json(*, runtime: Any, org_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a create body as received, then :func:`create`.

    When the schema refuses the body, the checks that can still run on the raw JSON (the
    reward metric, repeated factor names and levels) add their problems to the same 422, so
    one answer lists them all (API.md 1.5: up to 50 at once, not just the first).
    """
    try:
        body = validate(OptimizationCreate, raw)
    except ValidationFailed as exc:
        fields = list((exc.details or {}).get("fields", []))
        seen = {(f["field"], f["code"]) for f in fields}
        fields += [f for f in _raw_problems(runtime, org_id, raw) if (f["field"], f["code"]) not in seen]
        raise ValidationFailed(fields) from None
    return create(runtime=runtime, org_id=org_id, body=body)


def _raw_problems(runtime: Any, org_id: str, raw: dict[str, Any]) -> list[dict[str, str]]:
    """The metric and repetition checks of :func:`create`, on a body the schema refused."""
    errors = FieldErrors()
    mid = raw.get("reward_metric_id")
    if isinstance(mid, str):
        if canonical_uuid(mid) is None:
            errors.add("reward_metric_id", "format", "must be a UUID")
        else:
            with runtime.store.session(org_id) as s:
                found = s.scalars(select(Metric.id).where(Metric.id == canonical_uuid(mid),
                                                          Metric.deleted_at.is_(None))).first()
            if found is None:
                errors.add("reward_metric_id", "not_found", "no such metric")
    config = raw.get("training_data_config")
    names: set[str] = set()
    for kind in ("design_factors", "context_factors"):
        factors = config.get(kind) if isinstance(config, dict) else None
        for i, factor in enumerate(factors if isinstance(factors, list) else []):
            if not isinstance(factor, dict):
                continue
            path = f"training_data_config.{kind}[{i}]"
            name = factor.get("name")
            if isinstance(name, str):
                if name in names:
                    errors.add(f"{path}.name", "duplicate", f"factor name {name!r} is repeated")
                names.add(name)
            levels = factor.get("levels")
            seen: set[tuple[type, Any]] = set()
            for j, level in enumerate(levels if isinstance(levels, list) else []):
                if isinstance(level, (str, bool)):
                    if (type(level), level) in seen:
                        errors.add(f"{path}.levels[{j}]", "duplicate", f"level {level!r} is repeated")
                    seen.add((type(level), level))
    return errors.items


def create(*, runtime: Any, org_id: str, body: OptimizationCreate) -> dict[str, Any]:
    """Validate everything, then store the optimization and its model in one transaction."""
    errors = FieldErrors()
    with runtime.store.session(org_id) as s:
        metric = None
        mid = canonical_uuid(body.reward_metric_id)
        if mid is None:
            errors.add("reward_metric_id", "format", "must be a UUID")
        else:
            metric = s.scalars(select(Metric).where(Metric.id == mid,
                                                    Metric.deleted_at.is_(None))).first()
            if metric is None:
                errors.add("reward_metric_id", "not_found", "no such metric")
        guardrails = guardrail_specs.check(s, body.guardrails, reward_metric_id=mid,
                                           holdout_percentage=body.holdout_percentage,
                                           errors=errors)
        raw = body.training_data_config.model_dump(exclude_none=True)
        config = design.normalize_config(raw, metric.reward_type if metric else None, errors)
        excluded = design.normalize_exclusions(body.excluded_combinations,
                                               config["design_factors"], errors)
        if not errors and len(design.all_variants(config["design_factors"])) <= \
                design.MAX_COMBINATIONS:
            servable = design.servable_variants(config["design_factors"], excluded)
            if len(servable) < 2:
                errors.add("excluded_combinations", "too_few_variants",
                           f"only {len(servable)} variant(s) would remain servable; "
                           "at least 2 are needed")
        errors.raise_if_any()
        assert metric is not None
        now = utcnow()
        opt = Optimization(id=new_id(), organization_id=org_id, name=body.name, status="live",
                           model_type=body.model_type,
                           holdout_percentage=body.holdout_percentage,
                           reward_metric_id=metric.id, training_data_config=config,
                           excluded_combinations=excluded, variants_count=len(servable),
                           winner_number=None, created_at=now, updated_at=now,
                           auto_stop=body.auto_stop)
        model = new_model(opt, now)
        opt.model_id = model.id
        s.add(opt)
        s.flush()
        s.add_all([model, StatusChange(id=new_id(), optimization_id=opt.id, from_status=None,
                                       to_status="live", changed_at=now)])
        guardrail_specs.replace(s, opt, guardrails)
        return public(opt, model)


def list_all(*, runtime: Any, org_id: str, limit: int, offset: int, order_by: str,
             include_archived: bool) -> list[dict[str, Any]]:
    """Newest first by `order_by`, ties by id."""
    if order_by not in ("updated_at", "created_at"):
        raise BadRequest("Invalid query parameter 'order_by': use updated_at or created_at.",
                         details={"parameter": "order_by"})
    column = getattr(Optimization, order_by)
    with runtime.store.session(org_id) as s:
        q = select(Optimization)
        if not include_archived:
            q = q.where(Optimization.status != "archived")
        rows = s.scalars(q.order_by(column.desc(), Optimization.id.desc())
                         .limit(limit).offset(offset)).all()
        ids = [o.model_id for o in rows if o.model_id]
        models = {m.id: m for m in s.scalars(select(Model).where(
            Model.id.in_(ids), Model.deleted_at.is_(None))).all()} if ids else {}
        return [public(o, models.get(o.model_id or "")) for o in rows]


def get(*, runtime: Any, org_id: str, optimization_id: str) -> dict[str, Any]:
    """One optimization (archived ones too)."""
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        return public(opt, current_model(s, opt))


def parse_update(data: dict[str, Any]) -> OptimizationUpdate:
    """Validate a PATCH body: `immutable` and `unknown_field` before the field rules."""
    errors = FieldErrors()
    for key in data:
        if key in IMMUTABLE:
            errors.add(key, "immutable", "cannot be changed after create; archive the "
                       "optimization and create a new one")
    rest = {k: v for k, v in data.items() if k not in IMMUTABLE}
    try:
        update: OptimizationUpdate = validate(OptimizationUpdate, rest)
    except ValidationFailed as exc:
        for f in exc.details["fields"] if exc.details else []:
            errors.add(f["field"], f["code"], f["message"])
        update = OptimizationUpdate(status=None, name=None, guardrails=None, auto_stop=None)
    if not data:
        errors.add("status", "required", "give status or name")
    elif not errors and all(v is None for v in (update.status, update.name, update.guardrails,
                                                 update.auto_stop)):
        errors.add("status", "required", "give status or name")
    errors.raise_if_any()
    return update


def _winner_number(opt: Optimization, model: Model | None) -> int:
    # The servable variant with the highest weight in the current version; ties
    # to the lowest number; untrained or missing model → #1.
    variants = ((model.state or {}).get("variants") if model is not None else None) or []
    best = 1
    best_weight = None
    for v in sorted(variants, key=lambda v: v["number"]):
        if best_weight is None or v["weight"] > best_weight:
            best, best_weight = v["number"], v["weight"]
    return best


def update(*, runtime: Any, org_id: str, optimization_id: str,
           body: OptimizationUpdate) -> dict[str, Any]:
    """Rename and/or change status; the same status again is a no-op."""
    with runtime.store.session(org_id) as s:
        opt = get_row(s, optimization_id)
        model = current_model(s, opt)
        now = utcnow()
        changed = _update_guardrails(s, opt, body)
        if body.status is not None and body.status != opt.status:
            if body.status == "live":
                metric = s.get(Metric, opt.reward_metric_id)
                if metric is None or metric.deleted_at is not None:
                    raise MetricDeleted("The reward metric was deleted; this optimization "
                                        "cannot go live again.",
                                        details={"reward_metric_id": opt.reward_metric_id})
            if body.status == "completed":
                opt.winner_number = _winner_number(opt, model)
            if body.status == "live":  # a person restarts it: the last stop is history
                opt.stop_reason = None
            s.add(StatusChange(id=new_id(), optimization_id=opt.id, from_status=opt.status,
                               to_status=body.status, changed_at=now))
            opt.status = body.status
            changed = True
        if body.name is not None and body.name != opt.name:
            opt.name = body.name
            changed = True
        if changed:
            opt.updated_at = now
        result = public(opt, model)
    runtime.serve_cache.invalidate(opt.id)
    return result


def _update_guardrails(s: Session, opt: Optimization, body: OptimizationUpdate) -> bool:
    """Apply the update's guardrails and auto_stop (extension); return whether they changed."""
    changed = False
    if body.guardrails is not None:
        errors = FieldErrors()
        checked = guardrail_specs.check(s, body.guardrails, reward_metric_id=opt.reward_metric_id,
                                        holdout_percentage=opt.holdout_percentage, errors=errors)
        errors.raise_if_any()
        guardrail_specs.replace(s, opt, checked)
        changed = True
    if body.auto_stop is not None and body.auto_stop != opt.auto_stop:
        opt.auto_stop = body.auto_stop
        changed = True
    return changed
