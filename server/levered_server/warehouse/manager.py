"""Finding each organization's warehouse driver (entry points) from its saved connection."""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from typing import Any

from sqlalchemy import select

from levered_server.errors import StartRefused
from levered_server.secretbox import SecretBox
from levered_server.settings import MANAGED_ENGINES, Settings
from levered_server.store import Store
from levered_server.store.models import WarehouseConnection
from levered_server.warehouse.driver_api import (
    CONTRACT_VERSION,
    ENTRY_POINT_GROUP,
    LEGACY_ENTRY_POINT_GROUP,
    ConnectionConfig,
    DriverNotInstalled,
    WarehouseDriver,
    WarehouseFailure,
)
from levered_server.warehouse.managed_tables import EXPOSURES, SCHEMA

log = logging.getLogger("levered_server.warehouse")
# Providers whose drivers ship as extras of levered-server: the command that installs each.
INSTALL_HINTS = {"bigquery": "pip install 'levered-server[bigquery]'",
                 "clickhouse": "pip install 'levered-server[clickhouse]'",
                 "snowflake": "pip install 'levered-server[snowflake]'"}
_CLASSES: dict[str, type[WarehouseDriver]] = {}
_BROKEN: dict[str, str] = {}  # provider → why its registered driver cannot be used
_CLASSES_LOCK = threading.Lock()


def _load() -> None:
    """Read both entry-point groups once: v1 first, a legacy name only if v1 lacks it."""
    groups = importlib.metadata.entry_points()
    for group in (ENTRY_POINT_GROUP, LEGACY_ENTRY_POINT_GROUP):
        for ep in groups.select(group=group):
            if ep.name in _CLASSES or ep.name in _BROKEN:
                continue
            try:
                cls = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the server
                _BROKEN[ep.name] = f"the {ep.name} driver ({ep.value}) failed to load: {exc}"
                log.warning("%s", _BROKEN[ep.name])
                continue
            version = getattr(cls, "contract_version", None)
            if not (isinstance(cls, type) and issubclass(cls, WarehouseDriver)) \
                    or version != CONTRACT_VERSION:
                _BROKEN[ep.name] = (f"the {ep.name} driver ({ep.value}) implements driver "
                                    f"contract {version!r}; this server speaks "
                                    f"{CONTRACT_VERSION}")
                log.warning("%s", _BROKEN[ep.name])
                continue
            if group == LEGACY_ENTRY_POINT_GROUP:
                log.warning("the %s driver (%s) is registered under the deprecated entry-point "
                            "group %s; register it under %s (docs/warehouse-drivers.md)",
                            ep.name, ep.value, LEGACY_ENTRY_POINT_GROUP, ENTRY_POINT_GROUP)
            _CLASSES[ep.name] = cls


def driver_classes() -> dict[str, type[WarehouseDriver]]:
    """Installed drivers by provider name, loaded once from the entry points."""
    with _CLASSES_LOCK:
        if not _CLASSES and not _BROKEN:
            _load()
        return dict(_CLASSES)


def known_providers() -> list[str]:
    """Providers a connection may name: the installed drivers', and those with a known
    install command."""
    return sorted(set(driver_classes()) | set(INSTALL_HINTS) | set(_BROKEN))


def missing_driver(provider: str) -> str | None:
    """Why `provider` has no usable driver here, naming the command that installs one; None
    when it has one."""
    cls = driver_classes().get(provider)
    if cls is not None:
        return cls.missing()
    if provider in _BROKEN:
        return _BROKEN[provider]
    hint = INSTALL_HINTS.get(provider)
    how = f"; install it with `{hint}`" if hint else \
        f" (register one under the {ENTRY_POINT_GROUP} entry points)"
    return f"no {provider} driver is installed on this server{how}"


def managed_providers() -> list[str]:
    """The providers that name the server's own (managed) warehouse (`duckdb` in the API)."""
    return sorted(name for name, cls in driver_classes().items() if cls.managed)


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
        from levered_server.warehouse.duckdb_files import close_writers

        close_writers()
        if "managed_postgres" in self.options:
            self.options["managed_postgres"].close()

    def driver_class(self, provider: str) -> type[WarehouseDriver] | None:
        """The class that would serve a connection of `provider` (for the managed warehouse,
        the engine's per the settings); None when none is installed."""
        cls = driver_classes().get(provider)
        if cls is not None and cls.managed:
            return self._managed_class()
        return cls

    def build(self, config: ConnectionConfig) -> WarehouseDriver:
        """A driver for a connection configuration.

        :raises DriverNotInstalled: no usable driver for the provider (the message says how
            to install one).
        """
        problem = missing_driver(config.provider)
        if problem is not None:
            raise DriverNotInstalled(problem)
        cls = driver_classes()[config.provider]
        if cls.managed:  # the managed warehouse, on the engine the settings name
            managed: WarehouseDriver = self.managed(config.organization_id)
            return managed
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
                                  dataset_id=SCHEMA, exposures_table=EXPOSURES,
                                  credentials={})
        return self._managed_class()(config, options=self.options)

    def _managed_class(self) -> type[WarehouseDriver]:
        if self.engine == "postgres":
            from levered_server.warehouse.managed_postgres import ManagedPostgresDriver

            return ManagedPostgresDriver
        from levered_server.warehouse.duckdb_driver import DuckDBDriver

        return DuckDBDriver
