"""Ingestion into the managed warehouse (API.md 11): per-event validation, idempotency."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from typing import Any

from sqlalchemy import select

from levered_server.background import Pacer
from levered_server.clock import canonical_uuid, new_id, parse_timestamp, utcnow
from levered_server.errors import BadRequest, Forbidden, ManagedWarehouseRequired, Unavailable, WarehouseNotConnected
from levered_server.schemas.common import nul_paths, surrogate_paths
from levered_server.services import design
from levered_server.services.identity import Caller
from levered_server.store.models import Lock, Optimization
from levered_server.warehouse.base import WarehouseFailure

log = logging.getLogger("levered_server.ingest")
MAX_EVENTS = 500
MAX_BYTES = 5 * 1000 * 1000
MAX_PROPERTIES = 16 * 1024
EXPOSURE_FIELDS = {"anonymous_id", "optimization_id", "variant", "context", "timestamp",
                   "idempotency_key", "exposure_id", "in_holdout", "propensity"}
REWARD_FIELDS = {"anonymous_id", "name", "value", "timestamp", "optimization_id", "properties",
                 "idempotency_key"}


class Rejected(Exception):
    """One event's problem: `{index, code, message}` in the response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_caller(*, runtime: Any, caller: Caller) -> Any:
    """API key only; the organization's warehouse must be the managed one."""
    if caller.kind != "api_key":
        raise Forbidden("Ingestion requires an API key.")
    driver = runtime.warehouses.for_org(caller.organization_id)
    if driver is None:
        raise WarehouseNotConnected("No warehouse is connected.")
    if not driver.managed:
        raise ManagedWarehouseRequired("Ingestion needs the managed (embedded) warehouse; this "
                                       "organization uses its own.",
                                       details={"provider": driver.provider})
    return driver


def events_of(body: dict[str, Any]) -> list[Any]:
    """The `events` array: 1–500 entries."""
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        raise BadRequest(f"The body needs an 'events' array of 1-{MAX_EVENTS} events.")
    return events


