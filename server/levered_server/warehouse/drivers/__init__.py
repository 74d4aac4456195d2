"""Drivers for warehouses reached through their vendor's Python client, shipped as extras.

Each module imports its client library only when it connects, so it registers (and can name
the missing extra) without it: ``pip install 'levered-server[clickhouse]'``, ``[snowflake]``,
``[bigquery]``. docs/warehouse-drivers.md has each one's read-only layers and test engine.
"""

from __future__ import annotations

import importlib.metadata
from typing import ClassVar

from levered_server.warehouse.driver_api import WarehouseDriver


def client_version(distribution: str) -> str:
    """The installed version of a vendor client (shown as the connection's driver version)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class VendorClientDriver(WarehouseDriver):
    """A driver whose connection and version are its vendor's client library's."""

    #: The client's distribution name (`pip install <it>`), shown as the connection's driver.
    client_distribution: ClassVar[str] = ""

    @classmethod
    def describe_driver(cls) -> tuple[str, str]:
        """The vendor client and its version: what talks to the warehouse."""
        return cls.client_distribution, client_version(cls.client_distribution)
