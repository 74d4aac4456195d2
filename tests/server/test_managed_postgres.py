"""The managed warehouse on PostgreSQL (warehouse/managed_postgres.py, pg_provision.py):
settings, isolation of each organization's reader role, replicas provisioning and ingesting
at once, the shared write API, and training that agrees with DuckDB."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from levered_server.errors import StartRefused
from levered_server.settings import Settings, settings_from_env
from levered_server.warehouse.base import NotReadOnly, WarehouseFailure
from levered_server.warehouse.manager import check_managed_warehouse
from levered_server.warehouse.pg_provision import database_name, reader_role
from levered_server.warehouse.pg_writers import PING_AFTER
from tests.server.conftest import PG_URL, Org, database_url, make_settings, new_org, pg_exec, running
from tests.server.factories import hero, make_metric
from tests.server.test_training_sql import SERVABLE, Exp, Rew, assert_cells, decoded, reference

needs_pg = pytest.mark.skipif(not PG_URL, reason="no test PostgreSQL")
PG = "postgresql+psycopg://u:pw@db.example:5433/levered"


# --------------------------------------------------------------------------- settings


def test_the_engine_follows_the_state_database_unless_set():
    assert Settings().managed_engine == "duckdb"
    assert Settings(database_url=PG).managed_engine == "postgres"
    assert Settings(database_url=PG, managed_warehouse="duckdb").managed_engine == "duckdb"
    assert Settings(database_url=PG).managed_warehouse_url == PG
    other = "postgresql://w@wh.example/x"
    assert Settings(database_url=PG, warehouse_url=other).managed_warehouse_url == other
    env = settings_from_env({"LEVERED_MANAGED_WAREHOUSE": "Postgres",
                             "LEVERED_WAREHOUSE_URL": other})
    assert env.managed_engine == "postgres" and env.managed_warehouse_url == other
    with pytest.raises(ValueError, match="LEVERED_MANAGED_WAREHOUSE"):
        settings_from_env({"LEVERED_MANAGED_WAREHOUSE": "sqlite"})
    with pytest.raises(ValueError, match="LEVERED_WAREHOUSE_URL"):
        _ = Settings(managed_warehouse="postgres").managed_warehouse_url


def test_names_and_connection_parameters():
    from levered_server.warehouse.pg_warehouses import libpq_params

    org = "78f50bf7-d04c-46e7-97db-3ae14f1b8bc9"
    assert database_name(org) == "lvdw_78f50bf7d04c46e797db3ae14f1b8bc9"
    assert reader_role(org) == database_name(org) + "_r"
    params, db = libpq_params(PG + "?sslmode=require&options=-csearch_path%3Dx")
    assert db == "levered" and params == {"host": "db.example", "port": 5433, "user": "u",
                                          "password": "pw", "sslmode": "require"}


class _Conn:
    def __init__(self, db: str) -> None:
        self.db, self.closed, self.broken = db, False, False

    def close(self) -> None:
        self.closed = True


def test_the_writer_pool_is_bounded_and_closes_the_least_recently_used():
    from levered_server.warehouse.pg_writers import WriterPool

    opened: list[_Conn] = []
    pool = WriterPool(lambda db: opened.append(_Conn(db)) or opened[-1], size=2, wait=0.2)
    for db in ("a", "b", "a", "c"):
        with pool.connection(db) as conn:
            assert conn.db == db
    assert [c.db for c in opened] == ["a", "b", "c"]  # "a" reused
    assert [c.closed for c in opened] == [False, True, False]  # "b" was least recently used
    with pool.connection("a"), pool.connection("c"):
        assert pool.open_count == 2
        with pytest.raises(WarehouseFailure, match="busy"), pool.connection("d"):
            pass
    with pytest.raises(RuntimeError), pool.connection("a") as conn:
        raise RuntimeError("a failed write")
    assert conn.closed and pool.open_count == 1  # not returned to the pool
    pool.close()
    assert all(c.closed for c in opened) and pool.open_count == 0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pg(tmp_path_factory: Any) -> Iterator[Any]:
    """A server on PostgreSQL state, so on the PostgreSQL managed warehouse."""
    if not PG_URL:
        pytest.skip("no test PostgreSQL")
    with database_url("postgres") as url:
        with running(make_settings(tmp_path_factory.mktemp("pg"), url), "postgres") as srv:
            assert srv.runtime.warehouses.managed(new_org(srv).id).provider == "postgres"
            yield srv


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: Any) -> Iterator[tuple[Any, Any]]:
    """Two servers (data dirs, runtimes, caches of their own) on one PostgreSQL state."""
    if not PG_URL:
        pytest.skip("no test PostgreSQL")
    with database_url("postgres") as url:
        with running(make_settings(tmp_path_factory.mktemp("r1"), url), "postgres") as one, \
                running(make_settings(tmp_path_factory.mktemp("r2"), url), "postgres") as two:
            yield one, two


def _pgw(srv: Any) -> Any:
    return srv.runtime.warehouses.options["managed_postgres"]


def _reader(srv: Any, org_id: str, **changes: Any) -> Any:
    """A direct session of the organization's reader role (trust auth here)."""
    import psycopg

    return psycopg.connect(**{**_pgw(srv).reader_login(org_id), **changes}, autocommit=True)


