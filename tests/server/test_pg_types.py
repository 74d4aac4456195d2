"""Bring-your-own PostgreSQL: result columns carry type names, never raw OIDs."""

from __future__ import annotations

import uuid

import pytest

from tests.server.conftest import PG_URL, pg_exec
from tests.server.factories import connect_postgres

pytestmark = pytest.mark.skipif(not PG_URL, reason="LEVERED_TEST_POSTGRES_URL not set")


@pytest.fixture
def byo(org):
    schema = "byo_" + uuid.uuid4().hex[:10]
    pg_exec(f"CREATE SCHEMA {schema}")
    pg_exec(f"CREATE TYPE {schema}.mood AS ENUM ('sad', 'happy')")
    pg_exec(f"CREATE DOMAIN {schema}.score AS int4 CHECK (VALUE >= 0)")
    connect_postgres(org, schema)
    yield org
    org.post("/api/v2/warehouse/connections", json={"provider": "duckdb"})
    pg_exec(f"DROP SCHEMA {schema} CASCADE")


def test_query_columns_have_type_names(byo):
    sql = ("SELECT pg_sleep(0) AS slept, 1::int4 AS i, ARRAY[1, 2] AS ints, 'x'::varchar(5) AS v, "
           "now() AS t, '{\"a\": 1}'::jsonb AS j, 'happy'::mood AS m, ARRAY['sad']::mood[] AS moods, "
           "3::score AS s, '(1,2)'::point AS p")
    resp = byo.post("/api/v2/warehouse/query", json={"sql": sql})
    assert resp.status_code == 200, resp.text
    types = {c["name"]: c["type"] for c in resp.json()["columns"]}
    assert types == {"slept": "VOID", "i": "INT4", "ints": "INT4[]", "v": "VARCHAR",
                     "t": "TIMESTAMPTZ", "j": "JSONB", "m": "MOOD", "moods": "MOOD[]",
                     "s": "INT4", "p": "POINT"}
    assert not any(t.isdigit() for t in types.values())
    row = resp.json()["rows"][0]
    assert row["i"] == 1 and row["ints"] == [1, 2] and row["m"] == "happy"


def test_described_columns_have_type_names(byo, server):
    driver = server.runtime.warehouses.for_org(byo.id)
    cols = driver.describe("SELECT pg_sleep(0) AS slept, 'sad'::mood AS m", timeout=10)
    assert cols == [{"name": "slept", "type": "VOID"}, {"name": "m", "type": "MOOD"}]
