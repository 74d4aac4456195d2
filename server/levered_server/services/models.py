"""Models: list, show, state, train, delete, new model (API.md 6.8, 8)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import defer

from levered_server.clock import canonical_uuid, iso_s, utcnow
from levered_server.errors import Conflict, FieldErrors, NotFound, OptimizationNotLive, TrainingInProgress
from levered_server.schemas.optimizations import TrainRequest
from levered_server.services import design, guardrails, lift_history, training_sql, versions
from levered_server.services.optimizations import get_row as get_optimization
from levered_server.services.optimizations import new_model
from levered_server.store.db import EncodedJSON
from levered_server.store.lease import LeaseHeld, lease
from levered_server.store.models import Model, Optimization

_TRAINING: set[str] = set()
_TRAINING_LOCK = threading.Lock()


def public(m: Model, opt: Optimization) -> dict[str, Any]:
    """The model object (8.1)."""
    return {"id": m.id, "optimization_id": m.optimization_id, "model_type": m.model_type,
            "status": "training" if m.id in _TRAINING else m.status, "version": m.version,
            "training_data_config": opt.training_data_config, "bias": m.bias or {},
            "trained_at": iso_s(m.trained_at), "error": m.error, "last_run": m.last_run,
            "created_at": iso_s(m.created_at), "updated_at": iso_s(m.updated_at)}


def _get(session: Any, model_id: str, with_state: bool = True) -> tuple[Model, Optimization]:
    mid = canonical_uuid(model_id)
    query = select(Model).where(Model.id == mid, Model.deleted_at.is_(None))
    if not with_state:  # not decoded unless read
        query = query.options(defer(Model.state))
    model = session.scalars(query).first() if mid else None
    if model is None:
        raise NotFound("Model not found.")
    opt = session.scalars(select(Optimization).where(
        Optimization.id == model.optimization_id)).one()
    return model, opt


def list_all(*, runtime: Any, org_id: str, limit: int,
             include_archived: bool) -> list[dict[str, Any]]:
    """Models (never deleted ones), `updated_at` descending, ties by id."""
    with runtime.store.session(org_id) as s:
        q = select(Model, Optimization).join(Optimization,
                                             Optimization.id == Model.optimization_id)
        q = q.where(Model.deleted_at.is_(None))
        if not include_archived:
            q = q.where(Optimization.status != "archived")
        rows = s.execute(q.order_by(Model.updated_at.desc(), Model.id.desc()).limit(limit)).all()
        return [public(m, o) for m, o in rows]


def get(*, runtime: Any, org_id: str, model_id: str) -> dict[str, Any]:
    """One model."""
    with runtime.store.session(org_id) as s:
        return public(*_get(s, model_id))


def create_for(*, runtime: Any, org_id: str, optimization_id: str) -> dict[str, Any]:
    """A fresh untrained model for an optimization whose model was deleted."""
    with runtime.store.session(org_id) as s:
        opt = get_optimization(s, optimization_id)
        existing = s.get(Model, opt.model_id) if opt.model_id else None
        if existing is not None and existing.deleted_at is None:
            raise Conflict("The optimization already has a model; delete it first.")
        model = new_model(opt, utcnow())
        s.add(model)
        opt.model_id = model.id
        s.flush()
        result = public(model, opt)
    runtime.serve_cache.invalidate(opt.id)
    return result


def delete(*, runtime: Any, org_id: str, model_id: str) -> str:
    """Soft delete; the optimization loses its model (locks are kept)."""
    with runtime.store.session(org_id) as s:
        model, opt = _get(s, model_id)
        if model.id in _TRAINING:
            raise TrainingInProgress("The model is training; try again when it is done.")
        model.deleted_at = utcnow()
        if opt.model_id == model.id:
            opt.model_id = None
    runtime.serve_cache.invalidate(opt.id)
    return model.id


def _variants(opt: Optimization) -> list[tuple[int, dict[str, Any]]]:
    return design.servable_variants(opt.training_data_config["design_factors"],
                                    opt.excluded_combinations)


def state(*, runtime: Any, org_id: str, model_id: str) -> dict[str, Any]:
    """The current version's posterior per servable variant (8.4)."""
    with runtime.store.session(org_id) as s:
        model, opt = _get(s, model_id)
        base = public(model, opt)
    saved = model.state or {}
    k = opt.variants_count
    keep = 1 - opt.holdout_percentage / 100
    by_number = {v["number"]: v for v in saved.get("variants", [])}
    variants = []
    for number, variant in _variants(opt):
        v = by_number.get(number, {})
        variants.append({
            "number": number, "variant": variant, "variant_key": design.variant_key(variant),
            "exposures": v.get("exposures", 0),
            "expected_reward_mean": v.get("expected_reward_mean"),
            "expected_reward_lo": v.get("expected_reward_lo"),
            "expected_reward_hi": v.get("expected_reward_hi"),
            "prob_best": v.get("prob_best", 1 / k), "weight": v.get("weight", keep / k),
            "allocation": v.get("allocation", 1 / k),
            "propensity_weighted": v.get("propensity_weighted")})
    return {"model_id": model.id, "optimization_id": opt.id, "model_type": model.model_type,
            "status": base["status"], "version": model.version,
            "trained_at": base["trained_at"], "observations": saved.get("observations", 0),
            "holdout_percentage": opt.holdout_percentage, "bias": model.bias or {},
            "error": model.error, "last_run": model.last_run, "variants": variants,
            "factor_importance": saved.get("factor_importance", [])}


