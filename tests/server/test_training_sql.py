"""The training statement (services/training_sql.py) against a reference of docs/api.md 2.5.

Each case runs on the managed DuckDB warehouse and, with LEVERED_TEST_POSTGRES_URL, on a
bring-your-own PostgreSQL exposures table: explicit edge cases (ties on time, a reward between
two exposures, after the window, before the exposure, a user in two cells, duplicate rows) and
random data checked cell by cell against a plain-Python last-touch attribution.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import uuid
from typing import Any

import pytest

from levered_server.engine.stats import SUM_COLUMNS
from levered_server.services.design import in_holdout
from levered_server.services.training_sql import cell_stats
from levered_server.warehouse.reference import (  # noqa: F401 - re-exported for tests/drivers
    FACTORS,
    SERVABLE,
    T0,
    US_MOBILE,
    Exp,
    Rew,
    W,
    assert_cells,
    decoded,
    reference,
)
from levered_server.warehouse.reference import variant as _variant
from tests.server.conftest import PG_URL, make_settings, new_org, pg_exec, running
from tests.server.factories import connect_postgres, hero, make_metric

# --------------------------------------------------------------------------- warehouses


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("data"), None)
    with running(settings, "sqlite") as s:
        yield s


class _Warehouse:
    """What both warehouses share: a metric over their reward rows (`reward_table`, `ts`)."""

    reward_table = ""
    ts = ""  # its timestamp column

    def __init__(self, org: Any) -> None:
        self.org = org
        self.tag = ""

    def metric(self, numeric: bool, start_date: bool = False) -> dict[str, Any]:
        self.tag = uuid.uuid4().hex[:8]  # this metric's reward rows
        where = f" AND {self.ts} >= @start_date" if start_date else ""
        sql = (f"SELECT anonymous_id, {self.ts}{', value' if numeric else ''} "
               f"FROM {self.reward_table} WHERE name = '{self.tag}'{where}")
        return make_metric(self.org, name=f"goal-{uuid.uuid4().hex[:6]}", sql=sql,
                           timestamp=self.ts, **({"value": "value"} if numeric else {}))


class Managed(_Warehouse):
    """The organization's embedded DuckDB, written directly (NULL or tied exposure IDs)."""

    name = "duckdb"
    reward_table, ts = "rewards", "timestamp_utc"

    def holdout(self, opt_id: str) -> Any:
        return lambda e: bool(e.in_holdout)  # as recorded, NULL counts as FALSE

    def write(self, opt_id: str, exposures: list[Exp], rewards: list[Rew]) -> None:
        driver = self.org.server.runtime.warehouses.managed(self.org.id)
        with driver.writer() as con:
            if exposures:
                con.executemany(
                    "INSERT INTO managed_dw.exposures (exposure_id, anonymous_id, "
                    "optimization_id, variant, variant_number, context, in_holdout, propensity,"
                    " timestamp_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(e.exposure_id, e.anon, e.optimization or opt_id,
                      json.dumps(_variant(e.variant)), e.variant, e.context_text, e.in_holdout,
                      e.propensity, e.at) for e in exposures])
            if rewards:
                con.executemany(
                    "INSERT INTO managed_dw.rewards (anonymous_id, name, value, timestamp_utc) "
                    "VALUES (?, ?, ?, ?)", [(r.anon, self.tag, r.value, r.at) for r in rewards])


