"""Finding each organization's warehouse driver (stevedore) from its saved connection."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import select

from levered_server.errors import StartRefused
from levered_server.secretbox import SecretBox
from levered_server.settings import MANAGED_ENGINES, Settings
from levered_server.store import Store
from levered_server.store.models import WarehouseConnection
from levered_server.warehouse.base import NAMESPACE, ConnectionConfig, WarehouseDriver, WarehouseFailure

log = logging.getLogger("levered_server.warehouse")
_CLASSES: dict[str, type[WarehouseDriver]] = {}
_CLASSES_LOCK = threading.Lock()


def driver_classes() -> dict[str, type[WarehouseDriver]]:
    """Installed drivers by provider name, loaded once through stevedore."""
    with _CLASSES_LOCK:
        if not _CLASSES:
            from stevedore import ExtensionManager

            mgr: ExtensionManager[Any] = ExtensionManager(NAMESPACE, invoke_on_load=False,
                                   on_load_failure_callback=lambda *_a: None)
            _CLASSES.update({ext.name: ext.plugin for ext in mgr})
        return dict(_CLASSES)


def check_managed_warehouse(settings: Settings) -> None:
    """Refuse a start whose managed warehouse cannot work (before the app starts, so the
    operator gets one line, not a traceback from the app's lifespan).

    :raises StartRefused: a bad setting, or on PostgreSQL a user that may not create warehouses.
    """
    if settings.managed_engine != "postgres":
        return
    from levered_server.warehouse.pg_warehouses import PgWarehouses

    try:
        warehouses = PgWarehouses(settings.managed_warehouse_url, None,
                                  timeout=settings.query_timeout_seconds)
    except ValueError as exc:
        raise StartRefused(str(exc)) from None
    _refuse_unusable(warehouses)


def _refuse_unusable(warehouses: Any) -> None:
    try:
        problem = warehouses.check()
    except WarehouseFailure as exc:  # unreachable now: each use reports it
        log.warning("cannot check the managed warehouse's PostgreSQL server: %s", exc.message)
        return
    if problem:
        raise StartRefused(problem)


class WarehouseManager:
    """Builds drivers for organizations; knows which engine holds the managed warehouses."""

    def __init__(self, settings: Settings, store: Store, secrets: SecretBox) -> None:
        self.settings = settings
        self.store = store
        self.secrets = secrets
        self.options: dict[str, Any] = {"warehouse_dir": str(settings.warehouse_dir),
                                        "memory_limit": settings.warehouse_memory_limit,
                                        "threads": settings.warehouse_threads}
        self.engine = settings.managed_engine
        if self.engine not in MANAGED_ENGINES:
            raise StartRefused(f"LEVERED_MANAGED_WAREHOUSE: one of {', '.join(MANAGED_ENGINES)}, "
                               f"got {self.engine!r}")
        if self.engine == "postgres":
            from levered_server.warehouse.pg_warehouses import PgWarehouses

            try:
                url = settings.managed_warehouse_url
            except ValueError as exc:
                raise StartRefused(str(exc)) from None
            self.options["managed_postgres"] = PgWarehouses(
                url, secrets, timeout=settings.query_timeout_seconds)

    def start(self) -> None:
        """Check the managed warehouse's engine can be used; say what it leaves unread.

        :raises StartRefused: on PostgreSQL, the server's user may not create warehouses.
        """
        if self.engine != "postgres":
            return
        files = sorted(p.name for p in self.settings.warehouse_dir.glob("*.duckdb"))
        if files:
            shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
            log.warning("the managed warehouse is on PostgreSQL; the %d DuckDB warehouse file(s) in "
                        "%s are not read or written (%s). To keep using them, set "
                        "LEVERED_MANAGED_WAREHOUSE=duckdb.", len(files),
                        self.settings.warehouse_dir, shown)
        _refuse_unusable(self.options["managed_postgres"])

    def close(self) -> None:
        """Close the warehouses' cached connections."""
        from levered_server.warehouse.duckdb_driver import close_writers

        close_writers()
        if "managed_postgres" in self.options:
            self.options["managed_postgres"].close()

    def build(self, config: ConnectionConfig) -> WarehouseDriver:
        """A driver for a connection configuration.

        :raises WarehouseFailure: no driver is installed for the provider.
        """
        if config.provider == "duckdb":  # the contract's name of the managed warehouse
            managed: WarehouseDriver = self.managed(config.organization_id)
            return managed
        cls = driver_classes().get(config.provider)
        if cls is None:
            raise WarehouseFailure(f"no {config.provider} driver is installed on this server")
        return cls(config, options=self.options)

    def config_of(self, row: WarehouseConnection) -> ConnectionConfig:
        """Decrypt a saved connection into a driver configuration."""
        creds = self.secrets.open(row.credentials_encrypted) if row.credentials_encrypted else {}
        return ConnectionConfig(organization_id=row.organization_id, provider=row.provider,
                                project_id=row.project_id, dataset_id=row.dataset_id,
                                exposures_table=row.exposures_table, credentials=creds)

    def for_org(self, org_id: str) -> WarehouseDriver | None:
        """The organization's driver, or None when it has no connection."""
        with self.store.session(org_id) as s:
            row = s.scalars(select(WarehouseConnection)).first()
            if row is None:
                return None
            config = self.config_of(row)
        return self.build(config)

    def managed(self, org_id: str) -> Any:
        """The organization's managed warehouse, on DuckDB or PostgreSQL per the settings
        (kept even while another provider is used)."""
        config = ConnectionConfig(organization_id=org_id, provider="duckdb", project_id=None,
                                  dataset_id="managed_dw", exposures_table="managed_dw.exposures",
                                  credentials={})
        if self.engine == "postgres":
            from levered_server.warehouse.managed_postgres import ManagedPostgresDriver

            return ManagedPostgresDriver(config, options=self.options)
        from levered_server.warehouse.duckdb_driver import DuckDBDriver

        return DuckDBDriver(config, options=self.options)
