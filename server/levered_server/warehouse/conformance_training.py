"""The training statement's cases of the driver conformance suite (`conformance.py`): the
statement, in the driver's dialect, against the plain-Python reference."""

from __future__ import annotations

import datetime as dt
import json
import random
import types
import uuid
from typing import Any, ClassVar

from levered_server.engine.stats import CellStats
from levered_server.services.design import in_holdout
from levered_server.services.training_sql import MAX_CELLS, training_statement
from levered_server.warehouse.conformance_data import EXPOSURES, GOALS, Table
from levered_server.warehouse.driver_api import WarehouseDriver
from levered_server.warehouse.exposure_writer import COLUMNS as EXPOSURE_COLUMNS
from levered_server.warehouse.reference import (
    FACTORS,
    HERO,
    SERVABLE,
    T0,
    US_MOBILE,
    Exp,
    Rew,
    assert_cells,
    decoded,
    reference,
    variant,
)


class TrainingConformance:
    """The training cases; :class:`conformance.DriverConformance` sets the attributes."""

    random_datasets: ClassVar[int] = 2
    exact_users: ClassVar[bool] = True
    sorted_json: ClassVar[bool] = False

    def make_driver(self, tables: dict[str, Table]) -> WarehouseDriver:
        """See :meth:`conformance.DriverConformance.make_driver`."""
        raise NotImplementedError

    def _json(self, value: Any) -> str:
        return json.dumps(value, sort_keys=self.sorted_json)

    def train(self, exposures: list[Exp], rewards: list[Rew], numeric: bool
              ) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """(the statement's cells, the reference's) for one dataset.

        A bring-your-own driver reads the exposures from a `levered_exposures` table (API.md
        10.3); a managed one gets them through its `append_exposures`.
        """
        opt_id = str(uuid.uuid4())
        goal_rows = [(r.anon, r.at, r.value, "goal") for r in rewards]
        contexts = [self._json(e.context) if isinstance(e.context, dict) else e.context
                    for e in exposures]
        driver = self.make_driver({"goals": (GOALS, goal_rows), "levered_exposures": (
            EXPOSURES, [(e.anon, e.optimization or opt_id, self._json(variant(e.variant)), e.at,
                         e.exposure_id, c, e.propensity, e.in_holdout)
                        for e, c in zip(exposures, contexts, strict=True)])})
        if driver.managed:
            rows = [dict(zip(EXPOSURE_COLUMNS, (
                e.exposure_id, e.anon, e.optimization or opt_id, self._json(variant(e.variant)),
                e.variant, c, e.in_holdout, e.propensity, None, "ingest", None, e.at, "org",
                e.at), strict=True)) for e, c in zip(exposures, contexts, strict=True)]
            driver.append_exposures(rows)  # type: ignore[attr-defined]
        config = json.loads(json.dumps(HERO["training_data_config"]))
        config["reward"]["type"] = "numeric" if numeric else "bool"
        opt = types.SimpleNamespace(id=opt_id, holdout_percentage=HERO["holdout_percentage"],
                                    training_data_config=config,
                                    excluded_combinations=HERO["excluded_combinations"],
                                    created_at=T0 - dt.timedelta(days=1))
        metric = types.SimpleNamespace(
            sql="SELECT anonymous_id, ts, value FROM goals WHERE name = 'goal' "
                "AND ts >= @start_date",
            anonymous_id_column="anonymous_id", timestamp_column="ts",
            value_column="value" if numeric else None,
            reward_type="numeric" if numeric else "bool")
        sql, params = training_statement(driver, opt, metric, 120)
        result = driver.query_columns(sql, limit=MAX_CELLS, params=params, timeout=300)
        got = decoded(CellStats.from_columns(result.columns, list(FACTORS)))

        def held(e: Exp) -> bool:
            if driver.managed:  # as recorded; NULL counts as not held out
                return bool(e.in_holdout)
            # a bring-your-own row without in_holdout: the holdout hash (API.md 2.4)
            return bool(e.in_holdout if e.in_holdout is not None else
                        e.anon is not None and in_holdout(opt_id, e.anon,
                                                          HERO["holdout_percentage"]))

        return got, reference(exposures, rewards, numeric, held)

    def _check(self, got: dict[Any, Any], want: dict[Any, Any]) -> None:
        if not self.exact_users:
            for key, cell in want.items():
                users = got.get(key, {}).pop("users", None)
                expected = cell.pop("users")
                assert users is not None and abs(users - expected) <= 0.05 * expected + 1, \
                    (key, users, expected)
        assert_cells(got, want)

    def test_the_training_statement_matches_the_reference(self) -> None:
        for seed in range(1, self.random_datasets + 1):
            rng = random.Random(seed)
            contexts: list[Any] = [US_MOBILE, {"device_type": "mobile", "country": "US"},
                                   {"country": "DE"}, {"country": "DE", "device_type": True},
                                   None, '{"country": "US", "x": [1]}']
            users = [f"u{i}" for i in range(20)] + [None]
            exposures, used = [], set()
            for n in range(200):
                anon = rng.choice(users)
                hours = rng.randrange(0, 144) / 2  # half-hour grid: ties and window ends
                # IDs unique; none only where no other exposure of the user shares the time
                no_id = rng.random() < 0.15 and (anon, hours) not in used
                used.add((anon, hours))
                exposures.append(Exp(
                    anon, hours, rng.choice([*SERVABLE, 6]), rng.choice(contexts),
                    None if no_id else f"{rng.randrange(16 ** 6):06x}-{n:03d}",
                    rng.choice([False, False, True, None]),
                    rng.choice([0.2, 0.5, 1.0, None, 0.0]),
                    "another" if rng.random() < 0.05 else None))
            rewards = [Rew(rng.choice(users), rng.randrange(-4, 170) / 2,
                           rng.choice([1.0, 2.5, -1.0, 0.0, None])) for _ in range(150)]
            for numeric in (False, True):
                self._check(*self.train(exposures, rewards, numeric))

    def test_the_training_statement_on_edge_cases(self) -> None:
        exposures = [
            Exp("a", 0, 1, US_MOBILE, "a1"), Exp("a", 5, 2, US_MOBILE, "a2"),
            Exp("b", 0, 1, US_MOBILE, "b-2"), Exp("b", 0, 3, US_MOBILE, "b-9"),
            Exp("c", 0, 4, US_MOBILE, None), Exp("c", 0, 3, US_MOBILE, "c-1"),
            Exp("d", 0, 1, US_MOBILE, "d1"), Exp("e", 0, 1, US_MOBILE, "e1"),
            Exp("h", 0, 5, US_MOBILE, "h1"), Exp("h", 1, 6, US_MOBILE, "h2"),
            Exp("h", 2, 5, US_MOBILE, "h3", optimization="another"),
            Exp("i", 0, 2, None, None), Exp("i", 0, 2, None, None),
            Exp("k", 0, 2, '{"device_type": "mobile", "country": "US", "extra": 1}', "k1"),
            Exp("k", 30, 2, '{"country": null}', "k2", propensity=0.0),
            Exp("k", 60, 2, "{}", "k3", propensity=None)]
        rewards = [Rew("a", 3), Rew("a", 6), Rew("b", 1), Rew("c", 2), Rew("d", 24.5),
                   Rew("e", 24), Rew("h", 3), Rew("i", 0), Rew("k", 0), Rew("k", 30),
                   Rew("nobody", 1)]
        for numeric in (False, True):
            got, want = self.train(exposures, rewards, numeric)
            self._check(got, want)
            us = ("US", "mobile")
            assert got[(3, us, False)]["reward_sum"] == 2  # b-9 and c-1 won the ties
            assert got[(4, us, False)]["reward_sum"] == 0  # the row without an ID lost

    def test_no_exposures_no_cells(self) -> None:
        got, want = self.train([], [Rew("a", 1)], False)
        assert got == want == {}
