"""`bench/train --drivers`: the training statement against a bare GROUP BY, on every driver here.

For each engine this machine can run (DuckDB, PostgreSQL, ClickHouse on chDB, Snowflake on
fakesnow, BigQuery's SQL on DuckDB through sqlglot, the example SQLite driver) it loads the same
N exposures and their rewards as a bring-your-own `levered_exposures` and `goals` table (through
the engine's conformance-test loader), then times, through the driver (`query_columns` /
`query`, connection included in both):

- the training statement (`training_sql.training_statement`: last-touch attribution, cells);
- a bare GROUP BY of the same exposures LEFT JOIN rewards within the 24 h window per (variant,
  country, device_type, in_holdout), no attribution: the engine's floor for one pass.

The ratio of the two (best of `--repeat`) is the number docs/benchmarks.md reports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import pathlib
import random
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server")]

from levered_server.services.training_sql import MAX_CELLS, training_statement  # noqa: E402
from levered_server.warehouse.conformance import EXPOSURES, GOALS  # noqa: E402
from levered_server.warehouse.reference import HERO, variant  # noqa: E402

COUNTRIES = ["US", "DE", "FR"]
DEVICES = ["mobile", "desktop", "tablet"]
T0 = dt.datetime(2026, 9, 1)


def dataset(n: int, seed: int = 7) -> tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(optimization id, exposure rows, goal rows): users see ~2 exposures; ~3 % convert
    within an hour; sticky variant and context per user; 60 days."""
    rng = random.Random(seed)
    opt_id = str(uuid.UUID(int=rng.getrandbits(128)))
    users = max(1, n // 2)
    per_user = [(1 + rng.randrange(5), rng.choice(COUNTRIES), rng.choice(DEVICES))
                for _ in range(users)]
    exposures, goals = [], []
    for i in range(n):
        u = i % users
        v, country, device = per_user[u]
        at = T0 + dt.timedelta(seconds=i * 5_184_000 / n)
        exposures.append((f"user-{u}", opt_id, json.dumps(variant(v), sort_keys=True), at,
                          f"x{i}", json.dumps({"country": country, "device_type": device},
                                              sort_keys=True), 0.2, False))
        if rng.random() < 0.03 + 0.005 * v:
            goals.append((f"user-{u}", at + dt.timedelta(seconds=rng.randrange(3600)), 1.0,
                          "goal"))
    return opt_id, exposures, goals


def bare_sql(driver: Any) -> str:
    """The GROUP BY baseline in the driver's dialect (parameters: opt, k0, k1)."""
    d = driver.dialect
    q, ph = d.quote, d.placeholder
    return f"""
SELECT e.{q('variant')} AS variant, {d.json_text(f"e.{q('context')}", ph('k0'))} AS c0,
       {d.json_text(f"e.{q('context')}", ph('k1'))} AS c1, e.{q('in_holdout')} AS in_holdout,
       count(*) AS exposures, count(r.{q('anonymous_id')}) AS rewards
FROM {q('levered_exposures')} e
LEFT JOIN {q('goals')} r ON r.{q('anonymous_id')} = e.{q('anonymous_id')}
  AND e.{q('timestamp')} <= r.{q('ts')}
  AND r.{q('ts')} <= {d.add_hours(f"e.{q('timestamp')}", 24)}
WHERE e.{q('optimization_id')} = {ph('opt')}
GROUP BY e.{q('variant')}, {d.json_text(f"e.{q('context')}", ph('k0'))},
         {d.json_text(f"e.{q('context')}", ph('k1'))}, e.{q('in_holdout')}"""


def _engines(tmp: pathlib.Path) -> dict[str, Callable[[], Any]]:
    """Engine name → a conformance-test instance whose `make_driver` loads tables."""
    def duckdb() -> Any:
        from tests.drivers.test_duckdb_conformance import TestDuckDBDialectOnBringYourOwnExposures

        t = TestDuckDBDialectOnBringYourOwnExposures()
        t.warehouse_dir = tmp / "duckdb"
        return t

    def postgres() -> Any:
        from tests.drivers.test_postgres_conformance import TestPostgres
        from tests.pg import PG_URL

        if not PG_URL:
            raise RuntimeError("no PostgreSQL")
        t = TestPostgres()
        t.schemas = []
        return t

    def clickhouse() -> Any:
        from tests.drivers.test_clickhouse_on_chdb_conformance import TestClickHouseOnChdb

        t = TestClickHouseOnChdb()
        t.path = str(tmp / "chdb")
        return t

    def snowflake() -> Any:
        from fakesnow.instance import FakeSnow

        from tests.drivers.test_snowflake_on_fakesnow_conformance import TestSnowflakeOnFakesnow

        t = TestSnowflakeOnFakesnow()
        t.fake = FakeSnow()
        return t

    def bigquery() -> Any:
        from tests.drivers.bigquery_on_duckdb import Emulator
        from tests.drivers.test_bigquery_on_sqlglot_duckdb_conformance import (
            TestBigQueryOnSqlglotDuckDB,
        )

        t = TestBigQueryOnSqlglotDuckDB()
        t.emulator = Emulator()
        return t

    def sqlite() -> Any:
        sys.path.insert(0, str(ROOT / "examples" / "levered-warehouse-sqlite" / "tests"))
        from test_sqlite_conformance import TestSQLite

        t = TestSQLite()
        t.dir = tmp
        return t

    return {"duckdb": duckdb, "postgres": postgres, "clickhouse (chDB)": clickhouse,
            "snowflake (fakesnow)": snowflake, "bigquery (sqlglot → DuckDB)": bigquery,
            "sqlite (example driver)": sqlite}


def _duckdb_of(name: str, t: Any) -> Callable[[Any], Any] | None:
    """For engines on DuckDB: a context manager giving (connection, table prefix)."""
    @contextlib.contextmanager
    def fixed(con: Any, prefix: str) -> Iterator[tuple[Any, str]]:
        yield con, prefix

    @contextlib.contextmanager
    def managed(driver: Any) -> Iterator[tuple[Any, str]]:
        with driver.writer() as con:
            yield con, "managed_dw."

    if name == "duckdb":
        return managed
    if name.startswith("snowflake"):
        return lambda driver: fixed(t.fake.duck_conn, "LEVERED.EVENTS.")
    if name.startswith("bigquery"):
        return lambda driver: fixed(t.emulator.db, f"{driver.dataset}.")
    return None


def _bulk(con: Any, table: str, columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]
          ) -> None:
    import pandas

    con.register("levered_bench_rows", pandas.DataFrame(rows, columns=[c for c, _ in columns]))
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM levered_bench_rows")
    finally:
        con.unregister("levered_bench_rows")


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - started)
    return best, out