def _seed(org: Org) -> None:
    resp = org.post("/api/v2/ingest/rewards", json={"events": [
        {"anonymous_id": "a", "name": "x", "value": 2}]})
    assert resp.status_code == 200, resp.text


def _query(org: Org, sql: str) -> Any:
    return org.post("/api/v2/warehouse/query", json={"sql": sql})


# --------------------------------------------------------------------------- isolation


@needs_pg
def test_the_reader_role_is_confined(pg):
    a, b = new_org(pg), new_org(pg)
    _seed(a)
    _seed(b)
    import psycopg

    with _reader(pg, a.id) as conn:
        row = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolconfig "
                           "FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row[:4] == (False, False, False, True)
        assert "default_transaction_read_only=on" in row[4]
        assert any(c.startswith("statement_timeout=") for c in row[4])
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as admin:
            assert admin.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid "
                                 "WHERE rolname = %s", (reader_role(a.id),)).fetchone() == (True,)
        # Read-only turned off, the role still may not write or create anything.
        conn.execute("SELECT set_config('default_transaction_read_only', 'off', false)")
        for sql in ("INSERT INTO managed_dw.rewards (anonymous_id) VALUES ('x')",
                    "DELETE FROM managed_dw.rewards",
                    "WITH d AS (DELETE FROM managed_dw.rewards RETURNING 1) SELECT * FROM d",
                    "CREATE TABLE managed_dw.x (a int)", "CREATE TABLE public.x (a int)",
                    "CREATE TEMP TABLE x (a int)", "SET ROLE postgres",
                    f"SET ROLE {reader_role(b.id)}", "SELECT set_config('role', 'postgres', false)",
                    "SET SESSION AUTHORIZATION postgres", "SELECT pg_read_file('/etc/hostname')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM managed_dw.rewards").fetchone() == (1,)
    # Another organization's database: no CONNECT.
    with pytest.raises(psycopg.OperationalError, match="permission denied|CONNECT"):
        _reader(pg, a.id, dbname=database_name(b.id))
    # The state database (PUBLIC may connect to it): none of its tables.
    state_db = PG_URL.rsplit("/", 1)[1].split("?")[0]
    schema = pg.settings.database_url.rsplit("%3D", 1)[1]
    with _reader(pg, a.id, dbname=state_db) as conn:
        for table in ("organizations", "api_keys", "warehouse_connections"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {schema}.{table}")


@needs_pg
def test_user_sql_cannot_write_or_escalate(pg):
    org = new_org(pg)
    _seed(org)
    for sql in ["WITH d AS (DELETE FROM rewards RETURNING 1) SELECT count(*) FROM d",
                "SELECT set_config('role', 'postgres', false)",
                "SELECT set_config('transaction_read_only', 'off', true)",
                "SELECT pg_read_file('/etc/passwd')",
                f"SELECT * FROM {database_name(new_org(pg).id)}.managed_dw.rewards"]:
        resp = _query(org, sql)
        assert resp.status_code in (400, 422, 502), (sql, resp.text)
        assert resp.json()["error"]["code"] in ("read_only_violation", "invalid_sql",
                                                "warehouse_error")
    driver = pg.runtime.warehouses.managed(org.id)
    # Each query is a session of its own: turning read-only off there changes nothing later.
    driver.query("SELECT set_config('default_transaction_read_only', 'off', false)", limit=1,
                  timeout=5)
    for sql in ("INSERT INTO rewards (anonymous_id) VALUES ('x')",
                "WITH d AS (DELETE FROM rewards RETURNING 1) SELECT * FROM d",
                "SELECT set_config('role', 'postgres', false)"):
        with pytest.raises(NotReadOnly):
            driver.query(sql, limit=1, timeout=5)
    assert _query(org, "SELECT count(*) AS n FROM rewards").json()["rows"] == [{"n": 1}]


@needs_pg
def test_connections_are_bounded(pg):
    orgs = [new_org(pg) for _ in range(7)]
    for org in orgs:
        _seed(org)
        assert _query(org, "SELECT count(*) AS n FROM rewards").json()["rows"] == [{"n": 1}]
    assert _pgw(pg).writers.open_count <= 4
    names = [database_name(o.id) for o in orgs]
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as admin:
        by_user = dict(admin.execute(
            "SELECT usename = current_user, count(*) FROM pg_stat_activity "
            "WHERE datname = ANY(%s) GROUP BY 1", (names,)).fetchall())
    assert by_user.get(True, 0) <= 4 and by_user.get(False, 0) == 0  # no reader stays open


# --------------------------------------------------------------------------- replicas


@needs_pg
def test_replicas_provision_the_same_organization_at_once(replicas):
    one, two = replicas
    orgs = [new_org(one) for _ in range(4)]
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def provision(srv: Any) -> None:
        for org in orgs:
            barrier.wait()
            try:
                srv.runtime.warehouses.managed(org.id).ping(timeout=10)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

    threads = [threading.Thread(target=provision, args=(s,)) for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = [database_name(o.id) for o in orgs]
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)",
                             (names,)).fetchone() == (4,)
        assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)",
                             ([n + "_r" for n in names],)).fetchone() == (4,)


