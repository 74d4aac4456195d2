"""Policy snapshots for the serve path: what serving needs of an optimization, cached.

Refreshed after `TTL` seconds and invalidated by every change this process makes
(status, model, connection), so serving does no per-request model or config queries.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from sqlalchemy import select

from levered_server.services import design
from levered_server.services.versions import Serving, VersionCache
from levered_server.store.models import Model, Optimization, WarehouseConnection

TTL = 2.0


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """An optimization as serving sees it."""

    id: str
    organization_id: str
    status: str
    holdout_percentage: int
    context_dtypes: dict[str, str]
    variants: dict[int, tuple[dict[str, Any], str]]  # servable number → (variant, key)
    baseline: tuple[dict[str, Any], str]
    winner_number: int
    has_model: bool
    model_version: int
    managed: bool
    loaded_at: float
    policy: Serving | None = None

    def render(self, number: int) -> tuple[dict[str, Any], str]:
        """The variant object and key of a number."""
        return self.variants.get(number) or self.baseline


class ServeCache:
    """Snapshots by optimization id."""

    def __init__(self, store: Any, versions: VersionCache | None = None) -> None:
        self.store = store
        self.versions = versions or VersionCache()
        self._items: dict[str, Snapshot] = {}
        self._lock = threading.Lock()

    def get(self, optimization_id: str) -> Snapshot | None:
        snap = self._items.get(optimization_id)
        if snap is not None and time.monotonic() - snap.loaded_at < TTL:
            return snap
        snap = self._load(optimization_id)
        with self._lock:
            if snap is None:
                self._items.pop(optimization_id, None)
            else:
                self._items[optimization_id] = snap
        return snap

    def invalidate(self, optimization_id: str | None = None) -> None:
        """Forget one snapshot, or all."""
        with self._lock:
            if optimization_id is None:
                self._items.clear()
            else:
                self._items.pop(optimization_id, None)

    def _load(self, optimization_id: str) -> Snapshot | None:
        with self.store.system_session() as s:
            opt = s.scalars(select(Optimization).where(Optimization.id == optimization_id)
                            ).first()
            if opt is None:
                return None
            model = s.get(Model, opt.model_id) if opt.model_id else None
            if model is not None and model.deleted_at is not None:
                model = None
            conn = s.scalars(select(WarehouseConnection).where(
                WarehouseConnection.organization_id == opt.organization_id)).first()
            factors = opt.training_data_config["design_factors"]
            servable = design.servable_variants(factors, opt.excluded_combinations)
            variants = {n: (v, design.variant_key(v)) for n, v in servable}
            return Snapshot(
                id=opt.id, organization_id=opt.organization_id, status=opt.status,
                holdout_percentage=opt.holdout_percentage,
                context_dtypes={f["name"]: f["dtype"]
                                for f in opt.training_data_config["context_factors"]},
                variants=variants, baseline=variants[1], winner_number=opt.winner_number or 1,
                has_model=model is not None,
                model_version=model.version if model is not None else 0,
                managed=conn is not None and conn.provider == "duckdb",
                loaded_at=time.monotonic(), policy=self.versions.get(model, opt))
