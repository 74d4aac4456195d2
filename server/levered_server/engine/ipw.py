"""Inverse-propensity (Hájek) estimates of each variant's mean reward from logged propensities.

Over optimized (non-holdout) exposures of variant v with reward r_i and logged propensity π_i,
w_i = 1/π_i: V̂_v = Σ w r / Σ w, which estimates v's mean reward over the whole optimized
population even when the allocation moved with time or context. Its linearized variance is
Σ w² (r − V̂)² / (Σ w)², all from the cell sums of :mod:`stats`.

:func:`doubly_robust` adds a model: V̂_v = Σ_c w_c μ̂_{v,c} + Σ_i w_i (r_i − μ̂_{v,c_i}) / Σ_i w_i,
which stays unbiased if either the model or the propensities are right and is far less noisy
than Hájek alone when the model is good (μ̂ is constant within a cell, so cell sums suffice).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from levered_server.engine.stats import CellStats


@dataclasses.dataclass(frozen=True)
class IpwEstimate:
    """Per variant (aligned with ``numbers``): Hájek mean, its standard error, Kish's n_eff."""

    numbers: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    effective_n: np.ndarray

    def lift_percent(self, baseline: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Return each variant's lift over the baseline in percent and its delta-method se."""
        b, sb = self.mean[baseline], self.se[baseline]
        with np.errstate(invalid="ignore", divide="ignore"):
            lift = 100 * (self.mean - b) / b
            se = 100 * np.sqrt(self.se**2 / b**2 + self.mean**2 * sb**2 / b**4)
        se[baseline] = 0.0
        return lift, se


def ipw_estimates(stats: CellStats, numbers: np.ndarray) -> IpwEstimate:
    """Return the Hájek estimates per variant number (NaN for variants with no weight)."""
    def total(column: str) -> np.ndarray:
        return stats.per_variant(numbers, column, holdout=False)

    w, w2 = total("ipw_weight_sum"), total("ipw_weight_sq_sum")
    wr, w2r, w2rr = total("ipw_reward_sum"), total("ipw_reward_w2_sum"), total("ipw_reward_sq_w2_sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(w > 0, wr / w, np.nan)
        var = (w2rr - 2 * mean * w2r + mean**2 * w2) / w**2
        n_eff = np.where(w2 > 0, w**2 / w2, 0.0)
    return IpwEstimate(np.asarray(numbers), mean, np.sqrt(np.maximum(var, 0.0)), n_eff)


def doubly_robust(stats: CellStats, numbers: np.ndarray, cell_codes: np.ndarray,
                  cell_weights: np.ndarray, predicted: np.ndarray) -> IpwEstimate:
    """Return model + inverse-propensity-weighted residual estimates per variant.

    ``predicted[c, k]`` is the model's expected reward of variant ``numbers[k]`` in context
    cell ``cell_codes[c]``; ``cell_weights`` the cells' shares of the population.
    """
    keep = ~stats.in_holdout
    pos = np.clip(np.searchsorted(numbers, stats.variant), 0, len(numbers) - 1)
    keep &= numbers[pos] == stats.variant
    lookup = {tuple(codes): c for c, codes in enumerate(cell_codes.tolist())}
    cell = np.array([lookup.get(tuple(codes), -1) for codes in stats.context.tolist()], np.int64)
    keep &= cell >= 0
    mu = predicted[cell[keep], pos[keep]]
    sums = {name: values[keep] for name, values in stats.sums.items()}
    k = len(numbers)
    w = np.bincount(pos[keep], weights=sums["ipw_weight_sum"], minlength=k)
    residual = np.bincount(pos[keep], minlength=k,
                           weights=sums["ipw_reward_sum"] - mu * sums["ipw_weight_sum"])
    square = np.bincount(pos[keep], minlength=k, weights=sums["ipw_reward_sq_w2_sum"]
                         - 2 * mu * sums["ipw_reward_w2_sum"] + mu**2 * sums["ipw_weight_sq_sum"])
    w2 = np.bincount(pos[keep], weights=sums["ipw_weight_sq_sum"], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        correction = np.where(w > 0, residual / w, 0.0)
        se = np.where(w > 0, np.sqrt(np.maximum(square, 0.0)) / w, np.nan)
        n_eff = np.where(w2 > 0, w**2 / w2, 0.0)
    return IpwEstimate(np.asarray(numbers), cell_weights @ predicted + correction, se, n_eff)
