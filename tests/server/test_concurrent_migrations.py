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


def test_replicas_starting_together_create_one_default_organization(tmp_path):
    from levered_server.bootstrap import ensure_initialized
    from tests.server.conftest import make_settings

    with database_url("postgres") as url:
        store = open_store(url)
        settings = make_settings(tmp_path, url)
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                made = list(pool.map(lambda _: ensure_initialized(store=store, settings=settings),
                                     range(4)))
            assert sum(m is not None for m in made) == 1
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM organizations").scalar() == 1
        finally:
            store.dispose()
