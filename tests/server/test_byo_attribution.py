"""Observations, training and results from a bring-your-own PostgreSQL exposures table."""

from __future__ import annotations

import types
import uuid

import pytest

from levered_server.services.attribution import _derived_id
from levered_server.services.design import in_holdout
from tests.server.conftest import PG_URL, pg_exec
from tests.server.factories import connect_postgres, hero


def test_observation_id_test_vector():
    import datetime as dt

    opt = types.SimpleNamespace(
        id="699ede80-c94b-4f98-9c79-dd3e07748703",
        training_data_config={"design_factors": [
            {"name": "headline", "levels": ["Ship faster", "Build better"]},
            {"name": "cta_text", "levels": ["Get started", "Try it free"]}]})
    exposed = dt.datetime(2026, 11, 21, 11, 40, 12, 530000, tzinfo=dt.UTC)
    row = {"anonymous_id": "user-7", "variant_number": 1}
    assert _derived_id(opt, row, exposed) == "8d79a33b-fe51-5aa9-84c4-033841eabb9b"


@pytest.fixture
def byo(org):
    if not PG_URL:
        pytest.skip("LEVERED_TEST_POSTGRES_URL not set")
    schema = "byo_" + uuid.uuid4().hex[:10]
    pg_exec(f"CREATE SCHEMA {schema}")
    pg_exec(f"CREATE TABLE {schema}.signups (anonymous_id text, ts timestamptz)")
    pg_exec(f"CREATE TABLE {schema}.levered_exposures (anonymous_id text, optimization_id text,"
            " variant text, \"timestamp\" timestamptz, exposure_id text)")
    connect_postgres(org, schema)
    yield org, schema
    pg_exec(f"DROP SCHEMA {schema} CASCADE")


def test_byo_observations_train_results(byo, server):
    org, schema = byo
    metric = org.post("/api/v2/warehouse/metrics", json={
        "name": "signups", "sql": f"SELECT anonymous_id, ts FROM {schema}.signups",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "ts"}}).json()
    opt = org.post("/api/v2/optimizations", json=hero(metric["id"], holdout_percentage=50)).json()
    oid = opt["id"]
    rows = [
        ("u1", oid, '{"headline": "Build better", "cta_text": "Get started"}',
         "2026-11-20 10:00:00+00", None),
        ("u2", oid, '{"cta_text":"Try it free","headline":"Scale up"}',  # excluded
         "2026-11-20 10:00:00+00", None),
        ("u3", oid, '{"cta_text":"Get started","headline":"Ship fast"}',  # not a level
         "2026-11-20 10:00:00+00", None),
        ("u4", "699ede80-c94b-4f98-9c79-dd3e07748703",
         '{"cta_text":"Get started","headline":"Ship faster"}', "2026-11-20 10:00:00+00", None),
        ("u5", oid, '{"cta_text":"Try it free","headline":"Ship faster"}',
         "2026-11-20 11:00:00+02", "b7c0e1d2-3f4a-4b5c-8d6e-7f8091a2b3c4"),
    ]
    for r in rows:
        values = ", ".join("NULL" if v is None else "'" + v.replace("'", "''") + "'" for v in r)
        pg_exec(f"INSERT INTO {schema}.levered_exposures VALUES ({values})")
    pg_exec(f"INSERT INTO {schema}.signups VALUES ('u1', '2026-11-20 11:00:00+00'), "
            "('u5', '2026-11-21 12:00:00+00')")
    body = org.get(f"/api/v2/optimizations/{oid}/observations").json()
    assert body["total"] == 2, body
    u1, u5 = body["observations"]
    assert u1["anonymous_id"] == "u1" and u1["variant_number"] == 3
    assert u1["exposed_at"] == "2026-11-20T10:00:00.000Z"
    assert u1["reward"] == 1 and u1["rewarded_at"] == "2026-11-20T11:00:00.000Z"
    assert u1["exposure_id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, (
        f"{oid}|u1|2026-11-20T10:00:00.000Z|"
        '{"cta_text":"Get started","headline":"Build better"}')))
    assert u1["in_holdout"] == in_holdout(oid, "u1", 50) and u1["propensity"] is None
    assert u1["context"] == {}
    assert u5["exposure_id"] == "b7c0e1d2-3f4a-4b5c-8d6e-7f8091a2b3c4"
    assert u5["exposed_at"] == "2026-11-20T09:00:00.000Z" and u5["reward"] == 0  # 27 h later
    train = org.post(f"/api/v2/models/{opt['model_id']}/train").json()
    assert train["observations"] == 2
    assert train["in_sample_metrics"]["historic_reward"] == 0.5
    results = org.get(f"/api/v2/optimizations/{oid}/results").json()
    counts = {v["number"]: (v["exposures"], v["conversions"]) for v in results["variants"]}
    assert counts == {1: (0, 0), 2: (1, 0), 3: (1, 1), 4: (0, 0), 5: (0, 0)}
    # the holdout arm of each exposure, recomputed in SQL with the holdout hash
    held = sum(in_holdout(oid, u, 50) for u in ("u1", "u5"))
    series = results["time_series"][0]
    assert series["date"] == "2026-11-20" and series["holdout_exposures"] == held
    # serving never writes into a bring-your-own warehouse
    served = server.client.post(f"/api/v2/optimizations/{oid}/serve",
                                json={"anonymous_id": "new"}).json()
    assert served["exposure_id"]
    assert org.get(f"/api/v2/optimizations/{oid}/observations").json()["total"] == 2