def _check_bias(bias: dict[str, Any], opt: Optimization) -> dict[str, float]:
    errors = FieldErrors()
    names = {f["name"] for f in opt.training_data_config["design_factors"]}
    for name, value in bias.items():
        if name not in names:
            errors.add(f"bias.{name}", "invalid_value", f"{name!r} is not a design factor")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.add(f"bias.{name}", "type", "must be a number")
        elif not 0 <= value <= 5:
            errors.add(f"bias.{name}", "out_of_range", "must be between 0 and 5")
    errors.raise_if_any()
    return {k: float(v) for k, v in bias.items()}


def train(*, runtime: Any, org_id: str, model_id: str, body: TrainRequest,
          trigger: str = "manual") -> dict[str, Any]:
    """Pull cell statistics from the warehouse, fit, publish version + 1 (8.1, 8.5).

    Below the burn-in minimum the run is recorded as `skipped` and nothing is published; a
    failing run marks the model `failed` and the previous version keeps serving.
    """
    with _TRAINING_LOCK:
        if model_id in _TRAINING:
            raise TrainingInProgress("A training of this model is running.")
        _TRAINING.add(model_id)
    try:
        # Once across replicas (a PostgreSQL advisory lock); the model is read under it, so
        # the run fits version + 1 of the version it publishes over.
        with lease(runtime.store, f"train:{model_id}"):
            result, outcome = _train(runtime, org_id, model_id, body, trigger)
    except LeaseHeld:
        raise TrainingInProgress("A training of this model is running on another replica."
                                 ) from None
    finally:
        with _TRAINING_LOCK:
            _TRAINING.discard(model_id)
    expected = result.pop("expected_reward")
    return {"model_id": model_id, **result, "observations": outcome.observations,
            "in_sample_metrics": {"historic_reward": outcome.historic_reward,
                                  "expected_reward": expected}}


