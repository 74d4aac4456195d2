"""What a running app holds: settings, the store, warehouses, the serve log."""

from __future__ import annotations

import gc
import logging
from typing import Any

from levered_server.replica import Replica, startup_line
from levered_server.secretbox import SecretBox
from levered_server.settings import Settings
from levered_server.store import Store, open_store

log = logging.getLogger("levered_server")


class Runtime:
    """Started by the app's lifespan; routes reach it through `api.deps`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None
        self.first_start: dict[str, Any] | None = None
        self.secrets: SecretBox | None = None
        self.warehouses: Any = None
        self.exposures: Any = None
        self.serve_log: Any = None
        self.outbox: Any = None
        self.serve_cache: Any = None
        self.locks: Any = None
        self.versions: Any = None
        self.fits: Any = None
        self.trainer: Any = None
        self.stalls: Any = None
        self.replica = Replica.of(settings)
        self.started = False  # /readyz: true between the end of start() and stop()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("runtime not started")
        return self._store

    def start(self) -> None:
        """Migrate the store, initialize on first start, start background writers."""
        from levered_server.bootstrap import ensure_initialized
        from levered_server.keycheck import verify_secret_key
        from levered_server.services.fit_worker import FitPool
        from levered_server.services.outbox import OutboxMover
        from levered_server.services.scheduler import Trainer
        from levered_server.services.serve_cache import ServeCache
        from levered_server.services.serve_log import ServeLog
        from levered_server.services.versions import VersionCache
        from levered_server.store.locks import LockStore
        from levered_server.warehouse.manager import WarehouseManager

        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        # A missing or wrong secret key stops the start here, not as 500s on warehouse calls.
        secrets = SecretBox.from_settings(self.settings)
        self._store = open_store(self.settings.sqlalchemy_url)
        try:
            verify_secret_key(self._store, secrets)
        except Exception:
            self._store.dispose()
            raise
        self.secrets = secrets
        self.first_start = ensure_initialized(store=self._store, settings=self.settings)
        if self.first_start:
            log.warning("first start: created organization %r and admin user %s "
                        "(one-time password: %s). Log in with `levered login --api-url %s`, or create "
                        "an API key with `levered server api-key create --data-dir %s`.",
                        self.first_start["name"], self.first_start["admin_email"],
                        self.first_start["admin_password"], self.settings.public_url,
                        self.settings.data_dir)
        self.warehouses = WarehouseManager(self.settings, self._store, self.secrets)
        self.warehouses.start()
        self.fits = FitPool()
        self.versions = VersionCache(self.fits)
        self.serve_cache = ServeCache(self._store, self.versions)
        self.locks = LockStore(self._store)
        self.outbox = OutboxMover(self._store, self.warehouses)
        self.serve_log = ServeLog(self.locks, self.outbox,
                                  write_behind_seconds=self.settings.serve_write_behind_seconds)
        self.exposures = self.serve_log  # readers flush it so answered serves are visible
        self.serve_log.start()
        self.outbox.start()
        _tune_gc()
        self.trainer = Trainer(self)
        self.trainer.start()
        if self.settings.stall_trace_ms > 0:
            from levered_server.stalls import StallWatch

            self.stalls = StallWatch(self.settings.stall_trace_ms)
            self.stalls.start()
            self.serve_log.slow_seconds = self.settings.stall_trace_ms / 1000
            self.trainer.trace = True
        self.started = True
        log.info("%s", startup_line(self.settings, self.replica))

    def stop(self) -> None:
        """Stop automatic training, flush queued exposures, then close connections."""
        self.started = False
        if self.stalls is not None:
            self.stalls.stop()
        if self.trainer is not None:
            self.trainer.stop()
        if self.serve_cache is not None:
            self.serve_cache.close()
        if self.fits is not None:
            self.fits.close()
        if self.serve_log is not None:
            self.serve_log.stop()
        if self.outbox is not None:
            self.outbox.stop()
        if self.locks is not None:
            self.locks.close()
        if self.warehouses is not None:
            self.warehouses.close()
        if self._store is not None:
            self._store.dispose()


GC_THRESHOLDS = (10_000, 20, 20)


def _tune_gc() -> None:
    """Keep garbage collection pauses off the serve path's tail.

    The app, its libraries and their modules are ~170,000 tracked objects that live as long as
    the process; a full collection walks them all (70-100 ms on a 2-core box) and blocks every
    request meanwhile. They are frozen once started, so a full collection only walks what was
    allocated since (~20,000 objects, a few ms). With the default young threshold (700) the
    rows a serve queues for the lock and exposure writers (flushed every ~0.5 s) survive young
    collections and trigger a full one several times a second at 500 requests/s; 10,000 lets
    them die young (reference counting frees almost everything else anyway).
    """
    # The modules that a first training or serve would otherwise import later.
    import levered_server.services.models  # noqa: F401
    import levered_server.services.serving  # noqa: F401

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
