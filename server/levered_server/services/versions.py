"""Model versions: fit with the engine, persist into `Model.state`, rebuild, cache for serving.

A version's state JSON holds the summaries results and model state read (so they never refit)
and the engine's inputs (cell statistics, bias, holdout share, policy settings), so any process
can rebuild the exact same :class:`ModelVersion` from (model id, version): the posterior draws
are seeded from that pair (API.md 8.1).

Fits and rebuilds run in a worker process (`fit_worker.FitPool`) when the runtime has one, so
the engine's numpy work and the state's JSON never hold the serving process's GIL or grow its
heap; only the serving policy (numpy arrays) and the state, encoded, come back.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import itertools
import json
import logging
import random
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from levered_server.engine import policy
from levered_server.engine.cmab import CmabPrior
from levered_server.engine.importance import Importance
from levered_server.engine.ipw import IpwEstimate
from levered_server.engine.serving import ServePolicy
from levered_server.engine.stats import CellStats
from levered_server.engine.train import ModelVersion, TrainOutcome, generator, train
from levered_server.engine.variants import Design
from levered_server.services import design as design_rules
from levered_server.services.fit_worker import FitPool
from levered_server.services.lift_estimate import lift_estimate

log = logging.getLogger("levered_server.training")
ENGINE_STATE = 1
MAX_CACHED_CONTEXTS = 10_000
PREPARED_CELLS = 128  # context cells whose allocation a fit or rebuild computes in advance
CELLS_FORMAT = "zlib-b64le"  # `inputs.cells`: deflated little-endian arrays in base64
# The weighted lift is reported once the baseline's standard error is at most this share of it.
WEIGHTED_LIFT_MAX_BASELINE_RSE = 0.2
# `inputs.prior`: how a version's cmab prior was set, so a rebuild fits exactly as the fit did
# (versions without it used the fixed prior).
PRIOR_KIND = "adaptive-hyper"
_PRIORS = {"adaptive-hyper": CmabPrior(), "adaptive": CmabPrior(hyper=0.0)}
T = TypeVar("T")


def design_of(opt: Any) -> Design:
    """The engine's design of an optimization (servable variants only)."""
    factors = opt.training_data_config["design_factors"]
    servable = design_rules.servable_variants(factors, opt.excluded_combinations)
    return Design.build([len(f["levels"]) for f in factors], [n for n, _ in servable],
                        [f["name"] for f in factors])


def policy_settings(settings: Any) -> policy.PolicySettings:
    """The engine's serving knobs from the server settings."""
    return policy.PolicySettings(exploration_share=settings.exploration_share,
                                 thompson_scale=settings.thompson_scale,
                                 min_observations=settings.min_train_observations,
                                 serve_draws=settings.serve_draws)


def fit(*, model_id: str, version: int, model_type: str, reward_type: str, opt: Any,
        stats: CellStats, bias: Mapping[str, float], knobs: policy.PolicySettings,
        start_scales: Mapping[str, float] | None = None) -> TrainOutcome:
    """One engine run for `version` of a model (the draws are seeded from both).

    ``start_scales``: the previous version's estimated prior scales (``cmab``), where this
    fit's estimate starts.
    """
    return train(model_type, reward_type, design_of(opt), stats,
                 rng=generator(model_id, version),
                 holdout_share=opt.holdout_percentage / 100, bias=dict(bias), settings=knobs,
                 start_scales=start_scales)


def _importance(i: Importance, interval: bool = False) -> dict[str, Any]:
    if interval:
        return {"factor": i.factor, "mean": i.mean, "lo": i.lo, "hi": i.hi}
    return {"factor": i.factor, "mean": i.mean, "q1": i.q1, "q3": i.q3, "kind": i.kind}


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _weighted(v: ModelVersion) -> tuple[str, IpwEstimate]:
    # cmab: model + weighted residuals (doubly robust); mab: Hájek (its model is per variant).
    return ("doubly_robust", v.doubly_robust) if v.doubly_robust is not None else ("hajek", v.ipw)


def _weighted_variant(name: str, est: IpwEstimate, i: int) -> dict[str, Any] | None:
    mean, se = float(est.mean[i]), float(est.se[i])
    if not (np.isfinite(mean) and np.isfinite(se)):
        return None
    return {"estimator": name, "mean": mean, "ci_lower": mean - 1.96 * se,
            "ci_upper": mean + 1.96 * se, "effective_n": float(est.effective_n[i])}


