"""Serving (API.md 2.4, 7): holdout by hash, sticky locks, the policy, propensity logged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

from levered_server.clock import canonical_uuid, new_id, new_record_id, utcnow
from levered_server.engine import uniform
from levered_server.errors import FieldErrors, ModelUnavailable, NotFound, OptimizationNotLive
from levered_server.services import design
from levered_server.services.serve_log import ServeWrite


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


def assignment_rng(optimization_id: str, anonymous_id: str, model_version: int) -> random.Random:
    """The draw of a user's first assignment: a function of (optimization, user, version).

    Every replica serving the same version gives a new user the same variant before any lock
    is written, with no coordination; the propensity is still the allocation's probability
    of that variant, because the seed is independent of the allocation (API.md 2.4). The
    input differs from the holdout hash's, so the two are independent too.
    """
    digest = hashlib.sha256(
        f"assign:{optimization_id}:{anonymous_id}:{model_version}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


@dataclasses.dataclass
class Decision:
    """A serve's answer, the writes to commit before sending it (None for a dry run or when
    nothing is written), and how the answer reads if the stored lock holds another variant."""

    result: dict[str, Any]
    write: ServeWrite | None = None
    restate: Callable[[int, float], dict[str, Any]] | None = None

    def final(self, held: tuple[int, float]) -> dict[str, Any]:
        """The answer for the (variant, propensity) the commit returned."""
        if self.write is None or self.restate is None or held == self.write.assigned:
            return self.result
        return self.restate(*held)


def decide(*, runtime: Any, optimization_id: str, request: dict[str, Any],
           record_exposure: bool) -> Decision:
    """Choose the variant for a user; return the answer and the writes to commit first."""
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
    lock = None
    if snap.status == "completed":
        number, holdout, propensity = snap.winner_number, False, 1.0
    elif not snap.has_model:
        raise ModelUnavailable("The optimization has no model; create one first.")
    elif design.in_holdout(snap.id, anon, snap.holdout_percentage):
        number, holdout, propensity = 1, True, 1.0
    else:
        holdout = False
        # A serve that commits its lock learns the stored one from the commit (insert, then
        # read back), so it skips the lookup: no database round trip on the event loop, and
        # the answer is the stored lock even when another request of the same user is being
        # committed. Dry runs, and write-behind (answered before the commit), look it up.
        commits = not dry and not runtime.serve_log.write_behind
        locked = None if commits else runtime.serve_log.held(snap.id, anon)
        if locked is not None:
            number, propensity = locked
        else:
            rng = assignment_rng(snap.id, anon, snap.model_version)
            if snap.policy is not None:
                number, propensity = snap.policy.choose(context, rng)
            else:
                alloc = uniform.allocation(list(snap.variants),
                                           runtime.settings.exploration_share)
                number, propensity = uniform.draw(alloc, rng)
            if not dry:
                lock = {"organization_id": snap.organization_id, "optimization_id": snap.id,
                        "anonymous_id": anon, "variant_number": number,
                        "propensity": propensity, "model_version": snap.model_version,
                        "assigned_at": utcnow()}
    result = answer(snap, anon, number, propensity, holdout, dry)
    if dry:
        return Decision(result)
    if runtime.trainer is not None:
        runtime.trainer.served(snap.id)
    # The server never writes to a bring-your-own warehouse.
    recorded = record_exposure and snap.managed
    if lock is None and not recorded:
        return Decision(result)

    def restate(n: int, p: float) -> dict[str, Any]:
        return answer(snap, anon, n, p, holdout, False, result["exposure_id"])

    def exposure(n: int, p: float) -> dict[str, Any]:
        return _exposure_row(snap, restate(n, p), context)

    write = ServeWrite(snap.organization_id, (snap.id, anon), lock, (number, propensity),
                       exposure if recorded else None)
    return Decision(result, write, restate)


def answer(snap: Any, anon: str, number: int, propensity: float, holdout: bool, dry: bool,
           exposure_id: str | None = None) -> dict[str, Any]:
    """The serve response body (without `meta`) for a chosen variant."""
    variant, key = snap.render(number)
    return {"optimization_id": snap.id, "anonymous_id": anon, "variant": variant,
            "variant_number": number, "variant_key": key, "in_holdout": holdout,
            "propensity": propensity, "model_version": snap.model_version,
            "exposure_id": None if dry else exposure_id or new_record_id()}


def _exposure_row(snap: Any, result: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    now = utcnow().replace(tzinfo=None)
    return {
        "exposure_id": result["exposure_id"], "anonymous_id": result["anonymous_id"],
        "optimization_id": result["optimization_id"],
        "variant": snap.variant_text(result["variant_number"]),
        "variant_number": result["variant_number"],
        "context": json.dumps(context, ensure_ascii=False), "in_holdout": result["in_holdout"],
        "propensity": result["propensity"], "model_version": result["model_version"],
        "source": "serve", "idempotency_key": None, "timestamp_utc": now,
        "organization_id": snap.organization_id, "created_at": now}
