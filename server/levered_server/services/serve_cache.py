"""Policy snapshots for the serve path: what serving needs of an optimization, cached.

A request never waits for the database beyond the first load of an optimization:

- Every change this process makes (status, model, new version, connection) invalidates the
  snapshot, and the next request reloads it at once — a light load: one row of small columns per
  table (never the model's `state` JSON), the design rendering reused, the new version's policy
  already cached by the training that published it. So an in-process change takes effect for
  the very next request.
- Changes made by another process (another replica, the CLI on the same database) are picked
  up within `TTL` (1 s) plus one light load: a request that finds its snapshot older than `TTL`
  is answered from it while a background thread re-reads the stamp (status, winner, model,
  version, connection) and swaps in a new snapshot only if something changed.
- A version trained elsewhere has no policy here yet: the old version keeps serving (with its
  own `model_version`, so locks and exposures stay consistent) while the background thread
  rebuilds the new one from its state (in the fit worker process, `services/fit_worker.py`) and
  swaps it in when ready.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from typing import Any

from sqlalchemy import select

from levered_server.services import design
from levered_server.services.versions import DesignSource, Serving, VersionCache
from levered_server.store.models import Model, Optimization, WarehouseConnection
from levered_server.warehouse.manager import managed_providers

log = logging.getLogger("levered_server.serving")
TTL = 1.0  # a version published by another replica serves here within ~1-2 s


@dataclasses.dataclass(frozen=True)
class Rendering:
    """The design part of a snapshot: fixed for the life of an optimization."""

    context_dtypes: dict[str, str]
    variants: dict[int, tuple[dict[str, Any], str]]  # servable number → (variant, key)
    baseline: tuple[dict[str, Any], str]
    source: DesignSource


@dataclasses.dataclass(frozen=True)
class Stamp:
    """The small columns that decide whether a snapshot changed."""

    organization_id: str
    status: str
    winner_number: int | None
    model_id: str | None  # None also when the model is deleted
    model_type: str | None
    model_version: int
    managed: bool


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
    stamp: Stamp | None = None
    rendering: Rendering | None = None
    _texts: dict[int, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def render(self, number: int) -> tuple[dict[str, Any], str]:
        """The variant object and key of a number."""
        return self.variants.get(number) or self.baseline

    def variant_text(self, number: int) -> str:
        """The variant of a number as an exposure row stores it (JSON text), made once."""
        text = self._texts.get(number)
        if text is None:
            text = self._texts[number] = json.dumps(self.render(number)[0], ensure_ascii=False)
        return text


class ServeCache:
    """Snapshots by optimization id."""

    def __init__(self, store: Any, versions: VersionCache | None = None,
                 background: bool = True) -> None:
        self.store = store
        self.versions = versions or VersionCache()
        self.background = background
        self._items: dict[str, Snapshot] = {}
        self._invalid: set[str] = set()
        self._renderings: dict[str, Rendering] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()
        self._thread: threading.Thread | None = None

    def get(self, optimization_id: str) -> Snapshot | None:
        """The snapshot; loaded now if missing or invalidated, refreshed behind if stale."""
        snap = self._items.get(optimization_id)
        if snap is not None and optimization_id not in self._invalid:
            if time.monotonic() - snap.loaded_at >= TTL:
                self._refresh_later(optimization_id)
            return snap
        return self._refresh(optimization_id, wait_for_policy=snap is None)

    def invalidate(self, optimization_id: str | None = None) -> None:
        """Make the next request re-read one snapshot (or all): call after every change."""
        with self._lock:
            ids = list(self._items) if optimization_id is None else [optimization_id]
            for oid in ids:
                self._generation[oid] = self._generation.get(oid, 0) + 1
                self._invalid.add(oid)

    def reload(self, optimization_id: str) -> None:
        """Load an optimization's snapshot on the calling thread and swap it in: the publisher
        of a change calls this (after caching the new version's policy), so no request waits
        for the load; if it fails, the next request loads it as after `invalidate`."""
        with self._lock:
            self._generation[optimization_id] = self._generation.get(optimization_id, 0) + 1
        try:
            self._refresh(optimization_id, wait_for_policy=True)
        except Exception:  # noqa: BLE001 - the next request loads it and reports the error
            log.exception("cannot reload the serving snapshot of %s", optimization_id)
            self.invalidate(optimization_id)

    def served_versions(self) -> dict[str, int]:
        """The model version each loaded optimization is served with (read-only; /readyz)."""
        return {oid: snap.model_version for oid, snap in list(self._items.items())}

    def close(self) -> None:
        """Stop the background refresher."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)
            self._thread = None

    # -- loading -------------------------------------------------------------------------

    def _refresh(self, optimization_id: str, *, wait_for_policy: bool) -> Snapshot | None:
        """Re-read the stamp and store the new snapshot (unless invalidated meanwhile)."""
        with self._lock:
            generation = self._generation.get(optimization_id, 0)
            self._invalid.discard(optimization_id)
        old = self._items.get(optimization_id)
        try:
            snap = self._load(optimization_id, old, wait_for_policy=wait_for_policy)
        except Exception:
            with self._lock:  # try again on the next request
                if self._generation.get(optimization_id, 0) == generation and old is not None:
                    self._invalid.add(optimization_id)
            raise
        with self._lock:
            if self._generation.get(optimization_id, 0) != generation:
                return snap  # changed while loading: answer with it, keep it invalid
            if snap is None:
                self._items.pop(optimization_id, None)
                self._renderings.pop(optimization_id, None)
            else:
                self._items[optimization_id] = snap
        return snap

    def _refresh_later(self, optimization_id: str) -> None:
        if not self.background:
            self._refresh(optimization_id, wait_for_policy=True)
            return
        with self._lock:
            if optimization_id in self._queued:
                return
            self._queued.add(optimization_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="levered-serve-refresh",
                                                daemon=True)
                self._thread.start()
        self._queue.put(optimization_id)

    def _run(self) -> None:
        while True:
            optimization_id = self._queue.get()
            if optimization_id is None:
                return
            with self._lock:
                self._queued.discard(optimization_id)
            try:
                self._refresh(optimization_id, wait_for_policy=True)
            except Exception:  # noqa: BLE001 - the stale snapshot serves; the next one retries
                log.exception("cannot refresh the serving snapshot of %s", optimization_id)

    def _stamp(self, conn: Any, optimization_id: str) -> Stamp | None:
        row = conn.execute(select(
            Optimization.organization_id, Optimization.status, Optimization.winner_number,
            Model.id, Model.model_type, Model.version, Model.deleted_at,
        ).outerjoin(Model, Model.id == Optimization.model_id).where(
            Optimization.id == optimization_id)).first()
        if row is None:
            return None
        org_id, status, winner, model_id, model_type, version, deleted_at = row
        if model_id is None or deleted_at is not None:
            model_id, model_type, version = None, None, 0
        provider = conn.execute(select(WarehouseConnection.provider).where(
            WarehouseConnection.organization_id == org_id)).scalar()
        return Stamp(org_id, status, winner, model_id, model_type, int(version or 0),
                     provider in managed_providers())

    def _rendering(self, conn: Any, optimization_id: str) -> Rendering:
        found = self._renderings.get(optimization_id)
        if found is not None:
            return found
        config, excluded, holdout = conn.execute(select(
            Optimization.training_data_config, Optimization.excluded_combinations,
            Optimization.holdout_percentage).where(Optimization.id == optimization_id)).one()
        servable = design.servable_variants(config["design_factors"], excluded)
        variants = {n: (v, design.variant_key(v)) for n, v in servable}
        rendering = Rendering(
            context_dtypes={f["name"]: f["dtype"] for f in config["context_factors"]},
            variants=variants, baseline=variants[1],
            source=DesignSource(config, list(excluded or []), int(holdout)))
        self._renderings[optimization_id] = rendering
        return rendering

    def _load(self, optimization_id: str, old: Snapshot | None, *,
              wait_for_policy: bool) -> Snapshot | None:
        with self.store.engine.connect() as conn:
            stamp = self._stamp(conn, optimization_id)
            if stamp is None:
                return None
            if old is not None and old.stamp == stamp:
                return dataclasses.replace(old, loaded_at=time.monotonic())
            rendering = self._rendering(conn, optimization_id)
            policy, version = self._policy(conn, stamp, rendering, old, wait_for_policy)
        return Snapshot(
            id=optimization_id, organization_id=stamp.organization_id, status=stamp.status,
            holdout_percentage=rendering.source.holdout_percentage,
            context_dtypes=rendering.context_dtypes, variants=rendering.variants,
            baseline=rendering.baseline, winner_number=stamp.winner_number or 1,
            has_model=stamp.model_id is not None, model_version=version,
            managed=stamp.managed, loaded_at=time.monotonic(), policy=policy,
            stamp=dataclasses.replace(stamp, model_version=version), rendering=rendering)

    def _policy(self, conn: Any, stamp: Stamp, rendering: Rendering, old: Snapshot | None,
                wait_for_policy: bool) -> tuple[Serving | None, int]:
        """The policy of the stamp's version and that version; while a version trained by
        another process is being rebuilt, the old snapshot's (with its own version)."""
        if stamp.model_id is None or stamp.model_version <= 0:
            return None, stamp.model_version
        cached = self.versions.cached(stamp.model_id, stamp.model_version)
        if cached is not None:
            return cached, stamp.model_version
        same_model = old is not None and old.stamp is not None and \
            old.stamp.model_id == stamp.model_id
        if not wait_for_policy and same_model and self.background:
            assert old is not None
            self._refresh_later(old.id)  # rebuild behind; the old version serves meanwhile
            return old.policy, old.model_version
        state = conn.execute(select(Model.state).where(Model.id == stamp.model_id)).scalar()
        assert stamp.model_type is not None
        built = self.versions.build(stamp.model_id, stamp.model_type, stamp.model_version, state,
                                    rendering.source)
        return built, stamp.model_version