class Byo(_Warehouse):
    """A bring-your-own PostgreSQL schema with an exposures table and a goals table."""

    name = "postgres"
    ts = "ts"

    def __init__(self, org: Any, schema: str) -> None:
        super().__init__(org)
        self.schema = schema
        self.reward_table = f"{schema}.goals"

    def holdout(self, opt_id: str) -> Any:
        # rows without in_holdout get the holdout hash (docs/api.md 2.4); HERO holds out 10 %
        return lambda e: bool(e.in_holdout if e.in_holdout is not None else
                              e.anon is not None and in_holdout(opt_id, e.anon, 10))

    def write(self, opt_id: str, exposures: list[Exp], rewards: list[Rew]) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_URL)  # type: ignore[arg-type]
        with engine.begin() as conn:
            if exposures:
                conn.execute(sqlalchemy.text(
                    f"INSERT INTO {self.schema}.levered_exposures VALUES "
                    "(:anon, :opt, :variant, :ts, :id, :context, :propensity, :holdout)"),
                    [{"anon": e.anon, "opt": e.optimization or opt_id,
                      "variant": json.dumps(_variant(e.variant)),
                      "ts": e.at.replace(tzinfo=dt.UTC), "id": e.exposure_id,
                      "context": e.context_text, "propensity": e.propensity,
                      "holdout": e.in_holdout} for e in exposures])
            if rewards:
                conn.execute(sqlalchemy.text(
                    f"INSERT INTO {self.schema}.goals VALUES (:anon, :ts, :value, :name)"),
                    [{"anon": r.anon, "ts": r.at.replace(tzinfo=dt.UTC), "value": r.value,
                      "name": self.tag} for r in rewards])
        engine.dispose()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, srv):
    org = new_org(srv)
    if request.param == "duckdb":
        yield Managed(org)
        return
    if not PG_URL:
        pytest.skip("LEVERED_TEST_POSTGRES_URL not set")
    schema = "trainsql_" + uuid.uuid4().hex[:10]
    pg_exec(f"CREATE SCHEMA {schema}")
    pg_exec(f"CREATE TABLE {schema}.goals (anonymous_id text, ts timestamptz, "
            "value double precision, name text)")
    pg_exec(f"CREATE TABLE {schema}.levered_exposures (anonymous_id text, optimization_id text,"
            " variant text, \"timestamp\" timestamptz, exposure_id text, context text,"
            " propensity double precision, in_holdout boolean)")
    connect_postgres(org, schema)
    try:
        yield Byo(org, schema)
    finally:
        pg_exec(f"DROP SCHEMA {schema} CASCADE")


def train_cells(wh: Any, exposures: list[Exp], rewards: list[Rew], *, numeric: bool = False,
                start_date: bool = False) -> tuple[dict[Any, Any], int | None, dict[str, Any]]:
    metric = wh.metric(numeric, start_date)
    body = hero(metric["id"])
    body["training_data_config"]["reward"]["type"] = "numeric" if numeric else "bool"
    resp = wh.org.post("/api/v2/optimizations", json=body)
    assert resp.status_code == 201, resp.text
    opt = resp.json()
    wh.write(opt["id"], exposures, rewards)
    stats, scanned, _ = cell_stats(runtime=wh.org.server.runtime, org_id=wh.org.id,
                                   optimization_id=opt["id"])
    return decoded(stats), scanned, opt


# --------------------------------------------------------------------------- cases


def test_edge_cases(warehouse):
    exposures = [
        # a: reward between two exposures → the first; a second reward after the second one
        Exp("a", 0, 1, US_MOBILE, "a1"), Exp("a", 5, 2, US_MOBILE, "a2"),
        # b: two exposures at the same instant → the greatest exposure_id wins
        Exp("b", 0, 1, US_MOBILE, "b-2"), Exp("b", 0, 3, US_MOBILE, "b-9"),
        # c: at the same instant, an exposure without an ID loses to one with an ID
        Exp("c", 0, 4, US_MOBILE, None), Exp("c", 0, 3, US_MOBILE, "c-1"),
        # d: reward after the window; reward exactly at its end
        Exp("d", 0, 1, US_MOBILE, "d1"), Exp("e", 0, 1, US_MOBILE, "e1"),
        # f: reward before its only exposure
        Exp("f", 10, 1, US_MOBILE, "f1"),
        # g: one user in two cells (another country later, and the holdout)
        Exp("g", 0, 1, US_MOBILE, "g1"), Exp("g", 48, 1, {"country": "DE"}, "g2"),
        Exp("g", 96, 1, US_MOBILE, "g3", in_holdout=True, propensity=None),
        # h: the latest exposure in the window is excluded or another optimization's: the
        # reward goes to the earlier one of this optimization
        Exp("h", 0, 5, US_MOBILE, "h1"), Exp("h", 1, 6, US_MOBILE, "h2"),
        Exp("h", 2, 5, US_MOBILE, "h3", optimization="another"),
        # i: identical duplicate rows (no IDs) → credited once
        Exp("i", 0, 2, None, None), Exp("i", 0, 2, None, None),
        # k: key order, an extra key, a JSON null and no context all map to cells
        Exp("k", 0, 2, '{"device_type": "mobile", "country": "US", "extra": 1}', "k1"),
        Exp("k", 30, 2, '{"country": null}', "k2", propensity=0.0),
        Exp("k", 60, 2, "{}", "k3", propensity=None),
    ]
    rewards = [Rew("a", 3), Rew("a", 6), Rew("b", 1), Rew("c", 2), Rew("d", 24.5),
               Rew("e", 24), Rew("f", 9), Rew("g", 1), Rew("g", 49), Rew("g", 97), Rew("g", 98),
               Rew("h", 3), Rew("i", 0), Rew("i", 2), Rew("k", 0), Rew("k", 30), Rew("nobody", 1)]
    got, scanned, opt = train_cells(warehouse, exposures, rewards)
    want = reference(exposures, rewards, False, warehouse.holdout(opt["id"]))
    assert_cells(got, want)
    assert scanned == len([e for e in exposures if e.optimization is None and e.variant != 6]) \
        + len(rewards)
    us = ("US", "mobile")
    # spelled out: variant 1 in US/mobile: a1 (reward at 3 h), b-2 (lost the tie), d1
    # (reward too late), e1 (reward at the window's end), f1 (reward before), g1
    assert got[(1, us, False)]["exposures"] == 6 and got[(1, us, False)]["reward_sum"] == 3
    assert got[(1, us, False)]["users"] == 6
    assert got[(3, us, False)]["reward_sum"] == 2                # b-9 and c-1 won the ties
    assert got[(4, us, False)]["reward_sum"] == 0                # the ID-less row lost
    assert got[(2, us, False)]["reward_sum"] == 2                # a2, and k1
    assert got[(1, ("DE", None), False)] ["reward_sum"] == 1     # g2
    assert got[(1, us, True)]["reward_sum"] == 1                 # g3, two rewards, bool
    assert got[(5, us, False)]["reward_sum"] == 1                # h1
    assert got[(2, (None, None), False)]["exposures"] == 4       # i twice, k2, k3
    assert got[(2, (None, None), False)]["reward_sum"] == 2      # i once, k2
    assert got[(2, (None, None), False)]["users"] == 2
    # observations (a per-exposure query) break the ties the same way
    obs = wh_observations(warehouse, opt["id"])
    assert {(o["variant_number"], o["reward"]) for o in obs if o["anonymous_id"] in "bc"} == \
        {(1, 0), (3, 1), (4, 0)}
    assert [o["reward"] for o in obs if o["anonymous_id"] == "b" and o["variant_number"] == 3] \
        == [1]