def _weighted_lift(est: IpwEstimate, numbers: np.ndarray, best: int,
                   baseline: int) -> tuple[float | None, list[float] | None]:
    """The best variant's lift over the baseline in percent from the weighted estimates;
    None until the baseline's estimate is precise enough for a ratio to mean anything."""
    where = {int(n): i for i, n in enumerate(numbers)}
    if best not in where or baseline not in where or best == baseline:
        return None, None
    b, sb = float(est.mean[where[baseline]]), float(est.se[where[baseline]])
    # A ratio over a denominator whose interval nearly reaches zero is unbounded (Fieller):
    # the delta method then prints intervals like [-54856 %, +43898 %].
    if not (b > 0 and sb <= WEIGHTED_LIFT_MAX_BASELINE_RSE * b):
        return None, None
    lift, se = est.lift_percent(where[baseline])
    value, err = float(lift[where[best]]), float(se[where[best]])
    if not (np.isfinite(value) and np.isfinite(err)):
        return None, None
    return value, [value - 1.96 * err, value + 1.96 * err]


def state_json(v: ModelVersion, *, stats: CellStats, bias: Mapping[str, float],
               holdout_share: float, knobs: policy.PolicySettings,
               start_scales: Mapping[str, float] | None = None) -> dict[str, Any]:
    """What `Model.state` keeps of a published version."""
    s = v.variants
    estimator, weighted = _weighted(v)
    variants = [{"number": int(n), "exposures": int(v.exposures[i]),
                 "expected_reward_mean": float(s.mean[i]), "expected_reward_lo": float(s.lo[i]),
                 "expected_reward_hi": float(s.hi[i]), "prob_best": float(s.prob_best[i]),
                 "weight": float(s.weight[i]), "allocation": float(s.allocation[i]),
                 "propensity_weighted": _weighted_variant(estimator, weighted, i)}
                for i, n in enumerate(s.numbers)]
    lift = v.lift
    best = next(x for x in variants if x["number"] == lift.best_number)
    weighted_lift, weighted_interval = _weighted_lift(weighted, s.numbers, lift.best_number,
                                                      int(s.numbers[0]))
    interaction = v.interaction_importance
    return {
        "engine": ENGINE_STATE, "observations": v.observations, "variants": variants,
        "stats": {"estimated_improvement_percent": _num(lift.estimated_improvement_percent),
                  "estimated_improvement_interval": _pair(lift.estimated_improvement_interval),
                  "best_vs_baseline_percent": _num(lift.best_vs_baseline_percent),
                  "best_vs_baseline_interval": _pair(lift.best_vs_baseline_interval),
                  "estimated_progress": _num(lift.estimated_progress),
                  "best_vs_baseline_weighted_percent": weighted_lift,
                  "best_vs_baseline_weighted_interval": weighted_interval},
        "expected_reward": {"mean": v.expected_reward.mean, "ci_lower": v.expected_reward.lo,
                            "ci_upper": v.expected_reward.hi},
        "factor_importance": [_importance(i) for i in v.factor_importance],
        "interaction_importance": None if interaction is None else
        {"mean": interaction.mean, "q1": interaction.q1, "q3": interaction.q3},
        "context_importance": [_importance(i, interval=True) for i in v.context_importance],
        "summary": {"variants_count": len(variants),
                    "lift": _num(lift.best_vs_baseline_percent),
                    "confidence": best["prob_best"], "exposures": v.observations},
        "prior_scales": v.prior_scales or None,
        "inputs": {"reward_type": v.reward_type, "cells": pack_cells(stats), "bias": dict(bias),
                   "holdout_share": holdout_share,
                   "policy": dataclasses.asdict(knobs), "prior": PRIOR_KIND,
                   "start_scales": dict(start_scales) if start_scales else None},
    }


def _pair(p: tuple[float, float] | None) -> list[float] | None:
    return None if p is None else [float(p[0]), float(p[1])]


def _b64(a: np.ndarray, dtype: str) -> str:
    raw = np.ascontiguousarray(a, dtype=dtype).tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def _unb64(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype).copy()


def pack_cells(stats: CellStats) -> dict[str, Any]:
    """The cell statistics as a few deflated base64 strings (exact float64 bits).

    :meth:`CellStats.to_dict` spells every cell as JSON numbers: ~0.8 MB and ~10⁵ Python objects
    for a 1,024-variant design with context, which every reader of the row parses.
    """
    return {"format": CELLS_FORMAT, "rows": stats.n_rows,
            "variant": _b64(stats.variant, "<i8"), "context": _b64(stats.context, "<i8"),
            "in_holdout": _b64(stats.in_holdout, "u1"),
            "sums": {c: _b64(v, "<f8") for c, v in stats.sums.items()},
            "context_factors": list(stats.context_factors),
            "context_levels": [list(levels) for levels in stats.context_levels]}


