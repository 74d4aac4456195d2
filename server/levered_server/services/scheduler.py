"""Automatic training (API.md 8.1): a background thread of the server process.

A `live` optimization with new data is trained when `LEVERED_TRAIN_INTERVAL_MINUTES` have passed
since its last run, or as soon as `LEVERED_TRAIN_EVERY_SERVES` non-dry-run serves were answered
since then. New data = serves or ingested events since the last run (a bring-your-own warehouse
is filled behind our back, so it always counts as new). Serving only bumps a counter; training
runs on this thread (at a lower CPU priority, `background.py`), one model at a time, and never
waits for a request or makes one wait for it: the warehouse query runs here (DuckDB releases the
GIL while it executes; its result comes back as numpy columns), the cells, the fit and the state
JSON in the fit worker process (`services/fit_worker.py`), which this thread starts with the
server.

Under heavy traffic `LEVERED_TRAIN_EVERY_SERVES` could keep a model training back to back; an
automatic run of a model therefore waits at least `COOLDOWN_FACTOR` times the duration of its
previous automatic run after that run ended (training takes at most ~1/(1 + factor) of the
time per model). The serves keep counting, so the delayed run sees all of them. A model that
another replica (or worker) is training is looked at again after `BUSY_RETRY_SECONDS`: its
run, once recorded, counts as this process's run too (`Trainer._due`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from sqlalchemy import select

from levered_server.background import lower_thread_priority
from levered_server.clock import as_utc
from levered_server.errors import TrainingInProgress
from levered_server.schemas.optimizations import TrainRequest
from levered_server.store.models import Model, Optimization, WarehouseConnection
from levered_server.warehouse.manager import managed_providers

log = logging.getLogger("levered_server.training")
COOLDOWN_FACTOR = 4.0
# Retrying at once made a replica whose serves kept coming re-check the models and re-try the
# lease at nearly every serve while another trained: about half of its trainer thread's GIL
# time (docs/benchmarks.md, "Sixth pass").
BUSY_RETRY_SECONDS = 1.0


class Trainer:
    """Decides which models are due and trains them, one at a time."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.interval = float(runtime.settings.train_interval_minutes) * 60
        self.every = int(runtime.settings.train_every_serves)
        self._serves: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._dirty: dict[str, float] = {}
        self._not_before: dict[str, float] = {}  # optimization id → end of its cooldown
        self._started = time.monotonic()
        # Stall tracing (`runtime.py`) logs each automatic run with its duration, so that slow
        # serve commits can be matched to the runs they overlap (bench/serve/open_model.py).
        self.trace = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread: warm the serving policies, then train what is due."""
        self._thread = threading.Thread(target=self._loop, name="levered-trainer", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 60.0) -> None:
        """Stop after the run in progress, if any."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait)

    def served(self, optimization_id: str) -> None:
        """Count one non-dry-run serve (the hot path: a dict update, maybe a wake-up)."""
        n = self._serves.get(optimization_id, 0) + 1
        self._serves[optimization_id] = n
        if 0 < self.every <= n and not self._wake.is_set() and \
                time.monotonic() >= self._not_before.get(optimization_id, 0.0):
            self._wake.set()

    def new_data(self, organization_id: str) -> None:
        """Ingested events may change every optimization of the organization."""
        self._dirty[organization_id] = time.monotonic()

    def ran(self, optimization_id: str) -> None:
        """A run (of any trigger) starts now: its data is no longer new."""
        self._serves[optimization_id] = 0
        self._last[optimization_id] = time.monotonic()

    def warm(self) -> None:
        """Load the serving snapshots of live optimizations, so that rebuilding a trained
        version's policy after a restart happens here and not in a serve request."""
        with self.runtime.store.system_session() as s:
            ids = list(s.scalars(select(Optimization.id).where(Optimization.status == "live")))
        for optimization_id in ids:
            if self._stop.is_set():
                return
            try:
                self.runtime.serve_cache.get(optimization_id)
            except Exception:  # noqa: BLE001 - serving will try again and report it
                log.exception("cannot load the policy of optimization %s", optimization_id)

    def prestart(self) -> None:
        """Start the fit worker ahead of the first training or policy rebuild."""
        fits = getattr(self.runtime, "fits", None)
        if fits is None:
            return
        try:
            fits.prestart()
        except Exception:  # noqa: BLE001 - the first job starts a worker again and reports
            log.exception("cannot start the fit worker")

    def _loop(self) -> None:
        lower_thread_priority()  # serving first: this thread only trains and warms caches
        self.prestart()
        tick = min(30.0, max(0.2, self.interval / 4)) if self.interval > 0 else 30.0
        self.warm()
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.interval <= 0 and self.every <= 0:
                continue
            try:
                self.run_due()
            except Exception:  # noqa: BLE001 - the thread must survive a bad round
                log.exception("automatic training round failed")

    def due(self) -> list[tuple[str, str, str]]:
        """(organization id, model id, trigger) of the models to train now."""
        return [(org, model, trigger) for org, model, trigger, _ in self._due()]

    def _due(self) -> list[tuple[str, str, str, str]]:
        now = time.monotonic()
        out = []
        with self.runtime.store.system_session() as s:
            # Columns, not entities: a model row's `state` is ~1 MB of JSON to decode.
            rows = s.execute(select(Optimization.id, Optimization.organization_id, Model.id,
                                    Model.last_run, Model.created_at).join(
                Model, Model.id == Optimization.model_id).where(
                Optimization.status == "live", Model.deleted_at.is_(None))).all()
            managed = {c.organization_id for c in s.scalars(select(WarehouseConnection).where(
                WarehouseConnection.provider.in_(managed_providers()))).all()}
            for opt_id, org_id, model_id, last_run, created_at in rows:
                if now < self._not_before.get(opt_id, 0.0):
                    continue  # cooling down after its last automatic run
                # The last run recorded by any replica counts as this one's last run too
                # (serves counted here before it started were trained on), so N replicas
                # do not each train the same model on their own schedule.
                recorded = self._since(last_run, created_at, now)
                last = self._last.get(opt_id)
                if last is None or (last_run and recorded > last + 1.0):
                    last = self._last[opt_id] = recorded
                    if last_run:
                        self._serves[opt_id] = 0
                serves = self._serves.get(opt_id, 0)
                if 0 < self.every <= serves:
                    out.append((org_id, model_id, "serves", opt_id))
                    continue
                fresh = (serves > 0 or org_id not in managed
                         or self._dirty.get(org_id, -1.0) > last)
                if self.interval > 0 and fresh and now - last >= self.interval:
                    out.append((org_id, model_id, "schedule", opt_id))
        return out

    @staticmethod
    def _since(last_run: dict[str, Any] | None, created_at: dt.datetime, now: float) -> float:
        # The last run recorded by any process (else the model's creation), on this clock.
        started = (last_run or {}).get("started_at")
        when = (dt.datetime.fromisoformat(started.replace("Z", "+00:00")) if started
                else as_utc(created_at))
        return now - max((dt.datetime.now(dt.UTC) - when).total_seconds(), 0.0)

    def run_due(self) -> None:
        """Train every due model, stopping early on shutdown."""
        from levered_server.services import models

        for org_id, model_id, trigger, optimization_id in self._due():
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                models.train(runtime=self.runtime, org_id=org_id, model_id=model_id,
                             body=TrainRequest(), trigger=trigger)
            except TrainingInProgress:
                self._not_before[optimization_id] = time.monotonic() + BUSY_RETRY_SECONDS
                continue
            except Exception as exc:  # noqa: BLE001 - recorded on the model as a failed run
                log.warning("automatic training of model %s failed: %s", model_id, exc)
            ended = time.monotonic()
            self._not_before[optimization_id] = ended + COOLDOWN_FACTOR * (ended - started)
            if self.trace:
                log.warning("automatic training of model %s ran %.0f ms", model_id,
                            (ended - started) * 1000)
