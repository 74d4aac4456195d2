"""One training run: fit, draw, summarize and build the serving snapshot (API.md 8.1, 8.5, 16).

The server's entry points into the engine:

- train / model state / results: ``train(model_type, reward_type, Design.build(level counts,
  servable numbers, factor names), CellStats.from_rows(query rows, context factor names),
  rng=generator(model_id, version), holdout_share=h, bias={name: b}, settings=PolicySettings(…))``
  → :class:`TrainOutcome`; its :class:`ModelVersion` holds every posterior field of 6.6/8.4/8.5.
- serving: ``version.policy`` (:class:`~levered_server.engine.serving.ServePolicy`; before the
  first version ``uniform_policy(design)``): ``.choose(context, rng)`` → (number, propensity),
  ``.allocation(context)`` → p over ``.numbers``.
- measured lift and SRM: :mod:`levered_server.engine.holdout`; counts: ``summaries.variant_counts``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

import numpy as np

from levered_server.engine import importance, policy, summaries
from levered_server.engine.cmab import CmabPrior, fit_cmab
from levered_server.engine.importance import Importance
from levered_server.engine.ipw import IpwEstimate, doubly_robust, ipw_estimates
from levered_server.engine.mab import fit_mab
from levered_server.engine.serving import ServePolicy
from levered_server.engine.stats import CellStats
from levered_server.engine.variants import Design


def generator(model_id: str, version: int) -> np.random.Generator:
    """Return the Generator of a model version, so it always reports the same numbers."""
    digest = hashlib.sha256(f"{model_id.lower()}:{version}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """Everything results, model state and serving read from one trained version."""

    model_type: str
    reward_type: str
    observations: int
    exposures: np.ndarray
    draws: np.ndarray
    variants: summaries.VariantSummary
    lift: summaries.LiftSummary
    expected_reward: summaries.Interval
    factor_importance: list[Importance]
    interaction_importance: Importance | None
    context_importance: list[Importance]
    policy: ServePolicy
    ipw: IpwEstimate
    doubly_robust: IpwEstimate | None
    prior_scales: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainOutcome:
    """A run's outcome: ``version`` is None when burn-in skipped it (``published`` false)."""

    published: bool
    observations: int
    historic_reward: float | None
    version: ModelVersion | None


def bias_positions(design: Design, bias: Mapping[str, float] | None) -> dict[int, float]:
    """Map 8.5's {factor name: bias} to {factor position: bias}; unknown names are errors."""
    out = {}
    for name, value in (bias or {}).items():
        if name not in design.names:
            raise ValueError(f"unknown design factor {name!r}")
        if value:
            out[design.names.index(name)] = float(value)
    return out


def train(model_type: str, reward_type: str, design: Design, stats: CellStats, *,
          rng: np.random.Generator, holdout_share: float = 0.0,
          bias: Mapping[str, float] | None = None,
          settings: policy.PolicySettings | None = None, prior: CmabPrior | None = None,
          propensity_weighted: bool = False,
          start_scales: Mapping[str, float] | None = None) -> TrainOutcome:
    """Fit ``mab`` or ``cmab`` on the cells and summarize; skip below the burn-in minimum.

    ``start_scales``: the previous version's ``prior_scales`` (``cmab``), where the estimate of
    the prior's block scales starts; the result does not depend on it beyond tolerance.
    """
    settings = settings or policy.PolicySettings()
    observations = stats.observations
    historic = summaries.historic_reward(stats)
    if not policy.publishes(observations, settings):
        return TrainOutcome(False, observations, historic, None)
    scale = bias_positions(design, bias)
    size = max(settings.draws, 1000)
    if model_type == "mab":
        posterior = fit_mab(stats, design, reward_type, propensity_weighted=propensity_weighted)
        draws = posterior.draw(rng, size)
        narrowed = policy.narrow(draws, settings.thompson_scale)
        p = policy.allocation(policy.prob_best(policy.widen(narrowed, design, scale)), settings)
        serve = ServePolicy(design, settings, fixed=p, bias=scale)
        contexts: list[Importance] = []
        robust = None  # with one prediction per variant it would equal ``ipw``
        scales: dict[str, float] = {}
    elif model_type == "cmab":
        draws, p, serve, contexts, robust, scales = _cmab(stats, design, reward_type, rng, size,
                                                          settings, scale, prior, start_scales)
    else:
        raise ValueError(f"unknown model type {model_type!r}")
    variants = summaries.summarize_variants(draws, design.numbers, p, holdout_share)
    version = ModelVersion(
        model_type, reward_type, observations, stats.per_variant(design.numbers, "exposures"),
        draws, variants,
        summaries.lift(draws, p, variants.prob_best, design.numbers, design.baseline),
        summaries.expected_reward(draws, p),
        importance.ranked(importance.design_importance(draws, design, design.names) + contexts),
        importance.interaction_importance(draws, design),
        importance.ranked(contexts), serve, ipw_estimates(stats, design.numbers),
        robust, scales)
    return TrainOutcome(True, observations, historic, version)


def _cmab(stats: CellStats, design: Design, reward_type: str, rng: np.random.Generator,
          size: int, settings: policy.PolicySettings, scale: dict[int, float],
          prior: CmabPrior | None, start_scales: Mapping[str, float] | None,
          ) -> tuple[np.ndarray, np.ndarray, ServePolicy, list[Importance], IpwEstimate,
                     dict[str, float]]:
    """Average rewards and allocations over the training contexts, weighted by exposures."""
    posterior = fit_cmab(stats, design, reward_type, prior, start=start_scales)
    sampled = posterior.sample(rng, size)
    # Serving's Thompson draws: the posterior's own unless thompson_scale narrows them (the
    # summaries above always use the posterior itself).
    serving = (sampled.head(settings.serve_draws) if settings.thompson_scale == 1
               else posterior.sample(rng, settings.serve_draws, spread=settings.thompson_scale))
    serve = ServePolicy(design, settings, draws=serving,
                        context_factors=stats.context_factors,
                        context_levels=stats.context_levels, bias=scale)
    cells, weights = stats.context_cells()
    mu = np.zeros((size, design.k))
    p = np.zeros(design.k)
    cell_means = np.empty((len(cells), size))
    predicted = np.empty((len(cells), design.k))
    for c, codes in enumerate(cells):
        reward = sampled.reward(codes)
        mu += weights[c] * reward
        cell_means[c] = reward.mean(axis=1)
        predicted[c] = reward.mean(axis=0)
        p += weights[c] * serve.allocation_for_codes(codes)
    contexts = importance.context_importance(cell_means, cells, weights, stats.context_factors,
                                             stats.context_levels)
    robust = doubly_robust(stats, design.numbers, cells, weights, predicted)
    return mu, p / p.sum(), serve, contexts, robust, posterior.scales

