"""Per-variant posteriors for `mab`: Beta–Bernoulli (bool) and Normal–Inverse-Gamma (numeric).

Holdout exposures count too: holdout users see the baseline, so they are plain data for #1.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from levered_server.engine.stats import CellStats
from levered_server.engine.variants import Design


@dataclasses.dataclass(frozen=True)
class MabPosterior:
    """Posterior of each servable variant's expected reward per exposure.

    bool: Beta(a, b). numeric: Normal–Inverse-Gamma (mu, kappa, alpha, beta), i.e.
    σ² ~ InvGamma(alpha, beta) and μ | σ² ~ N(mu, σ²/kappa).
    """

    reward_type: str
    params: tuple[np.ndarray, ...]

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Return (size, K) draws of the expected rewards."""
        if self.reward_type == "bool":
            a, b = self.params
            return rng.beta(a, b, size=(size, a.size))
        mu, kappa, alpha, beta = self.params
        sigma2 = beta / rng.gamma(alpha, 1.0, size=(size, mu.size))
        return np.asarray(mu + np.sqrt(sigma2 / kappa) * rng.standard_normal((size, mu.size)))


def _counts(stats: CellStats, design: Design, propensity_weighted: bool) -> tuple[np.ndarray, ...]:
    """Per variant: trials n, reward sum, reward sum of squares (effective ones under IPW)."""
    nums = design.numbers
    if not propensity_weighted:
        return (stats.per_variant(nums, "exposures"), stats.per_variant(nums, "reward_sum"),
                stats.per_variant(nums, "reward_sum_sq"))
    # Hájek mean over optimized exposures, weighted 1/π, with Kish's effective size
    # n_eff = (Σw)²/Σw²; holdout rows (π = 1, baseline only) are added unweighted.
    w = stats.per_variant(nums, "ipw_weight_sum", holdout=False)
    w2 = stats.per_variant(nums, "ipw_weight_sq_sum", holdout=False)
    wr = stats.per_variant(nums, "ipw_reward_sum", holdout=False)
    wrr = stats.per_variant(nums, "ipw_reward_sq_sum", holdout=False)
    safe = np.where(w > 0, w, 1.0)
    n_eff = np.where(w2 > 0, w**2 / np.where(w2 > 0, w2, 1.0), 0.0)
    mean, second = wr / safe, wrr / safe
    return (n_eff + stats.per_variant(nums, "exposures", holdout=True),
            n_eff * mean + stats.per_variant(nums, "reward_sum", holdout=True),
            n_eff * second + stats.per_variant(nums, "reward_sum_sq", holdout=True))


def fit_mab(stats: CellStats, design: Design, reward_type: str, *,
            propensity_weighted: bool = False) -> MabPosterior:
    """Fit the per-variant conjugate posterior from the cells (context ignored).

    bool: prior Beta(1, 1), successes = exposures with reward > 0 (``reward_count``).
    numeric: NIG prior centred on the pooled mean with κ₀ = 1 pseudo-exposure, α₀ = 1 and
    β₀ = the pooled variance — weak (one exposure's worth), scale-free, and heavy-tailed for
    untried variants so Thompson sampling tries them. With ``propensity_weighted`` the counts are
    the effective ones of the inverse-propensity (Hájek) estimator, which stays unbiased when the
    allocation drifts together with the base rate.
    """
    n, total, total_sq = _counts(stats, design, propensity_weighted)
    if reward_type == "bool":
        if not propensity_weighted:
            total = stats.per_variant(design.numbers, "reward_count")
        successes = np.clip(total, 0.0, n)
        return MabPosterior("bool", (1.0 + successes, 1.0 + n - successes))
    all_n = max(float(n.sum()), 1.0)
    mu0 = float(total.sum()) / all_n
    var0 = max(float(total_sq.sum()) / all_n - mu0**2, 1e-12 * (1.0 + mu0**2))
    kappa0, alpha0, beta0 = 1.0, 1.0, var0
    mean = np.where(n > 0, total / np.where(n > 0, n, 1.0), mu0)
    ss = np.maximum(total_sq - n * mean**2, 0.0)
    kappa = kappa0 + n
    mu = (kappa0 * mu0 + n * mean) / kappa
    alpha = alpha0 + n / 2
    beta = beta0 + ss / 2 + kappa0 * n * (mean - mu0) ** 2 / (2 * kappa)
    return MabPosterior("numeric", (mu, kappa, alpha, beta))
