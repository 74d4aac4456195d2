"""docs/api.md 10: connections, discovery, and read-only queries enforced by the connection."""

from __future__ import annotations

import uuid

import pytest

from tests.server.conftest import PG_URL, assert_error, field_codes, make_settings, new_org, running

REWARDS = [{"anonymous_id": f"user-{i}", "name": "signup_completed" if i % 2 else "purchase",
            "value": float(i), "timestamp": f"2026-11-2{i % 3}T10:00:00Z"} for i in range(7)]


@pytest.fixture
def seeded(org):
    resp = org.post("/api/v2/ingest/rewards", json={"events": REWARDS})
    assert resp.json()["accepted"] == 7
    return org


def _engine(org):
    """`duckdb` or `postgres`: the managed warehouse's engine (the connection's extension)."""
    return org.get("/api/v2/warehouse/connections").json()["connection"]["engine"]


def _rows(org, sql="SELECT count(*) AS n FROM rewards"):
    resp = org.post("/api/v2/warehouse/query", json={"sql": sql})
    assert resp.status_code == 200, resp.text
    return resp.json()["rows"]


def test_new_org_has_the_managed_connection(org):
    conn = org.get("/api/v2/warehouse/connections").json()["connection"]
    assert conn["provider"] == "duckdb" and conn["managed"] is True
    assert conn["engine"] == org.server.runtime.settings.managed_engine
    assert conn["dataset_id"] == "managed_dw" and conn["project_id"] is None
    assert conn["exposures_table"] == "managed_dw.exposures"
    status = org.get("/api/v2/warehouse/status").json()
    assert status["connected"] is True and status["connection_id"] == conn["id"]
    assert status["engine"] == conn["engine"]
    assert status["warehouse_message"] is None and status["latency_ms"] >= 0
    test = org.post("/api/v2/warehouse/connections/test").json()
    assert test["ok"] is True and test["provider"] == "duckdb"


def test_tables_columns_preview(seeded):
    tables = seeded.get("/api/v2/warehouse/tables").json()
    assert tables["dataset_id"] == "managed_dw"
    assert [(t["name"], t["type"]) for t in tables["tables"]] == \
        [("exposures", "table"), ("rewards", "table")]
    cols = seeded.get("/api/v2/warehouse/tables/REWARDS/columns").json()
    assert cols["table"] == "rewards"
    assert [c["name"] for c in cols["columns"]] == [
        "reward_id", "anonymous_id", "name", "value", "timestamp_utc", "organization_id",
        "optimization_id", "properties", "idempotency_key", "created_at"]
    double = {"duckdb": "DOUBLE", "postgres": "DOUBLE PRECISION"}[_engine(seeded)]
    assert cols["columns"][3] == {"name": "value", "type": double, "nullable": True}
    prev = seeded.get("/api/v2/warehouse/tables/managed_dw.rewards/preview",
                      params={"limit": 3}).json()
    assert prev["row_count"] == 3 and prev["truncated"] is True
    assert len(prev["columns"]) == 10
    assert isinstance(prev["rows"][0]["timestamp_utc"], str)
    assert_error(seeded.get("/api/v2/warehouse/tables/nope/columns"), 404, "not_found")
    assert_error(seeded.get('/api/v2/warehouse/tables/x";drop/preview'), 404, "not_found")
    assert_error(seeded.get("/api/v2/warehouse/tables/rewards/preview", params={"limit": 0}),
                 400, "bad_request")