def _text(event: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = event.get(key)
    if value is None:
        if required:
            raise Rejected("missing_field", f"{key} is required")
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise Rejected("invalid_field", f"{key} must be a string of 1-255 characters")
    return value


def _timestamp(event: dict[str, Any], received: dt.datetime) -> dt.datetime:
    raw = event.get("timestamp")
    if raw is None:
        return received
    if not isinstance(raw, str):
        raise Rejected("invalid_timestamp", "timestamp must be an ISO-8601 string")
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise Rejected("invalid_timestamp",
                       f"timestamp {raw!r} is not ISO-8601 with Z or an offset") from None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise Rejected("invalid_timestamp",
                       f"timestamp {raw!r} is out of range once converted to UTC") from None


def _common(event: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise Rejected("invalid_field", "an event must be an object")
    unknown = sorted(set(event) - allowed)
    if unknown:
        raise Rejected("unknown_field", f"unknown field {unknown[0]!r}")
    bad = nul_paths(event)
    if bad:
        raise Rejected("invalid_field", f"{bad[0]} must not contain NUL characters")
    bad = surrogate_paths(event)
    if bad:
        raise Rejected("invalid_field", f"{bad[0]} is not valid Unicode (a lone surrogate such "
                       "as \\ud800); send UTF-8 text")
    return event


def _optimization_ids(events: list[Any], *, required: bool) -> dict[int, str | None]:
    """Canonical optimization ids per event index (None when absent or malformed)."""
    out: dict[int, str | None] = {}
    for i, e in enumerate(events):
        raw = e.get("optimization_id") if isinstance(e, dict) else None
        out[i] = canonical_uuid(raw) if isinstance(raw, str) else None
    return out


def _foreign(runtime: Any, org_id: str, ids: dict[int, str | None]) -> dict[str, Optimization]:
    """Load the batch's optimizations; unknown or foreign ids → 403 for the whole batch."""
    wanted = {v for v in ids.values() if v}
    with runtime.store.session(org_id) as s:
        found = {o.id: o for o in s.scalars(select(Optimization).where(
            Optimization.id.in_(wanted))).all()} if wanted else {}
        s.expunge_all()
    bad = [i for i, v in ids.items() if v and v not in found]
    if bad:
        raise Forbidden("The batch names optimizations that are not of this organization.",
                        details={"indexes": bad})
    return found


def _variant(event: dict[str, Any], opt: Optimization) -> tuple[dict[str, Any], int]:
    variant = event.get("variant")
    factors = opt.training_data_config["design_factors"]
    if variant is None:
        raise Rejected("missing_field", "variant is required")
    if not isinstance(variant, dict):
        raise Rejected("invalid_variant", "variant must be an object")
    names = [f["name"] for f in factors]
    extra = [k for k in variant if k not in names]
    if extra:
        raise Rejected("invalid_variant", f"variant.{extra[0]}: not a design factor")
    for f in factors:
        if f["name"] not in variant:
            raise Rejected("invalid_variant", f"variant.{f['name']} is missing")
        value = variant[f["name"]]
        if not any(type(value) is type(lv) and value == lv for lv in f["levels"]):
            raise Rejected("invalid_variant", f"variant.{f['name']}: {json.dumps(value)} is "
                           f"not a level of {f['name']}")
    number = design.variant_number(factors, variant)
    if design.is_excluded(variant, opt.excluded_combinations):
        raise Rejected("invalid_variant", "variant is an excluded combination")
    assert number is not None
    return {n: variant[n] for n in names}, number


def _context(event: dict[str, Any], opt: Optimization) -> dict[str, Any]:
    context = event.get("context")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise Rejected("invalid_field", "context must be an object")
    dtypes = {f["name"]: f["dtype"] for f in opt.training_data_config["context_factors"]}
    for key, value in context.items():
        if key not in dtypes:
            raise Rejected("unknown_context_factor", f"context.{key} is not a context factor")
        if value is not None and not isinstance(value, bool if dtypes[key] == "bool" else str):
            raise Rejected("invalid_field", f"context.{key} has the wrong type")
    return context


def _exposure(event: Any, opt_ids: dict[int, str | None], i: int,
              opts: dict[str, Optimization], org_id: str, now: dt.datetime) -> dict[str, Any]:
    event = _common(event, EXPOSURE_FIELDS)
    anon = _text(event, "anonymous_id", required=True)
    if event.get("optimization_id") is None:
        raise Rejected("missing_field", "optimization_id is required")
    if opt_ids[i] is None:
        raise Rejected("invalid_field", "optimization_id must be a UUID")
    opt = opts[opt_ids[i]]  # type: ignore[index]
    variant, number = _variant(event, opt)
    context = _context(event, opt)
    key = _text(event, "idempotency_key", required=False)
    exposure_id = event.get("exposure_id")
    if exposure_id is not None and (not isinstance(exposure_id, str)
                                    or canonical_uuid(exposure_id) is None):
        raise Rejected("invalid_field", "exposure_id must be a UUID")
    holdout = event.get("in_holdout")
    if holdout is not None and not isinstance(holdout, bool):
        raise Rejected("invalid_field", "in_holdout must be a boolean")
    p = event.get("propensity")
    if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float))
                          or not 0 < p <= 1):
        raise Rejected("invalid_field", "propensity must be a number in (0, 1]")
    assert anon is not None
    ts = _timestamp(event, now)
    return {"exposure_id": canonical_uuid(exposure_id) if exposure_id else new_id(),
            "anonymous_id": anon, "optimization_id": opt.id,
            "variant": json.dumps(variant, ensure_ascii=False), "variant_number": number,
            "context": json.dumps(context, ensure_ascii=False),
            "in_holdout": holdout if holdout is not None else
            design.in_holdout(opt.id, anon, opt.holdout_percentage),
            "propensity": float(p) if p is not None else None, "model_version": None,
            "source": "ingest", "idempotency_key": key,
            "timestamp_utc": ts.replace(tzinfo=None), "organization_id": org_id,
            "created_at": now.replace(tzinfo=None), "_explicit_id": exposure_id is not None}


