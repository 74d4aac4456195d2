"""What a running app holds: settings, the store, warehouses, the exposure writer."""

from __future__ import annotations

import gc
import logging
from typing import Any

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
        self.serve_cache: Any = None
        self.locks: Any = None
        self.versions: Any = None
        self.fits: Any = None
        self.trainer: Any = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("runtime not started")
        return self._store

    def start(self) -> None:
        """Migrate the store, initialize on first start, start background writers."""
        from levered_server.bootstrap import ensure_initialized
        from levered_server.services.fit_worker import FitPool
        from levered_server.services.scheduler import Trainer
        from levered_server.services.serve_cache import ServeCache
        from levered_server.services.versions import VersionCache
        from levered_server.store.locks import LockBuffer
        from levered_server.warehouse.exposure_writer import ExposureWriter
        from levered_server.warehouse.manager import WarehouseManager

        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._store = open_store(self.settings.sqlalchemy_url)
        self.first_start = ensure_initialized(store=self._store, settings=self.settings)
        if self.first_start:
            log.warning("first start: created organization %r and admin user %s "
                        "(one-time password: %s). Log in with `levered login --api-url %s`, or create "
                        "an API key with `levered server api-key create --data-dir %s`.",
                        self.first_start["name"], self.first_start["admin_email"],
                        self.first_start["admin_password"], self.settings.public_url,
                        self.settings.data_dir)
        self.secrets = SecretBox.for_settings(self.settings.secret_key, self.settings.data_dir)
        self.warehouses = WarehouseManager(self.settings, self._store, self.secrets)
        self.fits = FitPool()
        self.versions = VersionCache(self.fits)
        self.serve_cache = ServeCache(self._store, self.versions)
        self.locks = LockBuffer(self._store)
        self.exposures = ExposureWriter(self.warehouses, self.settings.exposure_flush_seconds,
                                        before_flush=self.locks.flush)
        self.exposures.start()
        _tune_gc()
        self.trainer = Trainer(self)
        self.trainer.start()

    def stop(self) -> None:
        """Stop automatic training, flush queued exposures, then close connections."""
        if self.trainer is not None:
            self.trainer.stop()
        if self.serve_cache is not None:
            self.serve_cache.close()
        if self.fits is not None:
            self.fits.close()
        if self.exposures is not None:
            self.exposures.stop()
        from levered_server.warehouse.duckdb_driver import close_writers

        close_writers()
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