def unpack_cells(data: Mapping[str, Any]) -> CellStats:
    """Read :func:`pack_cells` (or the older :meth:`CellStats.to_dict` form)."""
    if data.get("format") != CELLS_FORMAT:
        return CellStats.from_dict(data)
    factors = tuple(data["context_factors"])
    rows = int(data["rows"])
    return CellStats(_unb64(data["variant"], "<i8").astype(np.int64),
                     _unb64(data["context"], "<i8").astype(np.int64).reshape(rows, len(factors)),
                     _unb64(data["in_holdout"], "u1").astype(bool),
                     {c: _unb64(v, "<f8").astype(float) for c, v in data["sums"].items()},
                     factors, tuple(tuple(levels) for levels in data["context_levels"]))


@dataclasses.dataclass(frozen=True)
class DesignSource:
    """What `design_of` reads of an optimization (picklable for the worker process)."""

    training_data_config: dict[str, Any]
    excluded_combinations: list[dict[str, Any]]
    holdout_percentage: int

    @classmethod
    def of(cls, opt: Any) -> DesignSource:
        return cls(opt.training_data_config, list(opt.excluded_combinations or []),
                   int(opt.holdout_percentage))


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A run's result as the publishing side needs it (what crosses the process boundary).

    The state comes encoded: decoding and re-encoding ~1 MB of JSON in the serving process
    holds its GIL for tens of milliseconds in one C call, and requests wait behind it.
    """

    published: bool
    observations: int
    historic_reward: float | None
    serving: Serving | None
    state_json: str | None
    expected_reward: dict[str, Any] | None
    lift: dict[str, Any] | None = None  # the version's lift estimates (`lift_estimate`)


def fit_and_state(*, model_id: str, version: int, model_type: str, reward_type: str,
                  opt: DesignSource, columns: Mapping[str, Any], context_factors: list[str],
                  bias: Mapping[str, float], knobs: policy.PolicySettings,
                  start_scales: Mapping[str, float] | None = None) -> Fitted:
    """Build the cells from the training query's columns, fit `version`, encode its state
    (run in the worker process: all of it is Python or numpy work on the serving GIL's side
    otherwise)."""
    stats = CellStats.from_columns(columns, context_factors)
    outcome = fit(model_id=model_id, version=version, model_type=model_type,
                  reward_type=reward_type, opt=opt, stats=stats, bias=bias, knobs=knobs,
                  start_scales=start_scales)
    if outcome.version is None:
        return Fitted(outcome.published, outcome.observations, outcome.historic_reward, None,
                      None, None)
    state = state_json(outcome.version, stats=stats, bias=bias,
                       holdout_share=opt.holdout_percentage / 100, knobs=knobs,
                       start_scales=start_scales)
    return Fitted(outcome.published, outcome.observations, outcome.historic_reward,
                  Serving.prepared(version, outcome.version.policy, stats), json.dumps(state),
                  state["expected_reward"], lift_estimate(state))


def rebuild_policy(*, model_id: str, model_type: str, version: int, opt: DesignSource,
                   inputs: Mapping[str, Any]) -> Serving:
    """The serving policy of a stored version, refit from its state's inputs (seeded, exact)."""
    # States written before the adaptive prior and the Thompson scale were fitted with a
    # fixed prior and plain Thompson sampling: rebuild them as they were.
    knobs = policy.PolicySettings(**{"thompson_scale": 1.0, **inputs["policy"],
                                     "min_observations": 0})
    prior = _PRIORS.get(str(inputs.get("prior")), CmabPrior(adaptive=False))
    stats = unpack_cells(inputs["cells"])
    outcome = train(model_type, inputs["reward_type"], design_of(opt), stats,
                    rng=generator(model_id, version), holdout_share=inputs["holdout_share"],
                    bias=inputs["bias"], settings=knobs, prior=prior,
                    start_scales=inputs.get("start_scales"))
    assert outcome.version is not None
    return Serving.prepared(version, outcome.version.policy, stats)