def _train(runtime: Any, org_id: str, model_id: str, body: TrainRequest, trigger: str
           ) -> tuple[dict[str, Any], Any]:
    with runtime.store.session(org_id) as s:
        model, opt = _get(s, model_id, with_state=False)
        if opt.status == "archived":
            raise OptimizationNotLive("The optimization is archived.",
                                      details={"status": "archived"})
        bias = _check_bias(body.bias, opt) if body.bias is not None else None
        bias_now = bias if bias is not None else dict(model.bias or {})
        # Only this member of the previous state: the whole document is ~1 MB of JSON.
        start_scales = s.scalar(select(Model.state["prior_scales"]).where(Model.id == model.id))
    started = utcnow()
    scheduler = getattr(runtime, "trainer", None)
    if scheduler is not None:
        scheduler.ran(opt.id)
    try:
        columns, factors, scanned, reward_type = training_sql.cell_columns(
            runtime=runtime, org_id=org_id, optimization_id=opt.id)
        # The cells, the fit and the state JSON are built in the fit worker process (when
        # the runtime has one), so they do not hold this process's GIL while it serves.
        fits = getattr(runtime, "fits", None)
        run = fits.run if fits is not None else _inline
        outcome = run(versions.fit_and_state, model_id=model.id, version=model.version + 1,
                      model_type=model.model_type, reward_type=reward_type,
                      opt=versions.DesignSource.of(opt), columns=columns,
                      context_factors=factors, bias=bias_now,
                      knobs=versions.policy_settings(runtime.settings),
                      start_scales=start_scales)
    except Exception as exc:
        _record_failure(runtime, org_id, model.id, started, trigger, exc, bias)
        raise
    result = _publish(runtime, org_id, model.id, opt, outcome, started, trigger, scanned,
                      bias, model.version)
    if outcome.state_json is not None and opt.auto_stop:  # as read when the run started
        guardrails.after_training(runtime, org_id, opt.id)
    return result, outcome


def _inline(fn: Any, **kwargs: Any) -> Any:
    return fn(**kwargs)


def _publish(runtime: Any, org_id: str, model_id: str, opt: Optimization,
             outcome: versions.Fitted, started: Any, trigger: str, scanned: int | None,
             bias: dict[str, float] | None, fitted_over: int) -> dict[str, Any]:
    now = utcnow()
    run = {"started_at": iso_s(started), "finished_at": iso_s(now),
           "outcome": "succeeded" if outcome.published else "skipped", "trigger": trigger,
           "observations": outcome.observations, "rows_scanned": scanned, "error": None}
    with runtime.store.session(org_id) as s:
        row = s.get(Model, model_id, options=[defer(Model.state)])
        if row is None or row.deleted_at is not None:
            raise NotFound("Model not found.")
        if row.version != fitted_over:  # cannot happen under the lease; never publish over it
            raise TrainingInProgress("Another training published a version meanwhile.")
        status, version, trained_at = row.status, row.version, row.trained_at
    values: dict[str, Any] = {"last_run": run, "updated_at": now}
    if bias is not None:
        values["bias"] = bias
    expected = None
    if outcome.state_json is not None:
        version, trained_at, status = version + 1, now, "trained"
        values.update(version=version, state=EncodedJSON(outcome.state_json),  # as is (store.db)
                      trained_at=now, status=status, error=None)
        expected = outcome.expected_reward
    elif status == "failed":  # this run did not fail: the last good version stands
        status = "trained" if version > 0 else "untrained"
        values.update(status=status, error=None)
    # One statement, not the session's flush: serve commits wait for SQLite's write lock.
    changed = runtime.store.write_at_once(update(Model).where(
        Model.id == model_id, Model.organization_id == org_id, Model.version == fitted_over,
        Model.deleted_at.is_(None)).values(**values))
    if changed != 1:
        raise TrainingInProgress("The model was deleted or another training published a "
                                 "version meanwhile.")
    if outcome.lift is not None and trained_at is not None:
        lift_history.record(runtime, org_id, opt.id, model_id, version, trained_at,
                            outcome.observations, outcome.lift)
    result = {"status": status, "version": version, "trained_at": iso_s(trained_at),
              "expected_reward": expected}
    if outcome.serving is not None:
        runtime.versions.put(model_id, result["version"], outcome.serving)
        runtime.serve_cache.reload(opt.id)
    return result


def _record_failure(runtime: Any, org_id: str, model_id: str, started: Any, trigger: str,
                    exc: Exception, bias: dict[str, float] | None) -> None:
    code = getattr(exc, "code", "internal")
    message = getattr(exc, "message", "training failed")
    error = {"code": code, "message": message}
    with runtime.store.session(org_id) as s:
        row = s.get(Model, model_id, options=[defer(Model.state)])
        assert row is not None
        row.status = "failed"
        row.error = error
        row.last_run = {"started_at": iso_s(started), "finished_at": iso_s(utcnow()),
                        "outcome": "failed", "trigger": trigger, "observations": None,
                        "rows_scanned": None, "error": error}
        if bias is not None:
            row.bias = bias
        row.updated_at = utcnow()
