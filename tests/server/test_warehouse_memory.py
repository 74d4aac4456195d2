"""The embedded DuckDB's memory cap, spill directory and threads (settings → driver)."""

from __future__ import annotations

import pytest

from levered_server.settings import Settings, settings_from_env
from levered_server.warehouse.base import ConnectionConfig
from levered_server.warehouse.duckdb_driver import DuckDBDriver
from levered_server.warehouse.manager import WarehouseManager


def test_settings_defaults_and_environment():
    s = Settings()
    assert s.warehouse_memory_limit == "512MB"
    assert 1 <= s.warehouse_threads <= 4
    s = settings_from_env({"LEVERED_WAREHOUSE_MEMORY_LIMIT": "1.5GB",
                           "LEVERED_WAREHOUSE_THREADS": "2"})
    assert (s.warehouse_memory_limit, s.warehouse_threads) == ("1.5GB", 2)
    assert settings_from_env({"LEVERED_WAREHOUSE_MEMORY_LIMIT": "2 GiB"}
                             ).warehouse_memory_limit == "2GiB"


@pytest.mark.parametrize("var,value", [("LEVERED_WAREHOUSE_MEMORY_LIMIT", "lots"),
                                       ("LEVERED_WAREHOUSE_MEMORY_LIMIT", "512"),
                                       ("LEVERED_WAREHOUSE_THREADS", "0"),
                                       ("LEVERED_WAREHOUSE_THREADS", "two")])
def test_bad_values_are_refused(var, value):
    with pytest.raises(ValueError, match=var):
        settings_from_env({var: value})


def _driver(tmp_path, settings: Settings) -> DuckDBDriver:
    options = WarehouseManager(settings, None, None).options  # type: ignore[arg-type]
    config = ConnectionConfig(organization_id="org-1", provider="duckdb", project_id=None,
                              dataset_id="managed_dw", exposures_table=None, credentials={})
    return DuckDBDriver(config, options=options)


def test_connections_are_capped_and_spill_inside_the_data_dir(tmp_path):
    driver = _driver(tmp_path, Settings(data_dir=tmp_path, warehouse_memory_limit="64MB",
                                        warehouse_threads=1))
    with driver.reader(10) as con:
        limit, threads, temp = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')").fetchone()
        assert limit in ("61.0 MiB", "64.0 MiB") and threads == 1
        assert temp == str(tmp_path / "warehouse" / "tmp" / "org-1")
        # far more distinct keys than 64 MB holds: the aggregation spills and completes
        n = con.execute("SELECT count(*) FROM (SELECT DISTINCT 'user-' || i FROM "
                        "range(4000000) t(i))").fetchone()[0]
        assert n == 4_000_000
        # the configuration stays locked for queries
        with pytest.raises(Exception, match="(?i)lock|configuration"):
            con.execute("SET memory_limit = '8GB'")
    with driver.writer() as con:  # same configuration for the writer of the same file
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1


def test_a_running_server_passes_the_settings_to_duckdb(server, org):
    if server.runtime.settings.managed_engine != "duckdb":
        pytest.skip("the managed warehouse is on PostgreSQL")
    driver = server.runtime.warehouses.managed(org.id)
    with driver.reader(10) as con:
        limit, temp = con.execute("SELECT current_setting('memory_limit'), "
                                  "current_setting('temp_directory')").fetchone()
    assert limit.endswith("MiB") and float(limit.split()[0]) <= 512
    assert temp.startswith(str(server.settings.data_dir))
