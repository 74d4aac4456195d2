"""Serving (API.md 2.4, 7): holdout by hash, sticky locks, the policy, propensity logged."""

from __future__ import annotations

import json
import random
from typing import Any

from levered_server.clock import canonical_uuid, new_id, utcnow
from levered_server.engine import uniform
from levered_server.errors import FieldErrors, ModelUnavailable, NotFound, OptimizationNotLive
from levered_server.services import design

_RNG = random.SystemRandom()


def parse_request(data: dict[str, Any], *, best_variant: bool) -> dict[str, Any]:
    """Validate a serve body; unknown top-level fields are ignored (SDKs send more)."""
    errors = FieldErrors()
    out: dict[str, Any] = {"dry_run": False, "context": {}, "anonymous_id": None}
    if best_variant:
        raw_id = data.get("optimization_id", data.get("optimizationId"))
        if raw_id is None:
            errors.add("optimization_id", "required", "is required")
        elif not isinstance(raw_id, str) or canonical_uuid(raw_id) is None:
            errors.add("optimization_id", "format", "must be a UUID")
        else:
            out["optimization_id"] = canonical_uuid(raw_id)
    anon = data.get("anonymous_id", data.get("anonymousId") if best_variant else None)
    if anon is not None:
        if not isinstance(anon, str):
            errors.add("anonymous_id", "type", "must be a string")
        elif not anon:
            errors.add("anonymous_id", "too_short", "must be 1-255 characters")
        elif len(anon) > 255:
            errors.add("anonymous_id", "too_long", "must be 1-255 characters")
        else:
            out["anonymous_id"] = anon
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        errors.add("context", "type", "must be an object")
    elif context:
        out["context"] = context
    if not best_variant and "dry_run" in data:
        if not isinstance(data["dry_run"], bool):
            errors.add("dry_run", "type", "must be a boolean")
        else:
            out["dry_run"] = data["dry_run"]
    errors.raise_if_any()
    return out


def check_context(context: dict[str, Any], dtypes: dict[str, str]) -> dict[str, Any]:
    """Keys must be declared; values typed; undeclared levels are accepted (2.2)."""
    errors = FieldErrors()
    for key, value in context.items():
        if key not in dtypes:
            errors.add(f"context.{key}", "unknown_context_factor",
                       f"{key!r} is not a context factor of this optimization")
        elif value is None:
            continue
        elif dtypes[key] == "bool" and not isinstance(value, bool):
            errors.add(f"context.{key}", "type", "must be true or false")
        elif dtypes[key] == "str" and not isinstance(value, str):
            errors.add(f"context.{key}", "type", "must be a string")
    errors.raise_if_any()
    return context


def decide(*, runtime: Any, optimization_id: str, request: dict[str, Any],
           record_exposure: bool) -> dict[str, Any]:
    """Choose the variant for a user; write the lock and exposure (unless dry run)."""
    oid = canonical_uuid(optimization_id)
    snap = runtime.serve_cache.get(oid) if oid else None
    if snap is None:
        raise NotFound("Optimization not found.")
    context = check_context(request["context"], snap.context_dtypes)
    if snap.status == "archived":
        raise OptimizationNotLive("The optimization is archived; it serves nothing.",
                                  details={"status": "archived"})
    anon = request["anonymous_id"] or new_id()
    dry = request["dry_run"]
    if snap.status == "completed":
        number, holdout, propensity = snap.winner_number, False, 1.0
    elif not snap.has_model:
        raise ModelUnavailable("The optimization has no model; create one first.")
    elif design.in_holdout(snap.id, anon, snap.holdout_percentage):
        number, holdout, propensity = 1, True, 1.0
    else:
        holdout = False
        locked = runtime.locks.get(snap.id, anon)
        if locked is not None:
            number, propensity = locked
        else:
            if snap.policy is not None:
                number, propensity = snap.policy.choose(context, _RNG)
            else:
                alloc = uniform.allocation(list(snap.variants),
                                           runtime.settings.exploration_share)
                number, propensity = uniform.draw(alloc, _RNG)
            if not dry:
                number, propensity = runtime.locks.put({
                    "organization_id": snap.organization_id, "optimization_id": snap.id,
                    "anonymous_id": anon, "variant_number": number, "propensity": propensity,
                    "model_version": snap.model_version, "assigned_at": utcnow()})
    variant, key = snap.render(number)
    result = {"optimization_id": snap.id, "anonymous_id": anon, "variant": variant,
              "variant_number": number, "variant_key": key, "in_holdout": holdout,
              "propensity": propensity, "model_version": snap.model_version,
              "exposure_id": None if dry else new_id()}
    if not dry and runtime.trainer is not None:
        runtime.trainer.served(snap.id)
    if record_exposure and not dry and snap.managed:
        # The server never writes to a bring-your-own warehouse.
        _record(runtime, snap.organization_id, result, context)
    return result


def _record(runtime: Any, org_id: str, result: dict[str, Any], context: dict[str, Any]
            ) -> None:
    now = utcnow().replace(tzinfo=None)
    runtime.exposures.submit(org_id, {
        "exposure_id": result["exposure_id"], "anonymous_id": result["anonymous_id"],
        "optimization_id": result["optimization_id"],
        "variant": json.dumps(result["variant"], ensure_ascii=False),
        "variant_number": result["variant_number"],
        "context": json.dumps(context, ensure_ascii=False), "in_holdout": result["in_holdout"],
        "propensity": result["propensity"], "model_version": result["model_version"],
        "source": "serve", "idempotency_key": None, "timestamp_utc": now,
        "organization_id": org_id, "created_at": now})
