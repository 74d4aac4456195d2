"""Model versions: fit with the engine, persist into `Model.state`, rebuild, cache for serving.

A version's state JSON holds the summaries results and model state read (so they never refit)
and the engine's inputs (cell statistics, bias, holdout share, policy settings), so any process
can rebuild the exact same :class:`ModelVersion` from (model id, version): the posterior draws
are seeded from that pair (API.md 8.1).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from levered_server.engine import policy
from levered_server.engine.importance import Importance
from levered_server.engine.serving import ServePolicy
from levered_server.engine.stats import CellStats
from levered_server.engine.train import ModelVersion, TrainOutcome, generator, train
from levered_server.engine.variants import Design
from levered_server.services import design as design_rules

log = logging.getLogger("levered_server.training")
ENGINE_STATE = 1
MAX_CACHED_CONTEXTS = 10_000


def design_of(opt: Any) -> Design:
    """The engine's design of an optimization (servable variants only)."""
    factors = opt.training_data_config["design_factors"]
    servable = design_rules.servable_variants(factors, opt.excluded_combinations)
    return Design.build([len(f["levels"]) for f in factors], [n for n, _ in servable],
                        [f["name"] for f in factors])


def policy_settings(settings: Any) -> policy.PolicySettings:
    """The engine's serving knobs from the server settings."""
    return policy.PolicySettings(exploration_share=settings.exploration_share,
                                 min_observations=settings.min_train_observations,
                                 serve_draws=settings.serve_draws)


def fit(*, model_id: str, version: int, model_type: str, reward_type: str, opt: Any,
        stats: CellStats, bias: Mapping[str, float], knobs: policy.PolicySettings
        ) -> TrainOutcome:
    """One engine run for `version` of a model (the draws are seeded from both)."""
    return train(model_type, reward_type, design_of(opt), stats,
                 rng=generator(model_id, version),
                 holdout_share=opt.holdout_percentage / 100, bias=dict(bias), settings=knobs)


def _importance(i: Importance, interval: bool = False) -> dict[str, Any]:
    if interval:
        return {"factor": i.factor, "mean": i.mean, "lo": i.lo, "hi": i.hi}
    return {"factor": i.factor, "mean": i.mean, "q1": i.q1, "q3": i.q3, "kind": i.kind}


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def state_json(v: ModelVersion, *, stats: CellStats, bias: Mapping[str, float],
               holdout_share: float, knobs: policy.PolicySettings) -> dict[str, Any]:
    """What `Model.state` keeps of a published version."""
    s = v.variants
    variants = [{"number": int(n), "exposures": int(v.exposures[i]),
                 "expected_reward_mean": float(s.mean[i]), "expected_reward_lo": float(s.lo[i]),
                 "expected_reward_hi": float(s.hi[i]), "prob_best": float(s.prob_best[i]),
                 "weight": float(s.weight[i]), "allocation": float(s.allocation[i])}
                for i, n in enumerate(s.numbers)]
    lift = v.lift
    best = next(x for x in variants if x["number"] == lift.best_number)
    interaction = v.interaction_importance
    return {
        "engine": ENGINE_STATE, "observations": v.observations, "variants": variants,
        "stats": {"estimated_improvement_percent": _num(lift.estimated_improvement_percent),
                  "estimated_improvement_interval": _pair(lift.estimated_improvement_interval),
                  "best_vs_baseline_percent": _num(lift.best_vs_baseline_percent),
                  "best_vs_baseline_interval": _pair(lift.best_vs_baseline_interval),
                  "estimated_progress": _num(lift.estimated_progress)},
        "expected_reward": {"mean": v.expected_reward.mean, "ci_lower": v.expected_reward.lo,
                            "ci_upper": v.expected_reward.hi},
        "factor_importance": [_importance(i) for i in v.factor_importance],
        "interaction_importance": None if interaction is None else
        {"mean": interaction.mean, "q1": interaction.q1, "q3": interaction.q3},
        "context_importance": [_importance(i, interval=True) for i in v.context_importance],
        "summary": {"variants_count": len(variants),
                    "lift": _num(lift.best_vs_baseline_percent),
                    "confidence": best["prob_best"], "exposures": v.observations},
        "inputs": {"reward_type": v.reward_type, "cells": stats.to_dict(), "bias": dict(bias),
                   "holdout_share": holdout_share,
                   "policy": dataclasses.asdict(knobs)},
    }


def _pair(p: tuple[float, float] | None) -> list[float] | None:
    return None if p is None else [float(p[0]), float(p[1])]


@dataclasses.dataclass
class Serving:
    """A version's serving policy with its allocations cached per context codes."""

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
            p = [float(x) for x in self.policy.allocation_for_codes(np.asarray(codes, np.int64))]
            cached = (p, list(itertools.accumulate(p)))
            if len(self._cumulative) < MAX_CACHED_CONTEXTS:
                self._cumulative[codes] = cached
        p, cum = cached
        i = min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(p) - 1)
        while p[i] <= 0 and i > 0:  # never land on a zero-probability variant
            i -= 1
        return self.numbers[i], p[i]


class VersionCache:
    """Serving policies by (model id, version), rebuilt from the state JSON when missing."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, int], Serving] = {}
        self._lock = threading.Lock()

    def put(self, model_id: str, version: int, v: ModelVersion) -> Serving:
        """Cache the policy of a freshly trained version."""
        serving = Serving(version, v.policy, [int(n) for n in v.policy.numbers])
        with self._lock:
            for key in [k for k in self._items if k[0] == model_id]:
                del self._items[key]
            self._items[(model_id, version)] = serving
        return serving

    def get(self, model: Any, opt: Any) -> Serving | None:
        """The serving policy of the model's current version (None while untrained)."""
        if model is None or model.version <= 0:
            return None
        found = self._items.get((model.id, model.version))
        if found is not None:
            return found
        inputs = (model.state or {}).get("inputs")
        if not inputs:
            return None
        knobs = policy.PolicySettings(**{**inputs["policy"], "min_observations": 0})
        try:
            outcome = self._rebuild(model, opt, inputs, knobs)
        except Exception:  # noqa: BLE001 - serving stays up (uniform) and says why in the log
            log.exception("cannot rebuild version %d of model %s", model.version, model.id)
            return None
        assert outcome.version is not None
        return self.put(model.id, model.version, outcome.version)

    @staticmethod
    def _rebuild(model: Any, opt: Any, inputs: dict[str, Any],
                 knobs: policy.PolicySettings) -> TrainOutcome:
        return train(model.model_type, inputs["reward_type"], design_of(opt),
                     CellStats.from_dict(inputs["cells"]),
                     rng=generator(model.id, model.version),
                     holdout_share=inputs["holdout_share"], bias=inputs["bias"], settings=knobs)