@dataclasses.dataclass
class Serving:
    """A version's serving policy with its allocations cached per context codes.

    API.md 2.4: for `cmab` q is estimated from S posterior draws conditioned on the context and
    may be cached per model version and context, so a request costs one uniform draw and a
    binary search over the cumulative allocation of its context cell.
    """

    version: int
    policy: ServePolicy
    numbers: list[int]
    _cumulative: dict[tuple[int, ...], tuple[list[float], list[float]]] = \
        dataclasses.field(default_factory=dict)

    def choose(self, context: Mapping[str, Any], rng: random.Random) -> tuple[int, float]:
        """Sample a variant for a fresh assignment: (number, propensity)."""
        codes = tuple(int(c) for c in self.policy.encode(context))
        cached = self._cumulative.get(codes)
        if cached is None:
            cached = self._cache(codes)
        p, cum = cached
        i = min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(p) - 1)
        while p[i] <= 0 and i > 0:  # never land on a zero-probability variant
            i -= 1
        return self.numbers[i], p[i]

    def _cache(self, codes: tuple[int, ...]) -> tuple[list[float], list[float]]:
        p = [float(x) for x in self.policy.allocation_for_codes(np.asarray(codes, np.int64))]
        cached = (p, list(itertools.accumulate(p)))
        if len(self._cumulative) < MAX_CACHED_CONTEXTS:
            self._cumulative[codes] = cached
        return cached

    @classmethod
    def prepared(cls, version: int, serve: ServePolicy, stats: CellStats | None = None,
                 cells: int = PREPARED_CELLS) -> Serving:
        """A version's serving policy with the allocations of its likely context cells computed
        (where it was fitted, so the serving process does not): the population, the cells seen
        in training by exposures, then other combinations of the levels seen, `cells` at most."""
        out = cls(version, serve, [int(n) for n in serve.numbers])
        if serve.draws is None:  # one allocation whatever the context
            out._cache(tuple(-1 for _ in serve.context_factors))
            return out
        likely: list[tuple[int, ...]] = [tuple(-1 for _ in serve.context_factors)]
        if stats is not None and stats.n_rows and stats.context.shape[1] == len(
                serve.context_factors):
            seen, weight = stats.context_cells()
            likely += [tuple(int(c) for c in seen[i]) for i in np.argsort(-weight, kind="stable")]
        levels = [range(-1, len(lv)) for lv in serve.context_levels]
        for codes in itertools.chain(likely, itertools.product(*levels)):
            if len(out._cumulative) >= cells:
                break
            if codes not in out._cumulative:
                out._cache(tuple(codes))
        return out


class VersionCache:
    """Serving policies by (model id, version), rebuilt from the state JSON when missing."""

    def __init__(self, pool: FitPool | None = None) -> None:
        self.pool = pool
        self._items: dict[tuple[str, int], Serving] = {}
        self._lock = threading.Lock()

    def put(self, model_id: str, version: int, v: ModelVersion | Serving) -> Serving:
        """Cache the policy of a freshly trained version (its own process's or a worker's)."""
        serving = v if isinstance(v, Serving) else Serving(version, v.policy,
                                                          [int(n) for n in v.policy.numbers])
        with self._lock:
            for key in [k for k in self._items if k[0] == model_id]:
                del self._items[key]
            self._items[(model_id, version)] = serving
        return serving

    def cached(self, model_id: str, version: int) -> Serving | None:
        """The policy of (model, version) if this process has it."""
        return self._items.get((model_id, version))

    def get(self, model: Any, opt: Any) -> Serving | None:
        """The serving policy of the model's current version (None while untrained)."""
        if model is None or model.version <= 0:
            return None
        found = self._items.get((model.id, model.version))
        if found is not None:
            return found
        return self.build(model.id, model.model_type, model.version, model.state, opt)

    def build(self, model_id: str, model_type: str, version: int,
              state: Mapping[str, Any] | None, opt: Any) -> Serving | None:
        """Rebuild a stored version's policy (in the worker process when there is a pool)."""
        inputs = (state or {}).get("inputs")
        if not inputs:
            return None
        source = opt if isinstance(opt, DesignSource) else DesignSource.of(opt)
        run = self.pool.run if self.pool is not None else _call
        try:
            serving = run(rebuild_policy, model_id=model_id, model_type=model_type,
                          version=version, opt=source, inputs=inputs)
        except Exception:  # noqa: BLE001 - serving stays up (uniform) and says why in the log
            log.exception("cannot rebuild version %d of model %s", version, model_id)
            return None
        return self.put(model_id, version, serving)


def _call(fn: Callable[..., T], **kwargs: Any) -> T:
    return fn(**kwargs)