def test_byo_without_exposures_table_is_a_warehouse_error(byo):
    org, schema = byo
    pg_exec(f"DROP TABLE {schema}.levered_exposures")
    metric = org.post("/api/v2/warehouse/metrics", json={
        "name": "signups", "sql": f"SELECT anonymous_id, ts FROM {schema}.signups",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "ts"}}).json()
    opt = org.post("/api/v2/optimizations", json=hero(metric["id"])).json()
    resp = org.get(f"/api/v2/optimizations/{opt['id']}/observations")
    assert resp.status_code == 502
    assert "levered_exposures" in resp.json()["error"]["details"]["warehouse_message"]


@pytest.mark.skipif(not PG_URL, reason="LEVERED_TEST_POSTGRES_URL not set")
@pytest.mark.parametrize("user,percent,expected", [("user-12", 10, True), ("user-42", 10, False),
                                                   ("user-24", 1, True), ("user-12", 6, False)])
def test_holdout_hash_in_postgres_matches_the_test_vectors(user, percent, expected):
    import sqlalchemy

    from levered_server.services.exposure_source import holdout_condition
    from levered_server.warehouse.postgres_driver import PostgresDialect

    opt = types.SimpleNamespace(id="699ede80-c94b-4f98-9c79-dd3e07748703",
                                holdout_percentage=percent)
    engine = sqlalchemy.create_engine(PG_URL)
    with engine.connect() as conn:
        got = conn.execute(sqlalchemy.text(
            f"SELECT {holdout_condition(PostgresDialect(), 'CAST(:u AS VARCHAR)', opt)}"),
            {"u": user}).scalar()
    engine.dispose()
    assert got is expected


def test_byo_levels_with_quotes_and_percent_signs(byo):
    org, schema = byo
    metric = org.post("/api/v2/warehouse/metrics", json={
        "name": "signups", "sql": f"SELECT anonymous_id, ts FROM {schema}.signups "
                                  "WHERE anonymous_id LIKE 'q%'",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "ts"}}).json()
    body = hero(metric["id"], excluded_combinations=[])
    body["training_data_config"]["design_factors"] = [
        {"name": "offer", "levels": ["none", "50% off", "it's free"]}]
    opt = org.post("/api/v2/optimizations", json=body).json()
    pg_exec(f"INSERT INTO {schema}.levered_exposures VALUES ('q1', '{opt['id']}', "
            "'{\"offer\": \"it''s free\"}', '2026-11-20 10:00+00', NULL), "
            f"('q2', '{opt['id']}', '{{\"offer\": \"50% off\"}}', '2026-11-20 10:00+00', NULL)")
    pg_exec(f"INSERT INTO {schema}.signups VALUES ('q2', '2026-11-20 10:30+00')")
    obs = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()["observations"]
    got = {o["anonymous_id"]: (o["variant"]["offer"], o["reward"]) for o in obs}
    assert got == {"q1": ("it's free", 0), "q2": ("50% off", 1)}


def test_byo_training_query_groups_context_in_postgres(byo):
    org, schema = byo
    pg_exec(f"ALTER TABLE {schema}.levered_exposures ADD COLUMN context text, "
            "ADD COLUMN propensity double precision, ADD COLUMN in_holdout boolean")
    metric = org.post("/api/v2/warehouse/metrics", json={
        "name": "signups", "sql": f"SELECT anonymous_id, ts FROM {schema}.signups",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "ts"}}).json()
    opt = org.post("/api/v2/optimizations", json=hero(metric["id"], model_type="mab")).json()
    # 40 users on each of #1 and #3; every #3 user converts, one in ten on #1.
    pg_exec(f"""INSERT INTO {schema}.levered_exposures
        SELECT 'u' || v || '-' || i, '{opt["id"]}',
               CASE WHEN v = 1 THEN '{{"headline": "Ship faster", "cta_text": "Get started"}}'
                    ELSE '{{"headline": "Build better", "cta_text": "Get started"}}' END,
               '2026-11-20 10:00:00+00', NULL,
               CASE WHEN i % 2 = 0 THEN '{{"country": "US", "device_type": "mobile"}}'
                    ELSE '{{"country": "DE"}}' END, 0.5, FALSE
        FROM generate_series(1, 40) AS i, (VALUES (1), (3)) AS t(v)""")
    pg_exec(f"""INSERT INTO {schema}.signups
        SELECT 'u' || v || '-' || i, '2026-11-20 11:00:00+00'
        FROM generate_series(1, 40) AS i, (VALUES (1), (3)) AS t(v) WHERE v = 3 OR i % 10 = 0""")
    from levered_server.services.training_sql import cell_stats

    stats, scanned, reward_type = cell_stats(runtime=org.server.runtime, org_id=org.id,
                                             optimization_id=opt["id"])
    assert reward_type == "bool" and scanned == 80 + 44
    assert stats.context_factors == ("country", "device_type")
    assert set(stats.context_levels[0]) == {"US", "DE"}
    assert set(stats.context_levels[1]) == {"mobile", None}
    assert stats.observations == 80 and stats.sums["reward_sum"].sum() == 44
    assert stats.sums["ipw_weight_sum"].sum() == pytest.approx(160)
    assert stats.sums["users"].sum() == 80
