"""Replicas that start together on an empty PostgreSQL schema migrate it once, without error."""

from __future__ import annotations

import concurrent.futures

import pytest

from levered_server.store import open_store
from tests.server.conftest import PG_URL, database_url

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL does not answer on 127.0.0.1:5432")


def test_four_stores_migrate_one_fresh_schema_at_once():
    with database_url("postgres") as url:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            stores = list(pool.map(lambda _: open_store(url), range(4)))
        try:
            with stores[0].engine.connect() as conn:
                heads = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            assert len(heads) == 1
        finally:
            for s in stores:
                s.dispose()
