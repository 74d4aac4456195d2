"""The driver contract's names under their former module (`driver_api` is the public one)."""

from __future__ import annotations

from levered_server.warehouse.driver_api import (
    LEGACY_ENTRY_POINT_GROUP as NAMESPACE,
)
from levered_server.warehouse.driver_api import (
    Cancel,
    ColumnSet,
    ConnectionConfig,
    DriverNotInstalled,
    NotReadOnly,
    ResultSet,
    SqlRejected,
    TableNotFound,
    WarehouseDriver,
    WarehouseFailure,
    pick_table,
)

__all__ = ["NAMESPACE", "Cancel", "ColumnSet", "ConnectionConfig", "DriverNotInstalled",
           "NotReadOnly", "ResultSet", "SqlRejected", "TableNotFound", "WarehouseDriver",
           "WarehouseFailure", "pick_table"]