def test_query_results_follow_the_result_set_rules(seeded):
    resp = seeded.post("/api/v2/warehouse/query", json={
        "sql": "SELECT name, count(*) AS n, 1 AS n, 9007199254740993 AS big, "
               "'NaN'::DOUBLE PRECISION AS f, "
               "DATE '2026-01-02' AS d, TIMESTAMPTZ '2026-01-02 03:04:05+00' AS tz, "
               "'{\"a\": [1]}'::JSON AS j FROM rewards GROUP BY name ORDER BY 2 DESC",
        "limit": 1})
    body = resp.json()
    assert resp.status_code == 200, body
    assert [c["name"] for c in body["columns"]] == ["name", "n", "n_2", "big", "f", "d", "tz", "j"]
    row = body["rows"][0]
    assert row["name"] == "purchase" and row["n"] == 4 and row["n_2"] == 1
    assert row["big"] == "9007199254740993" and row["f"] == "NaN" and row["d"] == "2026-01-02"
    assert row["tz"] == "2026-01-02T03:04:05Z" and row["j"] == {"a": [1]}
    assert body["row_count"] == 1 and body["truncated"] is True and body["elapsed_ms"] >= 0


REFUSED = [
    ("DROP TABLE rewards", "DROP"),
    ("INSERT INTO rewards (anonymous_id) VALUES ('x')", "INSERT"),
    ("DELETE FROM rewards", "DELETE"),
    ("UPDATE rewards SET value = 0", "UPDATE"),
    ("SELECT 1; DROP TABLE rewards", None),
    ("COPY rewards TO '/tmp/levered-leak.csv'", "COPY"),
    ("ATTACH '/tmp/levered-other.duckdb' AS other", "ATTACH"),
    ("INSTALL httpfs", "INSTALL"),  # DuckDB files it under LOAD; the user typed INSTALL
    ("LOAD httpfs", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CREATE TABLE x AS SELECT 1", "CREATE"),
    ("CALL pragma_version()", "CALL"),
]


@pytest.mark.parametrize("sql,kind", REFUSED)
def test_writes_and_escapes_are_refused_and_change_nothing(seeded, sql, kind):
    before = _rows(seeded, "SELECT count(*) AS n, sum(value) AS s FROM rewards")
    tables = seeded.get("/api/v2/warehouse/tables").json()["tables"]
    err = assert_error(seeded.post("/api/v2/warehouse/query", json={"sql": sql}), 400,
                       "read_only_violation")
    assert err.get("details", {}).get("statement_type") == kind
    assert _rows(seeded, "SELECT count(*) AS n, sum(value) AS s FROM rewards") == before
    assert seeded.get("/api/v2/warehouse/tables").json()["tables"] == tables


@pytest.mark.parametrize("engine,sql", [
    ("duckdb", "SELECT * FROM read_csv('/etc/passwd')"),
    ("duckdb", "SELECT * FROM read_text('/etc/hostname')"),
    ("duckdb", "SELECT * FROM 'https://example.invalid/x.parquet'"),
    # PostgreSQL: the reader role lacks the privileges, and its transaction is read-only.
    ("postgres", "SELECT pg_read_file('/etc/passwd')"),
    ("postgres", "SELECT * FROM pg_ls_dir('/')"),
    ("postgres", "SELECT lo_import('/etc/hostname')"),
])
def test_connection_refuses_file_and_network_access(seeded, engine, sql):
    if _engine(seeded) != engine:
        pytest.skip(f"a {engine} function")
    err = assert_error(seeded.post("/api/v2/warehouse/query", json={"sql": sql}), 400,
                       "read_only_violation")
    assert "root:" not in err["message"]


def test_connection_itself_refuses_writes(seeded, server):
    # Below the statement check: the connection user SQL runs on is read-only (DuckDB
    # read_only; PostgreSQL the organization's reader role in a read-only transaction).
    driver = server.runtime.warehouses.managed(seeded.id)
    from levered_server.warehouse.base import NotReadOnly

    with pytest.raises(NotReadOnly):
        driver.query("INSERT INTO rewards (anonymous_id) VALUES ('x')", limit=1, timeout=5)
    assert _rows(seeded) == [{"n": 7}]


def test_invalid_sql_and_validation(seeded):
    for sql in ("SELEC 1", "SELECT 1 +"):
        resp = seeded.post("/api/v2/warehouse/query", json={"sql": sql})
        if sql == "SELEC 1" and _engine(seeded) == "postgres":
            # PostgreSQL's statement check reads the first keyword, not a full parse.
            assert assert_error(resp, 400, "read_only_violation")["details"] == \
                {"statement_type": "SELEC"}
            continue
        err = assert_error(resp, 422, "invalid_sql")
        assert err["details"]["provider"] == "duckdb" and "syntax" in \
            err["details"]["warehouse_message"].lower()
    err = assert_error(seeded.post("/api/v2/warehouse/query",
                                   json={"sql": "SELECT * FROM nowhere"}), 422, "invalid_sql")
    assert "nowhere" in err["details"]["warehouse_message"]
    assert field_codes(seeded.post("/api/v2/warehouse/query", json={"sql": ""})) == \
        {"sql": "too_short"}
    assert field_codes(seeded.post("/api/v2/warehouse/query",
                                   json={"sql": "SELECT 1", "limit": 10001})) == \
        {"limit": "out_of_range"}


def test_query_timeout(tmp_path):
    with running(make_settings(tmp_path, None, warehouse_query_timeout_seconds=0.3),
                 "sqlite") as srv:
        org = new_org(srv)
        resp = org.post("/api/v2/warehouse/query", json={
            "sql": "SELECT count(*) FROM range(100000000000) a"})
        err = assert_error(resp, 502, "warehouse_error")
        assert err["details"]["timeout"] is True and err["details"]["limit_seconds"] == 0.3
        assert err["details"]["setting"] == "LEVERED_WAREHOUSE_QUERY_TIMEOUT_SECONDS"
        assert "0.3 s limit" in err["message"] and \
            "LEVERED_WAREHOUSE_QUERY_TIMEOUT_SECONDS" in err["message"]


def test_connection_validation(org):
    post = lambda body: field_codes(org.post("/api/v2/warehouse/connections", json=body))  # noqa
    assert post({"provider": "oracle"}) == {"provider": "invalid_value"}
    assert post({"provider": "duckdb", "credentials": {}}) == {"credentials": "unknown_field"}
    assert post({"provider": "postgres"}) == {"credentials": "required"}
    assert post({"provider": "postgres", "project_id": "p", "credentials": {
        "host": "h", "database": "d", "username": "u"}}) == {"project_id": "unknown_field"}
    assert post({"provider": "postgres", "credentials": {"host": "h", "port": "5432"}}) == {
        "credentials.database": "required", "credentials.username": "required",
        "credentials.port": "type"}
    assert post({"provider": "postgres", "credentials": {
        "host": "h", "database": "d", "username": "", "port": 70000, "sslmode": "sometimes",
        "extra": 1}}) == {"credentials.username": "too_short", "credentials.port": "out_of_range",
                          "credentials.sslmode": "invalid_value", "credentials.extra": "unknown_field"}
    assert post({"provider": "postgres", "exposures_table": "a.b.c", "credentials": {
        "host": "h", "database": "d", "username": "u"}}) == {"exposures_table": "format"}
    assert org.get("/api/v2/warehouse/connections").json()["connection"]["provider"] == "duckdb"


def test_a_provider_without_its_driver_names_the_install_command(org, server):
    from levered_server.warehouse.manager import driver_classes

    if "snowflake" in driver_classes():
        pytest.skip("a snowflake driver is installed here")
    resp = org.post("/api/v2/warehouse/connections", json={
        "provider": "snowflake", "project_id": "xy", "credentials": {"account": "a"}})
    err = assert_error(resp, 422, "validation_error")
    [field] = err["details"]["fields"]
    assert (field["field"], field["code"]) == ("provider", "not_installed")
    assert "pip install 'levered-server[snowflake]'" in field["message"]
    # a connection saved while a driver was installed: every use says how to install it
    from sqlalchemy import select

    from levered_server.store.models import WarehouseConnection

    with server.runtime.store.session(org.id) as s:
        s.scalars(select(WarehouseConnection)).one().provider = "snowflake"
    status = org.get("/api/v2/warehouse/status").json()
    assert status["connected"] is False and status["driver"] is None
    assert "levered-server[snowflake]" in status["warehouse_message"]
    err = assert_error(org.post("/api/v2/warehouse/query", json={"sql": "SELECT 1"}), 502,
                       "warehouse_error")
    assert "pip install 'levered-server[snowflake]'" in err["message"]


def test_connections_and_status_name_the_driver(org):
    import levered_server

    conn = org.get("/api/v2/warehouse/connections").json()["connection"]
    status = org.get("/api/v2/warehouse/status").json()
    for body in (conn, status):
        assert body["driver"] in ("duckdb", "managed-postgres"), body
        assert body["driver_version"] == levered_server.__version__


def test_unreachable_postgres_is_502_and_nothing_saved(org):
    body = {"provider": "postgres", "credentials": {
        "host": "127.0.0.1", "port": 1, "database": "x", "username": "u", "password": "secret"}}
    err = assert_error(org.post("/api/v2/warehouse/connections", json=body), 502,
                       "warehouse_error")
    assert err["details"]["provider"] == "postgres" and "secret" not in str(err)
    assert org.get("/api/v2/warehouse/connections").json()["connection"]["provider"] == "duckdb"
    test = org.post("/api/v2/warehouse/connections/test", json=body).json()
    assert test["ok"] is False and test["warehouse_message"]


@pytest.mark.skipif(not PG_URL, reason="LEVERED_TEST_POSTGRES_URL not set")
def test_bring_your_own_postgres(org, server):
    from tests.server.conftest import pg_exec

    schema = "byo_" + uuid.uuid4().hex[:10]
    pg_exec(f"CREATE SCHEMA {schema}")
    pg_exec(f"CREATE TABLE {schema}.signups (anonymous_id text, ts timestamp)")
    pg_exec(f"INSERT INTO {schema}.signups VALUES ('u1', '2026-11-20 10:00'), ('u2', now())")
    body = {"provider": "postgres", "dataset_id": schema, "credentials": {
        "host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres",
        "password": "s3cret-not-used", "sslmode": "disable"}}
    resp = org.post("/api/v2/warehouse/connections", json=body)
    assert resp.status_code == 200, resp.text
    conn = resp.json()
    assert conn["provider"] == "postgres" and conn["managed"] is False
    assert conn["exposures_table"] == f"{schema}.levered_exposures" and "credentials" not in conn
    from sqlalchemy import select

    from levered_server.store.models import WarehouseConnection

    with server.runtime.store.session(org.id) as s:
        stored = s.scalars(select(WarehouseConnection)).one().credentials_encrypted
    assert "s3cret" not in stored
    assert [t["name"] for t in org.get("/api/v2/warehouse/tables").json()["tables"]] == ["signups"]
    rows = org.post("/api/v2/warehouse/query", json={
        "sql": "SELECT anonymous_id FROM signups WHERE ts < '2026-11-21' -- 100%"}).json()["rows"]
    assert rows == [{"anonymous_id": "u1"}]
    for sql, code in [("DELETE FROM signups", "read_only_violation"),
                      ("WITH d AS (DELETE FROM signups RETURNING 1) SELECT * FROM d",
                       "read_only_violation"),
                      ("SELECT 1; SELECT 2", "read_only_violation")]:
        assert_error(org.post("/api/v2/warehouse/query", json={"sql": sql}), 400, code)
    assert org.post("/api/v2/warehouse/query", json={
        "sql": "SELECT count(*) AS n FROM signups"}).json()["rows"] == [{"n": 2}]
    metric = org.post("/api/v2/warehouse/metrics", json={
        "name": "pg", "sql": f"SELECT anonymous_id, ts FROM {schema}.signups WHERE ts >= @start_date"
                             " AND anonymous_id LIKE 'u%'",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "ts"}})
    assert metric.status_code == 201, metric.text
    prev = org.get(f"/api/v2/warehouse/metrics/{metric.json()['id']}/preview",
                   params={"start_date": "2026-11-19"}).json()
    assert prev["row_count"] == 2
    assert_error(org.post("/api/v2/ingest/rewards", json={"events": [
        {"anonymous_id": "a", "name": "x"}]}), 409, "managed_warehouse_required")
    back = org.post("/api/v2/warehouse/connections", json={"provider": "duckdb"})
    assert back.status_code == 200 and back.json()["managed"] is True
    pg_exec(f"DROP SCHEMA {schema} CASCADE")