def one_engine(name: str, make: Callable[[], Any], n: int, repeat: int) -> dict[str, Any]:
    """Load, then time the training statement and the bare GROUP BY on one engine."""
    opt_id, exposures, goals = dataset(n)
    t = make()
    started = time.perf_counter()
    tables = {"levered_exposures": (EXPOSURES, exposures), "goals": (GOALS, goals)}
    duck = _duckdb_of(name, t)
    if duck is None:
        driver = t.make_driver(tables)
    else:  # DuckDB underneath: one bulk insert (the loaders insert row by row)
        driver = t.make_driver({k: (cols, []) for k, (cols, _) in tables.items()})
        with duck(driver) as (con, prefix):
            for table, (cols, rows) in tables.items():
                _bulk(con, f"{prefix}{table}", cols, rows)
    load_s = time.perf_counter() - started
    config = json.loads(json.dumps(HERO["training_data_config"]))
    opt = types.SimpleNamespace(id=opt_id, holdout_percentage=0, training_data_config=config,
                                excluded_combinations=HERO["excluded_combinations"],
                                created_at=T0 - dt.timedelta(days=1))
    metric = types.SimpleNamespace(
        sql="SELECT anonymous_id, ts FROM goals WHERE name = 'goal' AND ts >= @start_date",
        anonymous_id_column="anonymous_id", timestamp_column="ts", value_column=None,
        reward_type="bool")
    try:
        sql, params = training_statement(driver, opt, metric, 600)
        train_s, cells = _best(lambda: driver.query_columns(sql, limit=MAX_CELLS, params=params,
                                                            timeout=600), repeat)
        bare = bare_sql(driver)
        bare_params = {"opt": opt_id, "k0": "country", "k1": "device_type"}
        bare_s, groups = _best(lambda: driver.query(bare, limit=MAX_CELLS, params=bare_params,
                                                    timeout=600), repeat)
    finally:
        for schema in getattr(t, "schemas", []):  # PostgreSQL: drop the schema it made
            from tests.drivers.test_postgres_conformance import _connect

            with _connect() as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return {"engine": name, "exposures": n, "rewards": len(goals), "load_s": round(load_s, 2),
            "train_s": round(train_s, 3), "bare_groupby_s": round(bare_s, 3),
            "ratio": round(train_s / bare_s, 2), "cells": cells.n_rows,
            "groups": len(groups.rows)}


def main(sizes: list[int], repeat: int, only: list[str] | None) -> None:
    """Print one JSON line per (engine, size)."""
    with tempfile.TemporaryDirectory(prefix="levered-train-drivers-") as tmp:
        engines = _engines(pathlib.Path(tmp))
        for n in sizes:
            for name, make in engines.items():
                if only and not any(o in name for o in only):
                    continue
                try:
                    print(json.dumps(one_engine(name, make, n, repeat)), flush=True)
                except Exception as exc:  # noqa: BLE001 - an engine this machine lacks
                    print(json.dumps({"engine": name, "exposures": n,
                                      "skipped": f"{type(exc).__name__}: {exc}"[:300]}),
                          flush=True)