def _reward(event: Any, opt_ids: dict[int, str | None], i: int, org_id: str,
            now: dt.datetime) -> dict[str, Any]:
    event = _common(event, REWARD_FIELDS)
    anon = _text(event, "anonymous_id", required=True)
    name = _text(event, "name", required=True)
    value = event.get("value", 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Rejected("invalid_field", "value must be a finite number")
    if event.get("optimization_id") is not None and opt_ids[i] is None:
        raise Rejected("invalid_field", "optimization_id must be a UUID")
    props = event.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise Rejected("invalid_field", "properties must be an object")
        if len(json.dumps(props).encode()) > MAX_PROPERTIES:
            raise Rejected("invalid_field", "properties must be at most 16 KB")
    key = _text(event, "idempotency_key", required=False)
    ts = _timestamp(event, now)
    return {"reward_id": new_id(), "anonymous_id": anon, "name": name, "value": float(value),
            "timestamp_utc": ts.replace(tzinfo=None), "organization_id": org_id,
            "optimization_id": opt_ids[i],
            "properties": json.dumps(props) if props is not None else None,
            "idempotency_key": key, "created_at": now.replace(tzinfo=None)}


def _default_propensities(runtime: Any, org_id: str, rows: list[dict[str, Any]]) -> None:
    # Default propensity: the user's lock, when its variant is the one ingested.
    pending = [r for r in rows if r["propensity"] is None]
    if not pending:
        return
    runtime.serve_log.flush()
    with runtime.store.session(org_id) as s:
        locks = {(lk.optimization_id, lk.anonymous_id): lk for lk in s.scalars(select(Lock).where(
            # Both key columns: on the anonymous id alone, no index applies (a scan of
            # every lock per batch).
            Lock.optimization_id.in_({r["optimization_id"] for r in pending}),
            Lock.anonymous_id.in_({r["anonymous_id"] for r in pending}))).all()}
    for r in pending:
        lk = locks.get((r["optimization_id"], r["anonymous_id"]))
        if lk is not None and lk.variant_number == r["variant_number"]:
            r["propensity"] = lk.propensity


def ingest(*, runtime: Any, caller: Caller, driver: Any, events: list[Any], kind: str
           ) -> dict[str, Any]:
    """Validate each event, drop duplicates, write the rest in one transaction."""
    org_id = caller.organization_id
    opt_ids = _optimization_ids(events, required=kind == "exposures")
    opts = _foreign(runtime, org_id, opt_ids)
    now = utcnow()
    rows, rejected = [], []
    pace = Pacer()  # a large batch, on the heavy lane's thread: let serving in
    for i, event in enumerate(events):
        pace()
        try:
            row = _exposure(event, opt_ids, i, opts, org_id, now) if kind == "exposures" \
                else _reward(event, opt_ids, i, org_id, now)
            rows.append(row)
        except Rejected as r:
            rejected.append({"index": i, "code": r.code, "message": r.message})
    if kind == "exposures":
        _default_propensities(runtime, org_id, rows)
        runtime.exposures.flush(org_id)  # so serve-recorded exposure ids are seen
    try:
        duplicates = _write(driver, kind, rows)
    except (WarehouseFailure, OSError):  # transient: nothing was written
        log.exception("ingesting %d %s failed", len(rows), kind)
        raise Unavailable("Writing the events failed; nothing was written. Retry the batch.") \
            from None
    if rows and getattr(runtime, "trainer", None) is not None:
        runtime.trainer.new_data(org_id)
    return {"accepted": len(rows), "duplicates": duplicates, "rejected": rejected}


def _write(driver: Any, kind: str, rows: list[dict[str, Any]]) -> int:
    """Store the rows not seen before (idempotency key, explicit exposure id); the number of
    duplicates. The managed driver's engine decides how (see `warehouse.managed_tables`)."""
    if not rows:
        return 0
    duplicates: int = driver.ingest(kind, rows)
    return duplicates