@needs_pg
def test_replicas_ingest_the_same_keys_once(replicas):
    one, two = replicas
    org = new_org(one)
    other = Org(id=org.id, name=org.name, key=org.key, key_id=org.key_id, server=two)
    batches = [[{"anonymous_id": f"u{i}", "name": "paid", "value": i,
                 "idempotency_key": f"k-{(b * 7 + i) % 60}"} for i in range(50)]
               for b in range(6)]
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def send(client_org: Org) -> None:
        for batch in batches:
            barrier.wait()
            resp = client_org.post("/api/v2/ingest/rewards", json={"events": batch})
            results.append(resp.json() if resp.status_code == 200 else {"error": resp.text})

    threads = [threading.Thread(target=send, args=(o,)) for o in (org, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all("error" not in r for r in results), results
    stored = sum(r["accepted"] - r["duplicates"] for r in results)
    assert stored == 60
    rows = _query(org, "SELECT count(*) AS n, count(DISTINCT idempotency_key) AS k "
                       "FROM rewards").json()["rows"]
    assert rows == [{"n": 60, "k": 60}]
    # Both replicas read the same data.
    assert _query(other, "SELECT count(*) AS n FROM rewards").json()["rows"] == [{"n": 60}]


# --------------------------------------------------------------------------- write API


@pytest.fixture(params=["duckdb", "postgres"])
def managed(request: Any, tmp_path: Any) -> Iterator[Any]:
    """Each engine's managed driver of a new organization."""
    if request.param == "duckdb":
        with running(make_settings(tmp_path, None), "sqlite") as srv:
            yield srv.runtime.warehouses.managed(new_org(srv).id)
        return
    if not PG_URL:
        pytest.skip("no test PostgreSQL")
    with database_url("postgres") as url, running(make_settings(tmp_path, url), "postgres") as srv:
        yield srv.runtime.warehouses.managed(new_org(srv).id)


def _reward(key: str | None, value: float = 1.0) -> dict[str, Any]:
    now = dt.datetime(2026, 1, 1)
    return {"reward_id": str(uuid.uuid4()), "anonymous_id": "a", "name": "x", "value": value,
            "timestamp_utc": now, "organization_id": "o", "optimization_id": None,
            "properties": '{"plan": "pro"}', "idempotency_key": key, "created_at": now}


def _exposure(exposure_id: str, key: str | None = None, explicit: bool = True
              ) -> dict[str, Any]:
    now = dt.datetime(2026, 1, 1)
    return {"exposure_id": exposure_id, "anonymous_id": "a", "optimization_id": "opt",
            "variant": '{"headline": "x"}', "variant_number": 1, "context": "{}",
            "in_holdout": False, "propensity": 1, "model_version": None, "source": "ingest",
            "idempotency_key": key, "timestamp_utc": now, "organization_id": "o",
            "created_at": now, "_explicit_id": explicit}


def test_ingest_drops_known_keys_and_ids_on_both_engines(managed):
    assert managed.ingest("rewards", [_reward("k1"), _reward("k1"), _reward("k2"),
                                      _reward(None)]) == 1
    assert managed.ingest("rewards", [_reward("k1"), _reward("k2"), _reward(None)]) == 2
    ids = [str(uuid.uuid4()) for _ in range(3)]
    managed.append_exposures([_exposure(ids[0])])
    assert managed.ingest("exposures", [_exposure(ids[0]), _exposure(ids[1], "e1"),
                                        _exposure(ids[2], "e1")]) == 2
    assert managed.ingest("exposures", []) == 0
    got = managed.query("SELECT (SELECT count(*) FROM rewards) AS r, "
                        "(SELECT count(*) FROM exposures) AS e, "
                        "(SELECT sum(propensity) FROM exposures) AS p", limit=1, timeout=5).rows
    assert got == [{"r": 4, "e": 2, "p": 2.0}]
    with pytest.raises(ValueError):
        managed.ingest("clicks", [_reward(None)])


def test_append_exposures_is_one_transaction(managed):
    rows = [_exposure(str(uuid.uuid4())), {**_exposure(str(uuid.uuid4())), "context": "{not json"}]
    with pytest.raises(WarehouseFailure):
        managed.append_exposures(rows)
    assert managed.query("SELECT count(*) AS n FROM exposures", limit=1,
                         timeout=5).rows == [{"n": 0}]


@needs_pg
def test_a_retried_exposure_batch_is_stored_once_on_postgres(pg):
    driver = pg.runtime.warehouses.managed(new_org(pg).id)
    rows = [_exposure(str(uuid.uuid4())) for _ in range(3)]
    driver.append_exposures(rows)
    driver.append_exposures(rows + [_exposure(str(uuid.uuid4()))])
    assert driver.query("SELECT count(*) AS n FROM exposures", limit=1, timeout=5).rows == \
        [{"n": 4}]


# --------------------------------------------------------------------------- operations


@needs_pg
def test_a_dropped_warehouse_is_created_again(pg):
    org = new_org(pg)
    _seed(org)
    pg_exec(f"DROP DATABASE {database_name(org.id)} WITH (FORCE)")
    assert _query(org, "SELECT 1 AS one").status_code == 502  # this process thought it there
    assert _query(org, "SELECT count(*) AS n FROM rewards").json()["rows"] == [{"n": 0}]
    pg_exec(f"DROP DATABASE {database_name(org.id)} WITH (FORCE)")
    time.sleep(PING_AFTER)  # the pooled writer connection is checked, found dead, replaced
    events = {"events": [{"anonymous_id": "a", "name": "x"}]}
    assert org.post("/api/v2/ingest/rewards", json=events).status_code == 200
    assert _query(org, "SELECT count(*) AS n FROM rewards").json()["rows"] == [{"n": 1}]


@needs_pg
def test_a_user_without_createdb_and_createrole_gets_one_message(pg):
    from levered_server.warehouse.pg_warehouses import PgWarehouses

    role = "lvtest_weak_" + uuid.uuid4().hex[:8]
    pg_exec(f"CREATE ROLE {role} LOGIN")
    try:
        url = PG_URL.replace("//postgres@", f"//{role}@")
        with pytest.raises(StartRefused) as refused:
            check_managed_warehouse(pg.settings.replace(warehouse_url=url))
        message = str(refused.value)
        assert "lacks CREATEDB and CREATEROLE" in message and role in message
        assert "LEVERED_WAREHOUSE_URL" in message and "LEVERED_MANAGED_WAREHOUSE=duckdb" in message
        weak = PgWarehouses(url, pg.runtime.secrets, timeout=5)
        with pytest.raises(WarehouseFailure, match="lacks CREATEDB and CREATEROLE"):
            weak.ensure(str(uuid.uuid4()))
        weak.close()
        check_managed_warehouse(pg.settings)  # the test's superuser may
        with pytest.raises(StartRefused, match="LEVERED_WAREHOUSE_URL"):
            check_managed_warehouse(Settings(managed_warehouse="postgres"))
    finally:
        pg_exec(f"DROP ROLE {role}")


@needs_pg
def test_duckdb_files_left_in_the_data_dir_are_named_at_start(tmp_path, caplog):
    (tmp_path / "warehouse").mkdir(parents=True)
    (tmp_path / "warehouse" / "old-org.duckdb").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="levered_server.warehouse"), \
            database_url("postgres") as url, running(make_settings(tmp_path, url), "postgres"):
        pass
    found = [r.getMessage() for r in caplog.records if "old-org.duckdb" in r.getMessage()]
    assert len(found) == 1 and "LEVERED_MANAGED_WAREHOUSE=duckdb" in found[0]


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def duck(tmp_path_factory: Any) -> Iterator[Any]:
    with running(make_settings(tmp_path_factory.mktemp("duck"), None), "sqlite") as srv:
        yield srv


def _events(seed: int) -> tuple[list[Exp], list[Rew]]:
    """Random exposures and rewards that ingestion accepts (UUID ids, valid contexts)."""
    rng = random.Random(seed)
    contexts = [{"country": "US", "device_type": "mobile"}, {"country": "DE"}, {},
                {"device_type": "desktop", "country": "US"}]
    users = [f"u{i}" for i in range(30)]
    exposures = [Exp(rng.choice(users), rng.randrange(0, 144) / 2, rng.choice(SERVABLE),
                     rng.choice(contexts), str(uuid.UUID(int=rng.getrandbits(128))),
                     rng.random() < 0.1, rng.choice([0.2, 0.5, 1.0, None]))
                 for _ in range(400)]
    rewards = [Rew(rng.choice(users), rng.randrange(-4, 170) / 2, rng.choice([1.0, 2.5, -1.0, 0.0]))
               for _ in range(300)]
    return exposures, rewards


def _iso(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _train(srv: Any, exposures: list[Exp], rewards: list[Rew], numeric: bool) -> dict[str, Any]:
    from levered_server.services.training_sql import cell_stats

    org = new_org(srv)
    metric = make_metric(org, name="paid", sql="SELECT anonymous_id, timestamp_utc, value "
                         "FROM managed_dw.rewards WHERE name = 'paid'",
                         **({"value": "value"} if numeric else {}))
    body = hero(metric["id"])
    body["training_data_config"]["reward"]["type"] = "numeric" if numeric else "bool"
    opt = org.post("/api/v2/optimizations", json=body).json()
    from tests.server.test_training_sql import _variant

    events = {"exposures": [{"anonymous_id": e.anon, "optimization_id": opt["id"],
                             "variant": _variant(e.variant), "context": e.context,
                             "exposure_id": e.exposure_id, "in_holdout": e.in_holdout,
                             "propensity": e.propensity, "timestamp": _iso(e.at)}
                            for e in exposures],
              "rewards": [{"anonymous_id": r.anon, "name": "paid", "value": r.value,
                           "timestamp": _iso(r.at)} for r in rewards]}
    for kind, batch in events.items():
        for start in range(0, len(batch), 500):
            resp = org.post(f"/api/v2/ingest/{kind}", json={"events": batch[start:start + 500]})
            assert resp.status_code == 200, resp.text
    stats, scanned, _ = cell_stats(runtime=srv.runtime, org_id=org.id, optimization_id=opt["id"])
    trained = org.post(f"/api/v2/models/{opt['model_id']}/train")
    assert trained.status_code == 200, trained.text
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    return {"cells": decoded(stats), "scanned": scanned, "model": trained.json(), "state": state}


@needs_pg
@pytest.mark.parametrize("numeric", [False, True])
def test_training_on_postgres_matches_duckdb(duck, pg, numeric):
    exposures, rewards = _events(7)
    want = reference(exposures, rewards, numeric)
    on_duck, on_pg = (_train(srv, exposures, rewards, numeric) for srv in (duck, pg))
    for got in (on_duck, on_pg):
        assert_cells(got["cells"], want)
    assert on_pg["scanned"] == on_duck["scanned"] == len(exposures) + len(rewards)
    for key in ("observations", "version", "status"):
        assert on_pg["model"][key] == on_duck["model"][key]
    assert on_pg["model"]["in_sample_metrics"]["historic_reward"] == pytest.approx(
        on_duck["model"]["in_sample_metrics"]["historic_reward"], rel=1e-12)
    assert on_pg["state"]["last_run"]["rows_scanned"] == \
        on_duck["state"]["last_run"]["rows_scanned"]
    assert [v["exposures"] for v in on_pg["state"]["variants"]] == \
        [v["exposures"] for v in on_duck["state"]["variants"]]