def wh_observations(wh: Any, opt_id: str) -> list[dict[str, Any]]:
    body = wh.org.get(f"/api/v2/optimizations/{opt_id}/observations",
                      params={"size": 100}).json()
    assert body["total"] <= 100, body
    return list(body["observations"])


def test_numeric_rewards_sum_per_exposure(warehouse):
    exposures = [Exp("a", 0, 1, US_MOBILE, "a1"), Exp("a", 5, 1, US_MOBILE, "a2"),
                 Exp("b", 0, 1, US_MOBILE, "b1"), Exp("c", 0, 1, US_MOBILE, "c1"),
                 Exp("d", 0, 1, US_MOBILE, "d1")]
    rewards = [Rew("a", 1, 10.0), Rew("a", 6, 2.5), Rew("a", 6, 4.0), Rew("b", 1, None),
               Rew("c", 1, -3.0), Rew("c", 2, 3.0), Rew("d", 1, 0.0), Rew("d", 1, 7.0)]
    got, _, opt = train_cells(warehouse, exposures, rewards, numeric=True)
    assert_cells(got, reference(exposures, rewards, True, warehouse.holdout(opt["id"])))
    cell = got[(1, ("US", "mobile"), False)]
    assert cell["reward_sum"] == pytest.approx(10 + 6.5 + 0 + 7)
    assert cell["reward_count"] == 3  # c's rewards sum to 0, b's value is NULL


def test_start_date_is_honoured(warehouse):
    # Rewards before the optimization's created_at are not read; the window is unchanged.
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    hours = (now - T0).total_seconds() / 3600
    exposures = [Exp("a", hours - 2, 1, US_MOBILE, "a1"), Exp("b", hours - 2, 1, US_MOBILE, "b1")]
    rewards = [Rew("a", hours - 1), Rew("b", hours + 1)]
    got, scanned, _ = train_cells(warehouse, exposures, rewards, start_date=True)
    assert got[(1, ("US", "mobile"), False)]["reward_sum"] == 1
    assert scanned == 2 + 1


def test_no_exposures(warehouse):
    got, scanned, _ = train_cells(warehouse, [], [Rew("a", 1)])
    assert got == {} and scanned is None


