"""A plain-Python last-touch attribution (API.md 2.5), the reference the training statement is
checked against (tests/server/test_training_sql.py, the driver conformance suite).

Rows are built by hand (:class:`Exp`, :class:`Rew`); :func:`reference` returns the cell sums
of :mod:`levered_server.engine.stats` by the contract's words, one reward at a time, and
:func:`decoded` turns a statement's :class:`~levered_server.engine.stats.CellStats` into the same
shape for :func:`assert_cells`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

from levered_server.engine.stats import SUM_COLUMNS, context_text

T0 = dt.datetime(2026, 11, 1, 0, 0)
W = dt.timedelta(hours=24)  # the conversion window of HERO (the optimization used)
HEADLINES = ["Ship faster", "Build better", "Scale up"]
CTAS = ["Get started", "Try it free"]
SERVABLE = [1, 2, 3, 4, 5]  # HERO excludes #6 (Scale up, Try it free)
FACTORS = ("country", "device_type")
US_MOBILE = {"country": "US", "device_type": "mobile"}
#: The optimization the reference assumes (its training_data_config and exclusions).
HERO: dict[str, Any] = {
    "training_data_config": {
        "reward": {"name": "signup", "type": "bool"},
        "design_factors": [
            {"name": "headline", "dtype": "str", "levels": HEADLINES},
            {"name": "cta_text", "levels": CTAS},
        ],
        "context_factors": [{"name": "country", "levels": ["US", "DE"]},
                            {"name": "device_type"}],
        "attribution": {"type": "last_touch", "conversion_window_hours": 24},
    },
    "holdout_percentage": 10,
    "excluded_combinations": [{"cta_text": "Try it free", "headline": "Scale up"}],
}


def variant(number: int) -> dict[str, str]:
    """The HERO variant of a number (1-based)."""
    return {"headline": HEADLINES[(number - 1) // 2], "cta_text": CTAS[(number - 1) % 2]}


@dataclasses.dataclass
class Exp:
    """One exposure row."""

    anon: str | None
    hours: float
    variant: int = 1
    context: Any = None  # dict → JSON text; str → as is; None → NULL
    exposure_id: str | None = None
    in_holdout: bool | None = False
    propensity: float | None = 0.5
    optimization: str | None = None  # another optimization's ID

    @property
    def at(self) -> dt.datetime:
        return T0 + dt.timedelta(hours=self.hours)

    @property
    def context_text(self) -> str | None:
        return json.dumps(self.context) if isinstance(self.context, dict) else self.context


@dataclasses.dataclass
class Rew:
    """One reward row."""

    anon: str | None
    hours: float
    value: float | None = 1.0

    @property
    def at(self) -> dt.datetime:
        return T0 + dt.timedelta(hours=self.hours)


def reference(exposures: list[Exp], rewards: list[Rew], numeric: bool,
              holdout: Callable[[Exp], bool] = lambda e: bool(e.in_holdout)
              ) -> dict[tuple[Any, ...], dict[str, float]]:
    """Cell statistics by the contract's words, one reward at a time."""
    mine = [e for e in exposures if e.optimization is None and e.variant in SERVABLE]
    credited: dict[int, list[Rew]] = {}
    for r in rewards:
        cands = [i for i, e in enumerate(mine)
                 if r.anon is not None and e.anon == r.anon and e.at <= r.at <= e.at + W]
        if cands:
            # latest exposure; ties on time: the greatest exposure_id (NULL below any)
            best = max(cands, key=lambda i: (mine[i].at, mine[i].exposure_id is not None,
                                             mine[i].exposure_id or ""))
            credited.setdefault(best, []).append(r)
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, e in enumerate(mine):
        ctx = json.loads(e.context_text) if e.context_text else {}
        held = holdout(e)
        key = (e.variant, tuple(context_text(ctx.get(f)) for f in FACTORS), held)
        c = cells.setdefault(key, {**dict.fromkeys(SUM_COLUMNS, 0.0), "_users": set()})
        got = credited.get(i, [])
        if numeric:
            rv = float(sum(r.value for r in got if r.value is not None))
        else:
            rv = 1.0 if got else 0.0
        w = 1.0 if held else (1 / e.propensity if e.propensity else None)
        c["exposures"] += 1
        if e.anon is not None:
            c["_users"].add(e.anon)
        c["reward_count"] += rv > 0
        c["reward_sum"] += rv
        c["reward_sum_sq"] += rv * rv
        if w is not None:
            c["propensity_count"] += 1
            c["ipw_weight_sum"] += w
            c["ipw_weight_sq_sum"] += w * w
            c["ipw_reward_sum"] += rv * w
            c["ipw_reward_sq_sum"] += rv * rv * w
            c["ipw_reward_w2_sum"] += rv * w * w
            c["ipw_reward_sq_w2_sum"] += rv * rv * w * w
    for c in cells.values():
        c["users"] = float(len(c.pop("_users")))
    return cells


def decoded(stats: Any) -> dict[tuple[Any, ...], dict[str, float]]:
    """A statement's `CellStats` keyed as :func:`reference` keys its cells."""
    out = {}
    for i in range(stats.n_rows):
        ctx = tuple(stats.context_levels[j][int(k)] if k >= 0 else "<other>"
                    for j, k in enumerate(stats.context[i]))
        key = (int(stats.variant[i]), ctx, bool(stats.in_holdout[i]))
        assert key not in out, f"cell {key} twice"
        out[key] = {c: float(stats.sums[c][i]) for c in SUM_COLUMNS}
    return out


def assert_cells(got: dict[Any, Any], want: dict[Any, Any]) -> None:
    """The same cells with the same sums (to 1e-9)."""
    assert sorted(got, key=repr) == sorted(want, key=repr), (sorted(got, key=repr),
                                                             sorted(want, key=repr))
    for key, sums in want.items():
        for column, value in sums.items():
            assert math.isclose(got[key][column], value, rel_tol=1e-9, abs_tol=1e-9), \
                (key, column, got[key][column], value)
