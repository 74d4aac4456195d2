"""Posterior summaries for results, model state and train (API.md 16.1)."""

from __future__ import annotations

import dataclasses

import numpy as np

from levered_server.engine.stats import CellStats


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a 95 % interval."""

    mean: float
    lo: float | None
    hi: float | None


@dataclasses.dataclass(frozen=True)
class VariantSummary:
    """Per servable variant (aligned with ``numbers``): 6.6's posterior fields."""

    numbers: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    prob_best: np.ndarray
    weight: np.ndarray
    allocation: np.ndarray


@dataclasses.dataclass(frozen=True)
class LiftSummary:
    """6.6 ``stats``; every field is None when the baseline's mean is ≤ 0."""

    best_number: int
    estimated_improvement_percent: float | None
    estimated_improvement_interval: tuple[float, float] | None
    best_vs_baseline_percent: float | None
    best_vs_baseline_interval: tuple[float, float] | None
    estimated_progress: float | None


def prob_best(draws: np.ndarray) -> np.ndarray:
    """Return P(best) per column of (S, K) draws; ties in a draw share its mass."""
    best = draws == draws.max(axis=1, keepdims=True)
    return np.asarray((best / best.sum(axis=1, keepdims=True)).mean(axis=0))


def summarize_variants(draws: np.ndarray, numbers: np.ndarray, allocation: np.ndarray,
                       holdout_share: float) -> VariantSummary:
    """Return mean, 2.5/97.5 % quantiles, P(best), weight and allocation per variant."""
    q = prob_best(draws)
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    return VariantSummary(np.asarray(numbers), draws.mean(axis=0), lo, hi, q,
                          q * (1 - holdout_share), np.asarray(allocation, dtype=float))


def _interval(values: np.ndarray) -> tuple[float, float] | None:
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def lift(draws: np.ndarray, allocation: np.ndarray, prob_best: np.ndarray, numbers: np.ndarray,
         baseline: int = 0) -> LiftSummary:
    """Return policy lift, best-vs-baseline lift and progress over the baseline column."""
    b = int(np.argmax(prob_best))  # first maximum = lowest number (numbers ascend)
    means = draws.mean(axis=0)
    base = means[baseline]
    best_number = int(numbers[b])
    if base <= 0:
        return LiftSummary(best_number, None, None, None, None, None)
    pi = np.asarray(allocation, dtype=float)
    policy_mean = float(pi @ means)
    per_draw = draws @ pi
    ok = draws[:, baseline] > 0
    base_draws = draws[ok, baseline]
    gain = means[b] - base
    if gain <= 1e-12:
        progress = float(pi[baseline])
    else:
        progress = float(np.clip((policy_mean - base) / gain, 0.0, 1.0))
    return LiftSummary(
        best_number,
        100 * (policy_mean - base) / base,
        _interval(100 * (per_draw[ok] - base_draws) / base_draws),
        100 * float(gain) / base,
        _interval(100 * (draws[ok, b] - base_draws) / base_draws),
        progress)


def expected_reward(draws: np.ndarray, allocation: np.ndarray) -> Interval:
    """Return train's ``expected_reward``: Ē and the 2.5/97.5 % quantiles of E^s."""
    per_draw = draws @ np.asarray(allocation, dtype=float)
    lo, hi = np.quantile(per_draw, [0.025, 0.975])
    return Interval(float(per_draw.mean()), float(lo), float(hi))


@dataclasses.dataclass(frozen=True)
class VariantCounts:
    """6.6's counted fields per variant (holdout included): exposures, conversions, sum, rate."""

    numbers: np.ndarray
    exposures: np.ndarray
    conversions: np.ndarray
    reward_sum: np.ndarray
    rate: np.ndarray


def variant_counts(stats: CellStats, numbers: np.ndarray) -> VariantCounts:
    """Return the counts of results' ``variants[]``; ``rate`` is NaN without exposures."""
    exposures = stats.per_variant(numbers, "exposures")
    reward_sum = stats.per_variant(numbers, "reward_sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(exposures > 0, reward_sum / exposures, np.nan)
    return VariantCounts(np.asarray(numbers), exposures, stats.per_variant(numbers, "reward_count"),
                         reward_sum, rate)


def historic_reward(stats: CellStats) -> float | None:
    """Return Σ rewards / observations of the training data (None with none)."""
    n = stats.observations
    return float(stats.sums["reward_sum"].sum()) / n if n else None