def test_users_are_a_sketch_on_duckdb_and_exact_on_postgres(warehouse):
    # 3,000 users, one or two exposures each, all in one cell: the sum of the other columns is
    # exact everywhere; users is DuckDB's HyperLogLog estimate (see training_sql's docstring).
    exposures = [Exp(f"user-{i}", (i % 7) + k, 1, US_MOBILE, f"x{i}-{k}")
                 for i in range(3000) for k in range(1 + i % 2)]
    got, _, _ = train_cells(warehouse, exposures, [])
    cell = got[(1, ("US", "mobile"), False)]
    assert cell["exposures"] == 4500
    if warehouse.name == "postgres":
        assert cell["users"] == 3000
    else:
        assert cell["users"] == pytest.approx(3000, rel=0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_data_matches_the_reference(warehouse, seed):
    rng = random.Random(seed)
    contexts = [US_MOBILE, {"device_type": "mobile", "country": "US"}, {"country": "DE"},
                {"country": "DE", "device_type": True}, None, '{"country": "US", "x": [1]}']
    users = [f"u{i}" for i in range(25)] + [None]
    exposures, used = [], set()
    for n in range(400):
        anon = rng.choice(users)
        hours = rng.randrange(0, 144) / 2  # half-hour grid: ties and exact window ends
        # IDs unique; without an ID only where no other exposure of the user shares the time
        # (then the contract's order is undefined), except exact duplicates below
        no_id = rng.random() < 0.15 and (anon, hours) not in used
        used.add((anon, hours))
        e = Exp(anon, hours, rng.choice(SERVABLE + [6]), rng.choice(contexts),
                None if no_id else f"{rng.randrange(16 ** 6):06x}-{n:03d}",
                rng.choice([False, False, True, None]), rng.choice([0.2, 0.5, 1.0, None, 0.0]),
                "another" if rng.random() < 0.05 else None)
        exposures.append(e)
        if no_id and rng.random() < 0.3:
            exposures.append(dataclasses.replace(e))
    rewards = [Rew(rng.choice(users), rng.randrange(-4, 170) / 2,
                   rng.choice([1.0, 2.5, -1.0, 0.0, None])) for _ in range(300)]
    for numeric in (False, True):
        got, scanned, opt = train_cells(warehouse, exposures, rewards, numeric=numeric)
        assert_cells(got, reference(exposures, rewards, numeric, warehouse.holdout(opt["id"])))
        assert scanned == sum(e.optimization is None and e.variant != 6 for e in exposures) \
            + len(rewards)


def test_the_column_fetch_matches_the_row_fetch_exactly(warehouse):
    """`cell_stats` reads columns (numpy from DuckDB); the row path gives the same cells."""
    import numpy as np

    from levered_server.engine.stats import CellStats
    from levered_server.services.attribution import prepare_sources, window_hours
    from levered_server.services.training_sql import MAX_CELLS, cells_sql

    rng = random.Random(7)
    contexts = [US_MOBILE, {"country": "DE"}, {"country": "DE", "device_type": True}, None]
    exposures = [Exp(f"u{rng.randrange(30)}", rng.randrange(0, 96) / 2, rng.choice(SERVABLE),
                     rng.choice(contexts), f"id{n}", rng.choice([False, True, None]),
                     rng.choice([0.2, 0.3, 1.0, None])) for n in range(300)]
    rewards = [Rew(f"u{rng.randrange(30)}", rng.randrange(0, 120) / 2,
                   rng.choice([1.0, 2.5, 0.1])) for _ in range(200)]
    for numeric in (False, True):
        metric = warehouse.metric(numeric)
        body = hero(metric["id"])
        body["training_data_config"]["reward"]["type"] = "numeric" if numeric else "bool"
        opt = warehouse.org.post("/api/v2/optimizations", json=body).json()
        warehouse.write(opt["id"], exposures, rewards)
        runtime = warehouse.org.server.runtime
        stats, scanned, _ = cell_stats(runtime=runtime, org_id=warehouse.org.id,
                                       optimization_id=opt["id"])
        driver, o, m, sources, params = prepare_sources(runtime, warehouse.org.id, opt["id"])
        tail, extra = cells_sql(driver.dialect, list(FACTORS), m.reward_type, window_hours(o))
        rows = driver.query("WITH " + sources + tail, limit=MAX_CELLS,
                            params={**params, **extra}, timeout=30).rows
        expected = CellStats.from_rows(rows, FACTORS)
        assert scanned == max(int(r["rows_scanned"]) for r in rows)
        assert stats.context_levels == expected.context_levels
        assert np.array_equal(stats.variant, expected.variant)
        assert np.array_equal(stats.context, expected.context)
        assert np.array_equal(stats.in_holdout, expected.in_holdout)
        for c in ("exposures", "users", "reward_count", "propensity_count"):
            assert stats.sums[c].tobytes() == expected.sums[c].tobytes(), c
        # DuckDB's parallel float sums differ in the last bit from one run to the next
        # (the row path against itself too), so the float sums are equal to rounding.
        for c in SUM_COLUMNS:
            assert np.allclose(stats.sums[c], expected.sums[c], rtol=1e-12, atol=0), c