def test_each_org_has_its_own_database(seeded, other_org):
    assert _rows(other_org) == [{"n": 0}]
    assert _rows(seeded) == [{"n": 7}]


def test_drivers_are_found_through_stevedore():
    from levered_server.warehouse.duckdb_driver import DuckDBDriver
    from levered_server.warehouse.manager import driver_classes
    from levered_server.warehouse.postgres_driver import PostgresDriver

    classes = driver_classes()
    assert classes["duckdb"] is DuckDBDriver and classes["postgres"] is PostgresDriver


def test_without_the_embedded_warehouse(tmp_path):
    settings = make_settings(tmp_path, None, embedded_warehouse=False)
    with running(settings, "sqlite") as srv:
        org = new_org(srv)
        assert org.get("/api/v2/warehouse/connections").json()["connection"] is None
        status = org.get("/api/v2/warehouse/status").json()
        assert status["connected"] is False and status["checked_at"].endswith("Z")
        assert all(status[k] is None for k in ("provider", "managed", "connection_id",
                                               "dataset_id", "latency_ms"))
        for method, path, body in [
                ("GET", "/api/v2/warehouse/tables", None),
                ("POST", "/api/v2/warehouse/query", {"sql": "SELECT 1"}),
                ("POST", "/api/v2/warehouse/connections/test", None),
                ("POST", "/api/v2/warehouse/metrics", {
                    "name": "m", "sql": "SELECT 1 AS a, now() AS t",
                    "column_mapping": {"anonymous_id": "a", "timestamp": "t"}}),
                ("POST", "/api/v2/ingest/rewards", {"events": [{"anonymous_id": "a",
                                                                "name": "x"}]})]:
            kw = {"json": body} if body is not None else {}
            assert_error(org.request(method, path, **kw), 409, "warehouse_not_connected")
        created = org.post("/api/v2/warehouse/connections", json={"provider": "duckdb"})
        assert created.status_code == 201 and created.json()["managed"] is True
        assert _rows(org, "SELECT 1 AS one") == [{"one": 1}]


def test_managed_writes_and_read_only_reads_interleave(tmp_path):
    # One DuckDB configuration per file and process: the cached writer is closed for
    # readers and reopened for writes; concurrent readers must not trip over each other.
    import datetime as dt
    import threading

    from levered_server.warehouse.base import ConnectionConfig
    from levered_server.warehouse.duckdb_driver import DuckDBDriver
    from levered_server.warehouse.exposure_writer import insert_exposures

    driver = DuckDBDriver(ConnectionConfig("org", "duckdb", None, "managed_dw", None, {}),
                          options={"warehouse_dir": str(tmp_path)})
    errors: list[str] = []

    def write(n):
        for i in range(40):
            try:
                with driver.writer() as con:
                    insert_exposures(con, [{"exposure_id": f"{n}-{i}",
                                            "timestamp_utc": dt.datetime(2026, 1, 1)}])
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

    def read(_):
        for _ in range(40):
            try:
                driver.query("SELECT count(*) AS n FROM exposures", limit=1, timeout=5)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    threads = [threading.Thread(target=f, args=(i,)) for i, f in
               enumerate([write, write, read, read, read])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert driver.query("SELECT count(*) AS n FROM exposures", limit=1,
                        timeout=5).rows == [{"n": 80}]
