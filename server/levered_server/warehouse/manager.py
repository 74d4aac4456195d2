"""Finding each organization's warehouse driver (stevedore) from its saved connection."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from levered_server.secretbox import SecretBox
from levered_server.settings import Settings
from levered_server.store import Store
from levered_server.store.models import WarehouseConnection
from levered_server.warehouse.base import NAMESPACE, ConnectionConfig, WarehouseDriver, WarehouseFailure

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


class WarehouseManager:
    """Builds drivers for organizations; knows where managed DuckDB files live."""

    def __init__(self, settings: Settings, store: Store, secrets: SecretBox) -> None:
        self.settings = settings
        self.store = store
        self.secrets = secrets
        self.options: dict[str, Any] = {"warehouse_dir": str(settings.warehouse_dir),
                                        "memory_limit": settings.warehouse_memory_limit,
                                        "threads": settings.warehouse_threads}

    def build(self, config: ConnectionConfig) -> WarehouseDriver:
        """A driver for a connection configuration.

        :raises WarehouseFailure: no driver is installed for the provider.
        """
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
        """The organization's embedded DuckDB (kept even while another provider is used)."""
        from levered_server.warehouse.duckdb_driver import DuckDBDriver

        config = ConnectionConfig(organization_id=org_id, provider="duckdb", project_id=None,
                                  dataset_id="managed_dw", exposures_table="managed_dw.exposures",
                                  credentials={})
        return DuckDBDriver(config, options=self.options)
